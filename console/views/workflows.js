// Workflows: versions and status; one workflow's definition as a DAG, and a Run button for
// callers holding workflow:execute.

import { get, post, query } from "../api.js";
import { drawDag } from "../dag.js";
import { age, badge, h, json, mount, select, swap, table } from "../dom.js";

export function workflowsView(panel, ctx) {
  const filter = { status: "" };
  let selected = null;
  const list = h("div", { class: "data", id: "workflows-data" });
  const detail = h("div", { class: "detail", id: "workflow-detail", "aria-live": "polite" });
  swap(
    panel,
    h("h2", {}, "Workflows"),
    h("div", { class: "filters" },
      select("workflows-status", "Status", [["", "any"], ["draft", "draft"], ["published", "published"], ["deprecated", "deprecated"]],
        "", (v) => { filter.status = v; ctx.refreshNow(); })),
    list,
    detail,
  );

  async function refresh() {
    const workflows = (await get(`/workflows${query({ ...filter, limit: 200 })}`)) || [];
    const rows = workflows.map((w) => [
      h("button", { type: "button", class: "link", "data-key": `wf-${w.id}`, "aria-pressed": String(w.id === selected),
        onclick: () => open(w.id) }, w.name),
      w.version,
      badge(w.status),
      String(w.definition?.steps?.length ?? 0),
      h("span", { title: w.updated_at }, age(w.updated_at)),
    ]);
    swap(list, table(`${rows.length} workflow${rows.length === 1 ? "" : "s"}`, ["Name", "Version", "Status", "Steps", "Changed"], rows,
      "No workflow yet."));
    if (selected && !detail.childElementCount) await showDetail();
  }

  async function open(id) {
    selected = id;
    mount(detail);
    await showDetail();
    list.querySelectorAll("button[aria-pressed]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.key === `wf-${id}`)));
  }

  async function showDetail() {
    const w = await get(`/workflows/${selected}`);
    const note = h("p", { class: "note", role: "status" });
    const run = ctx.can("workflow:execute") && w.status === "published"
      ? h("button", { type: "button", id: "run-workflow", onclick: async () => {
        try {
          const started = await post("/orchestrate", { workflow_id: w.id });
          ctx.go("executions", started.execution_id);
        } catch (err) {
          note.textContent = `Could not start: ${err.message}`;
        }
      } }, "Run this workflow")
      : null;
    mount(
      detail,
      h("h3", {}, `${w.name} ${w.version} `, badge(w.status)),
      w.description ? h("p", {}, w.description) : null,
      h("div", { class: "actions" }, run, note),
      h("div", { class: "dag-box" }, drawDag(w.definition, null, `Steps of ${w.name}`)),
      h("details", {}, h("summary", {}, "Definition (JSON)"), json(w.definition)),
    );
  }

  return { refresh, open };
}
