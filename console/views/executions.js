// Executions: status and duration; one execution's DAG coloured by its tasks' states (with its
// review rounds and approval gates), the attempts of each task (agent, lease, retries, errors, late
// results), its budget, its results, Cancel, and Approve / Reject for a gate waiting for a person.
// The open execution is not polled while it runs: its WatchExecution stream (server-sent events,
// GET /executions/{id}/watch) says when something changed, and the detail is re-read then.

import { events, get, post, query } from "../api.js";
import { drawDag, progress } from "../dag.js";
import { age, badge, duration, h, json, select, shortId, swap, table } from "../dom.js";
import { approvalForms, gateStep } from "./approvals.js";

const STATUSES = ["pending", "running", "waiting_approval", "completed", "failed", "cancelled"];
const FINAL = new Set(["completed", "failed", "cancelled"]);

export function executionsView(panel, ctx) {
  const filter = { status: "" };
  const workflows = new Map(); // id -> workflow (definitions never change once published)
  const agentNames = new Map(); // id -> name
  let selected = null;
  let shown = ""; // what the detail shows now (see showDetail)
  let live = null; // {id, controller}: the open watch stream of the selected, unfinished execution
  let notice = { id: null, text: "" }; // the last action's error, shown until the next action or execution
  const reasons = new Map(); // gate task id -> the reason typed so far (kept across re-renders)
  const list = h("div", { class: "data", id: "executions-data" });
  const detail = h("div", { class: "detail", id: "execution-detail" });
  swap(
    panel,
    h("h2", {}, "Executions"),
    h("div", { class: "filters" },
      select("executions-status", "Status", [["", "any"], ...STATUSES.map((x) => [x, x])], "", (v) => {
        filter.status = v;
        ctx.refreshNow();
      })),
    list,
    detail,
  );

  async function workflow(id) {
    if (!workflows.has(id)) workflows.set(id, await get(`/workflows/${id}`).catch(() => null));
    return workflows.get(id);
  }

  async function refresh() {
    const executions = (await get(`/executions${query({ ...filter, limit: 50 })}`)) || [];
    await Promise.all([...new Set(executions.map((e) => e.workflow_id))].map(workflow));
    const rows = executions.map((e) => {
      const w = workflows.get(e.workflow_id);
      return [
        h("button", { type: "button", class: "link mono", "data-key": `ex-${e.id}`, "aria-pressed": String(e.id === selected),
          "aria-label": `Execution ${shortId(e.id)} of ${w ? w.name : "a workflow"}, ${e.status}`, onclick: () => open(e.id) }, shortId(e.id)),
        w ? `${w.name} ${w.version}` : shortId(e.workflow_id),
        badge(e.status),
        h("span", { title: e.started_at }, age(e.started_at)),
        duration(e.started_at, FINAL.has(e.status) ? e.completed_at : null),
        e.priority ? String(e.priority) : "step default",
      ];
    });
    swap(list, table(`${rows.length} most recent execution${rows.length === 1 ? "" : "s"}`,
      ["Execution", "Workflow", "Status", "Started", "Duration", "Priority"], rows, "No execution yet."));
    list.querySelectorAll("tbody tr").forEach((tr, i) => {
      tr.dataset.executionId = executions[i].id;
      tr.dataset.status = executions[i].status;
    });
    if (selected && !(live && live.id === selected)) await showDetail();
  }

  // Follow the selected execution's changes until it ends (or another one is selected); if the
  // stream fails, the tab's periodic refresh reads the detail again.
  function watch(id) {
    if (live && live.id === id) return;
    if (live) live.controller.abort();
    const controller = new AbortController();
    const me = { id, controller };
    live = me;
    (async () => {
      try {
        for await (const change of events(`/executions/${id}/watch`, controller.signal)) {
          if (selected !== id) break;
          if (change.execution) await showDetail(); // the first event too: a change may precede the stream
        }
      } catch {
        // aborted, or the stream broke: polling takes over
      } finally {
        controller.abort();
        if (live === me) live = null;
      }
    })();
  }

  async function open(id) {
    selected = id;
    notice = { id: null, text: "" };
    if (live && live.id !== id) live.controller.abort();
    list.querySelectorAll("button[aria-pressed]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.key === `ex-${id}`)));
    await showDetail();
  }

  async function showDetail() {
    const id = selected;
    const [e, tasks] = await Promise.all([get(`/executions/${id}`), get(`/executions/${id}/tasks`)]);
    const details = await Promise.all((tasks || []).map((t) => get(`/tasks/${t.id}`).catch(() => t)));
    if (id !== selected) return;
    // Unchanged since the last poll: leave the DOM alone (scroll positions, open details). A
    // running execution is redrawn every few seconds anyway, for its duration.
    const signature = JSON.stringify([e, details, notice, FINAL.has(e.status) ? 0 : Math.floor(Date.now() / 5000)]);
    if (!FINAL.has(e.status)) watch(id);
    if (signature === shown) return;
    shown = signature;
    const w = await workflow(e.workflow_id);
    if (ctx.can("agent:read")) await names(details);
    const roles = progress(details, e.results, e.status);
    const note = h("p", { class: "note", role: "status", id: "execution-note" }, notice.id === id ? notice.text : "");
    const failed = (text) => {
      notice = { id, text };
      note.textContent = text;
    };
    const cancel = ctx.can("workflow:execute") && !FINAL.has(e.status)
      ? h("button", { type: "button", class: "danger", id: "cancel-execution", "data-key": "cancel", onclick: async () => {
        try {
          await post(`/executions/${e.id}/cancel`, {});
          ctx.refreshNow();
        } catch (err) {
          failed(`Could not cancel: ${err.message}`);
        }
      } }, "Cancel execution")
      : null;
    const approvals = approvalForms(details, { canDecide: ctx.can("workflow:execute"), reasons, failed, done: async () => {
      notice = { id: null, text: "" };
      await showDetail();
      ctx.refreshNow();
    } });
    swap(
      detail,
      h("h3", {}, `Execution ${shortId(e.id)} `,
        h("span", { id: "execution-status", "data-status": e.status }, badge(e.status))),
      h("dl", { class: "facts" },
        fact("Workflow", w ? `${w.name} ${w.version}` : e.workflow_id),
        fact("Started", `${e.started_at} (${age(e.started_at)})`),
        fact("Duration", duration(e.started_at, FINAL.has(e.status) ? e.completed_at : null)),
        fact("Retries", String(e.retry_count ?? 0)),
        budgetFacts(e, details),
        e.error ? fact("Error", h("span", { class: "error-text" }, e.error)) : null),
      approvals,
      h("div", { class: "actions" }, cancel, note),
      w ? h("div", { class: "dag-box" }, drawDag(w.definition, roles.states, `Steps of execution ${shortId(e.id)}`, roles)) : null,
      h("h4", {}, "Tasks and attempts"),
      taskTable(details),
      h("h4", {}, "Results"),
      Object.keys(e.results || {}).length ? json(e.results) : h("p", { class: "empty" }, "No results yet."),
    );
  }

  async function names(details) {
    const missing = new Set();
    details.forEach((t) => (t.attempts || []).forEach((a) => a.agent_id && !agentNames.has(a.agent_id) && missing.add(a.agent_id)));
    await Promise.all([...missing].map(async (aid) => {
      const a = await get(`/agents/${aid}`).catch(() => null);
      agentNames.set(aid, a ? a.name : shortId(aid));
    }));
  }

  function taskTable(details) {
    const rows = [];
    for (const t of details) {
      const attempts = t.attempts || [];
      const retries = `${Math.max(0, (t.attempt || 0) - 1)} of ${t.max_retries}`;
      if (!attempts.length) {
        rows.push([t.name, badge(t.status), "–", "–", retries, t.error || decision(t) || t.routing_note || "–", "0"]);
        continue;
      }
      for (const a of attempts) {
        rows.push([
          `${t.name} #${a.attempt}`,
          badge(a.outcome || t.status),
          agentNames.get(a.agent_id) || shortId(a.agent_id) || "–",
          `fencing token ${a.fencing_token} · lease ${t.lease_seconds}s · held ${duration(a.started_at, a.finished_at || null)}`,
          retries,
          a.error || (a.outcome === "completed" && decision(t)) || "–",
          String(a.late_results ?? 0),
        ]);
      }
    }
    return table("Each task's attempts", ["Step / attempt", "State", "Agent", "Lease", "Retries", "Error or decision", "Late results"], rows,
      "No task has been queued yet.");
  }

  return { refresh, open };
}

// What a gate or a review round decided, from its output.
function decision(t) {
  const out = t.output;
  if (!out || typeof out !== "object") return "";
  if (gateStep(t) && "approved" in out) {
    return `${out.approved ? "approved" : "rejected"}${out.by ? ` by ${out.by}` : ""}${out.reason ? `: ${out.reason}` : ""}`;
  }
  if (/~\d+\.review$/.test(t.name) && out.verdict !== undefined) return `verdict: ${out.verdict}`;
  return "";
}

// The budget's bounds and what has been spent, when the execution has a budget.
function budgetFacts(e, details) {
  const b = e.budget || {};
  const bounds = [
    b.max_tasks ? `${b.max_tasks} tasks` : null,
    b.max_seconds ? `${b.max_seconds} s` : null,
    b.max_cost ? `cost ${b.max_cost}` : null,
  ].filter(Boolean);
  if (!bounds.length) return null;
  const spent = [
    b.max_tasks ? `${details.length} of ${b.max_tasks} tasks` : null,
    b.max_seconds ? `${duration(e.started_at, FINAL.has(e.status) ? e.completed_at : null)} of ${b.max_seconds} s` : null,
    `cost ${+Number(e.spent_cost || 0).toFixed(6)}${b.max_cost ? ` of ${b.max_cost}` : ""}`,
  ].filter(Boolean);
  return [
    fact("Budget", h("span", { id: "execution-budget" }, bounds.join(" · "))),
    fact("Spent", h("span", { id: "execution-spent" }, spent.join(" · "))),
  ];
}

function fact(term, value) {
  return [h("dt", {}, term), h("dd", {}, value)];
}
