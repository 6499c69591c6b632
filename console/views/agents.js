// Agents: type, status, capabilities, last heartbeat and the tasks each one holds now.

import { get, query } from "../api.js";
import { age, badge, h, select, swap, table } from "../dom.js";

const TYPES = ["orchestrator", "worker", "critic", "judge", "trainer", "governor", "monitor", "integrator"];
const STATUSES = ["idle", "busy", "error", "offline"];
// Running executions looked at for "current tasks" (each costs one request per refresh).
const MAX_RUNNING = 20;

export function agentsView(panel, ctx) {
  const filter = { type: "", status: "" };
  const body = h("div", { class: "data", id: "agents-data" });
  swap(
    panel,
    h("h2", {}, "Agents"),
    h("div", { class: "filters" },
      select("agents-type", "Type", [["", "any"], ...TYPES.map((t) => [t, t])], "", (v) => { filter.type = v; ctx.refreshNow(); }),
      select("agents-status", "Status", [["", "any"], ...STATUSES.map((t) => [t, t])], "", (v) => { filter.status = v; ctx.refreshNow(); })),
    body,
  );

  async function refresh() {
    const [agents, holding] = await Promise.all([
      get(`/agents${query({ ...filter, limit: 500 })}`),
      ctx.can("workflow:read") ? currentTasks() : Promise.resolve(new Map()),
    ]);
    const rows = (agents || []).map((a) => [
      h("span", { class: "agent-name", title: a.id }, a.name),
      a.type,
      badge(a.status),
      (a.capabilities || []).join(", "),
      h("span", { title: a.last_heartbeat || "" }, age(a.last_heartbeat)),
      (holding.get(a.id) || []).join(", ") || "–",
    ]);
    swap(
      body,
      table(`${rows.length} agent${rows.length === 1 ? "" : "s"}`,
        ["Name", "Type", "Status", "Capabilities", "Last heartbeat", "Current tasks"], rows, "No agent matches."),
    );
    body.querySelectorAll("tbody tr").forEach((tr, i) => {
      tr.dataset.agentId = agents[i].id;
      tr.dataset.status = agents[i].status;
    });
  }

  return { refresh, open: () => {} };
}

// agent id -> ["step (execution)", ...] for tasks leased right now.
async function currentTasks() {
  const running = (await get(`/executions${query({ status: "running", limit: MAX_RUNNING })}`)) || [];
  const lists = await Promise.all(running.map((e) => get(`/executions/${e.id}/tasks`).catch(() => [])));
  const holding = new Map();
  lists.flat().forEach((t) => {
    if (!t.agent_id || !(t.status === "assigned" || t.status === "running")) return;
    if (!holding.has(t.agent_id)) holding.set(t.agent_id, []);
    holding.get(t.agent_id).push(`${t.name} (${t.execution_id.slice(0, 8)})`);
  });
  return holding;
}
