// A workflow definition drawn as a DAG in inline SVG: steps in columns by depth (longest path
// from a step without dependencies), edges from each dependency to its dependant. A state per
// step (an execution's view) colours the node; the word is in the node too, not colour alone.

import { s } from "./dom.js";

const NODE_W = 150;
const NODE_H = 46;
const GAP_X = 60;
const GAP_Y = 18;
const PAD = 12;
const ARC = 34; // height of the arcs over skipped columns

// Depth of each step; a cycle or an unknown dependency (the server rejects both) counts as 0.
export function layers(steps) {
  const byId = new Map(steps.map((step) => [step.id, step]));
  const depth = new Map();
  const visiting = new Set();
  const walk = (id) => {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id) || !byId.has(id)) return -1;
    visiting.add(id);
    const deps = byId.get(id).depends_on || [];
    const d = deps.length ? Math.max(...deps.map(walk)) + 1 : 0;
    visiting.delete(id);
    depth.set(id, Math.max(0, d));
    return depth.get(id);
  };
  steps.forEach((step) => walk(step.id));
  return depth;
}

// states: Map step id -> state word (pending, assigned, running, completed, failed, waiting).
export function drawDag(definition, states = null, label = "Workflow steps") {
  const steps = (definition && Array.isArray(definition.steps) ? definition.steps : []).filter((x) => x && x.id);
  const depth = layers(steps);
  const columns = [];
  for (const step of steps) {
    const d = depth.get(step.id) || 0;
    (columns[d] ||= []).push(step);
  }
  // Edges that skip a column arc above the nodes between: leave room for them at the top.
  const skips = steps.some((step) => (step.depends_on || []).some((d) => (depth.get(step.id) || 0) - (depth.get(d) || 0) > 1));
  const top = PAD + (skips ? ARC : 0);
  const pos = new Map();
  columns.forEach((column, ci) =>
    column.forEach((step, ri) => pos.set(step.id, { x: PAD + ci * (NODE_W + GAP_X), y: top + ri * (NODE_H + GAP_Y) })),
  );
  const rows = Math.max(1, ...columns.map((c) => c.length));
  const width = PAD * 2 + Math.max(1, columns.length) * NODE_W + Math.max(0, columns.length - 1) * GAP_X;
  const height = top + PAD + rows * NODE_H + (rows - 1) * GAP_Y;
  const summary = steps
    .map((step) => `${step.id}${states ? ` ${states.get(step.id) || "waiting"}` : ""}` +
      ((step.depends_on || []).length ? ` after ${step.depends_on.join(", ")}` : ""))
    .join("; ");

  const svg = s("svg", {
    class: "dag",
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": `${label}: ${summary || "no steps"}`,
  });
  svg.append(
    s("defs", {},
      s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "dag-arrow" }))),
  );
  for (const step of steps) {
    const to = pos.get(step.id);
    for (const dep of step.depends_on || []) {
      const from = pos.get(dep);
      if (!from) continue;
      let d;
      if ((depth.get(step.id) || 0) - (depth.get(dep) || 0) > 1) {
        // Over the columns in between: from the top of one node to the top of the other.
        const x1 = from.x + NODE_W / 2;
        const x2 = to.x + NODE_W / 2;
        d = `M ${x1} ${from.y} C ${x1} ${top - ARC}, ${x2} ${top - ARC}, ${x2} ${to.y}`;
      } else {
        const x1 = from.x + NODE_W;
        const y1 = from.y + NODE_H / 2;
        const x2 = to.x;
        const y2 = to.y + NODE_H / 2;
        const mid = (x1 + x2) / 2;
        d = `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}`;
      }
      svg.append(s("path", { class: "dag-edge", d, "marker-end": "url(#arrow)" }));
    }
  }
  for (const step of steps) {
    const { x, y } = pos.get(step.id);
    const state = states ? states.get(step.id) || "waiting" : "";
    const what = step.capability || step.capability_query || "";
    const g = s("g", { class: `dag-node${state ? ` st-${state}` : ""}`, "data-step": step.id, "data-state": state });
    g.append(
      s("title", {}, `${step.id}${state ? ` (${state})` : ""}${what ? `: ${what}` : ""}`),
      s("rect", { x, y, width: NODE_W, height: NODE_H, rx: 6 }),
      s("text", { x: x + 10, y: y + 19, class: "dag-id" }, clip(step.id, 18)),
      s("text", { x: x + 10, y: y + 36, class: "dag-sub" }, clip(state || what, 22)),
    );
    svg.append(g);
  }
  return svg;
}

function clip(text, n) {
  const t = String(text);
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
}
