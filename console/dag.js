// A workflow definition drawn as a DAG in inline SVG: steps in columns by depth (longest path
// from a step without dependencies), edges from each dependency to its dependant. A state per
// step (an execution's view) colours the node; the word is in the node too, not colour alone.
//
// Agent roles (docs/roles.md): a step with an `approval` gets a small diamond, its gate, just
// before it (a glyph in it says the gate's state: ? undecided, ✓ approved, ✗ rejected or timed
// out, … with a governor); a step with a `review` is drawn as a stack with a loop mark, and in
// an execution it says which round it is in (its rounds draft~1, draft~1.review, draft~2, ... are
// tasks of their own, listed under the DAG).

import { s } from "./dom.js";

const NODE_W = 150;
const NODE_H = 46;
const GAP_X = 60;
const GAP_Y = 18;
const PAD = 12;
const ARC = 34; // height of the arcs over skipped columns
const GATE = 11; // half the width of a gate's diamond
const GATE_ROOM = 40; // room left of every column for the diamonds, when a step has a gate
const GLYPH = { waiting_approval: "?", waiting: "·", pending: "·", completed: "✓", rejected: "✗", failed: "✗", cancelled: "✗", expired: "✗" };

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

// What an execution's tasks say about its steps. Tasks are named after their step: `deploy`,
// `deploy~approval` (the gate), `draft~2` and `draft~2.review` (review round 2). Returns
// {states: Map step -> state, gates: Map step -> the gate's state, rounds: Map step -> [{round,
// producer, review}] (task states, by round)}. A reviewed step is completed once its result is in
// `results`; before that it is in the state of its latest round's latest task. A gate that ended
// in a rejection (its task completed with `approved` not true) is "rejected".
export function progress(tasks, results = {}, executionStatus = "") {
  const states = new Map();
  const gates = new Map();
  const rounds = new Map();
  for (const t of tasks || []) {
    const name = String(t.name || "");
    const gate = /^(.+)~approval$/.exec(name);
    const round = /^(.+)~(\d+)(\.review)?$/.exec(name);
    if (gate) gates.set(gate[1], t.status === "completed" && t.output && t.output.approved !== true ? "rejected" : t.status);
    else if (round) {
      if (!rounds.has(round[1])) rounds.set(round[1], []);
      const list = rounds.get(round[1]);
      let entry = list.find((r) => r.round === Number(round[2]));
      if (!entry) list.push((entry = { round: Number(round[2]), producer: null, review: null }));
      entry[round[3] ? "review" : "producer"] = t.status;
    } else states.set(name, t.status);
  }
  for (const [step, list] of rounds) {
    list.sort((a, b) => a.round - b.round);
    const last = list[list.length - 1];
    let state = last.review || last.producer || "pending";
    if (results && Object.hasOwn(results, step)) state = "completed";
    else if (state === "completed") state = ["failed", "cancelled"].includes(executionStatus) ? executionStatus : "running";
    states.set(step, state);
  }
  return { states, gates, rounds };
}

// states: Map step id -> state word (pending, assigned, running, completed, failed, waiting);
// roles: progress()'s gates and rounds, for an execution whose steps have gates or reviews.
export function drawDag(definition, states = null, label = "Workflow steps", roles = null) {
  const steps = (definition && Array.isArray(definition.steps) ? definition.steps : []).filter((x) => x && x.id);
  const gates = roles?.gates || new Map();
  const rounds = roles?.rounds || new Map();
  const depth = layers(steps);
  const columns = [];
  for (const step of steps) {
    const d = depth.get(step.id) || 0;
    (columns[d] ||= []).push(step);
  }
  const room = steps.some((step) => step.approval) ? GATE_ROOM : 0;
  // Edges that skip a column arc above the nodes between: leave room for them at the top.
  const skips = steps.some((step) => (step.depends_on || []).some((d) => (depth.get(step.id) || 0) - (depth.get(d) || 0) > 1));
  const top = PAD + (skips ? ARC : 0);
  const pos = new Map();
  columns.forEach((column, ci) =>
    column.forEach((step, ri) => pos.set(step.id, { x: PAD + room + ci * (NODE_W + GAP_X + room), y: top + ri * (NODE_H + GAP_Y) })),
  );
  const rows = Math.max(1, ...columns.map((c) => c.length));
  const cols = Math.max(1, columns.length);
  const width = PAD * 2 + cols * (NODE_W + room) + (cols - 1) * GAP_X;
  const height = top + PAD + rows * NODE_H + (rows - 1) * GAP_Y;
  const stateOf = (step) => (states ? states.get(step.id) || "waiting" : "");
  const gateOf = (step) => (states ? gates.get(step.id) || "waiting" : "");
  const summary = steps
    .map((step) => {
      const n = (rounds.get(step.id) || []).length;
      return `${step.id}${states ? ` ${stateOf(step)}` : ""}` +
        (step.review ? (n ? ` in review round ${n} of at most ${maxRounds(step)}` : ", reviewed") : "") +
        (step.approval ? `, approval by ${step.approval.by || "human"}${states ? ` ${gateOf(step)}` : ""}` : "") +
        ((step.depends_on || []).length ? ` after ${step.depends_on.join(", ")}` : "");
    })
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
  // Where edges into a step end: its gate's left (or top) corner when it has one.
  const entry = (step) => {
    const { x, y } = pos.get(step.id);
    if (!step.approval) return { x, y: y + NODE_H / 2, top: { x: x + NODE_W / 2, y } };
    const { cx, cy } = gateCentre(x, y);
    return { x: cx - GATE, y: cy, top: { x: cx, y: cy - GATE } };
  };
  for (const step of steps) {
    const to = entry(step);
    for (const dep of step.depends_on || []) {
      const from = pos.get(dep);
      if (!from) continue;
      let d;
      if ((depth.get(step.id) || 0) - (depth.get(dep) || 0) > 1) {
        // Over the columns in between: from the top of one node to the top of the other.
        const x1 = from.x + NODE_W / 2;
        d = `M ${x1} ${from.y} C ${x1} ${top - ARC}, ${to.top.x} ${top - ARC}, ${to.top.x} ${to.top.y}`;
      } else {
        const x1 = from.x + NODE_W;
        const y1 = from.y + NODE_H / 2;
        const mid = (x1 + to.x) / 2;
        d = `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${to.y}, ${to.x} ${to.y}`;
      }
      svg.append(s("path", { class: "dag-edge", d, "marker-end": "url(#arrow)" }));
    }
  }
  for (const step of steps) {
    const { x, y } = pos.get(step.id);
    if (step.approval) svg.append(gateNode(step, x, y, gateOf(step)));
    svg.append(stepNode(step, x, y, stateOf(step), rounds.get(step.id) || []));
  }
  return svg;
}

function stepNode(step, x, y, state, list) {
  const what = step.capability || step.capability_query || "";
  const n = list.length;
  const g = s("g", { class: `dag-node${state ? ` st-${state}` : ""}${step.review ? " reviewed" : ""}`, "data-step": step.id,
    "data-state": state, "data-rounds": step.review ? String(n) : null });
  const history = list.map((r) => `\nround ${r.round}: ${r.producer || "–"}, review ${r.review || "not yet"}`).join("");
  const by = step.review ? `\nreviewed by ${step.review.by || step.review.by_query || "?"}, at most ${maxRounds(step)} rounds` : "";
  g.append(s("title", {}, `${step.id}${state ? ` (${state})` : ""}${what ? `: ${what}` : ""}${by}${history}`));
  // A reviewed step is a stack: the rounds behind it.
  if (step.review) g.append(s("rect", { x: x + 4, y: y - 4, width: NODE_W, height: NODE_H, rx: 6, class: "dag-stack" }));
  g.append(
    s("rect", { x, y, width: NODE_W, height: NODE_H, rx: 6 }),
    s("text", { x: x + 10, y: y + 19, class: "dag-id" }, clip(step.id, step.review ? 12 : 18)),
    s("text", { x: x + 10, y: y + 36, class: "dag-sub" }, clip(state || what, 22)),
  );
  if (step.review) {
    const mark = state ? `⟳ ${n}/${maxRounds(step)}` : `⟳ ≤${maxRounds(step)}`;
    g.append(s("text", { x: x + NODE_W - 8, y: y + 19, class: "dag-mark", "text-anchor": "end" }, mark));
  }
  return g;
}

function gateNode(step, x, y, state) {
  const { cx, cy } = gateCentre(x, y);
  const by = step.approval.by || "human";
  const g = s("g", { class: `dag-gate${state ? ` st-${state}` : ""}`, "data-gate": step.id, "data-state": state });
  g.append(
    s("title", {}, `approval of ${step.id} by ${by}${state ? ` (${state})` : ""}`),
    s("path", { class: "dag-edge", d: `M ${cx + GATE} ${cy} L ${x} ${cy}`, "marker-end": "url(#arrow)" }),
    s("polygon", { points: `${cx - GATE},${cy} ${cx},${cy - GATE} ${cx + GATE},${cy} ${cx},${cy + GATE}` }),
    s("text", { x: cx, y: cy + 4, class: "dag-glyph", "text-anchor": "middle" }, state ? GLYPH[state] || "…" : "?"),
  );
  return g;
}

// The diamond of the gate before the step node at (x, y).
function gateCentre(x, y) {
  return { cx: x - GATE_ROOM / 2 - 4, cy: y + NODE_H / 2 };
}

function maxRounds(step) {
  return step.review?.max_rounds || 3;
}

function clip(text, n) {
  const t = String(text);
  return t.length > n ? `${t.slice(0, n - 1)}…` : t;
}
