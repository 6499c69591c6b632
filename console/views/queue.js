// Queue and health: the queue by priority now, task throughput, p95 task latency and queue depth
// over the last hour (the monitoring service's series), and the gateway's component health.

import { get, query } from "../api.js";
import { lineChart } from "../charts.js";
import { age, badge, h, swap, table } from "../dom.js";

// Series in the monitoring service (GET /api/v1/metrics). Whoever feeds them: one point per
// finished task with its run time, and the queue depth sampled per priority.
export const SERIES = {
  finished: "ossa.tasks.finished", // value = tasks that finished since the previous point
  latency: "ossa.tasks.duration_seconds", // one point per finished task
  depth: (priority) => `ossa.queue.depth.priority.${priority}`, // pending tasks of that priority
};
const PRIORITIES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
const HOUR = 3600 * 1000;
// Charts are re-queried at most this often (ms); the rest of the tab follows the polling.
const CHART_EVERY = 15000;

export function queueView(panel, ctx) {
  const now = h("div", { class: "data", id: "queue-now" });
  const charts = h("div", { class: "charts", id: "queue-charts" });
  const health = h("div", { class: "data", id: "health-data" });
  let chartsAt = 0;
  swap(
    panel,
    h("h2", {}, "Queue and health"),
    h("h3", {}, "Waiting tasks by priority"),
    now,
    h("h3", {}, "Last hour"),
    charts,
    h("h3", {}, "Component health"),
    health,
  );

  async function refresh() {
    const jobs = [refreshHealth(health)];
    if (ctx.can("workflow:read")) jobs.push(refreshNow(now));
    else swap(now, h("p", { class: "empty" }, "The queue needs the workflow:read permission."));
    if (!ctx.can("metrics:read")) {
      swap(charts, h("p", { class: "empty" }, "Charts need the metrics:read permission (viewer or admin role)."));
    } else if (Date.now() - chartsAt >= CHART_EVERY) {
      chartsAt = Date.now();
      jobs.push(refreshCharts(charts));
    }
    await Promise.all(jobs);
  }

  return { refresh, open: () => {} };
}

// Pending tasks of pending and running executions (the ready part of the queue), by priority.
async function refreshNow(container) {
  const lists = await Promise.all(["pending", "running"].map((status) => get(`/executions${query({ status, limit: 100 })}`)));
  const executions = lists.flat().filter(Boolean);
  const tasks = (await Promise.all(executions.map((e) => get(`/executions/${e.id}/tasks`).catch(() => [])))).flat();
  const counts = new Map();
  tasks.filter((t) => t.status === "pending").forEach((t) => counts.set(t.priority, (counts.get(t.priority) || 0) + 1));
  const rows = [...counts.entries()].sort((a, b) => b[0] - a[0]).map(([p, n]) => [String(p), String(n), bar(n)]);
  swap(container, table("Pending tasks of the 100 newest pending and running executions", ["Priority", "Tasks", ""], rows,
    "The queue is empty."));
}

function bar(n) {
  return h("span", { class: "bar", "aria-hidden": "true" }, "█".repeat(Math.min(40, n)));
}

async function refreshCharts(container) {
  const to = Date.now();
  const from = to - HOUR;
  const range = { from: new Date(from).toISOString(), to: new Date(to).toISOString() };
  const series = async (name, agg, window) =>
    (await get(`/metrics${query({ metric_name: name, agg, window, ...range })}`)) || [];
  const [finished, latency, ...depths] = await Promise.all([
    series(SERIES.finished, "sum", "1m"),
    series(SERIES.latency, "p95", "5m"),
    ...PRIORITIES.map((p) => series(SERIES.depth(p), "max", "1m")),
  ]);
  // Priorities that had waiting tasks in the hour; all zero: one flat line for the whole queue.
  let depthSeries = PRIORITIES.map((p, i) => ({ name: `priority ${p}`, points: depths[i] }))
    .filter((x) => x.points.some((pt) => Number(pt.value) > 0));
  if (!depthSeries.length) depthSeries = [{ name: "all priorities", points: depths.find((d) => d.length) || [] }];
  swap(
    container,
    lineChart("Tasks finished per minute", [{ name: "tasks", points: finished }], from, to),
    lineChart("p95 task latency (5-minute windows)", [{ name: "p95", points: latency }], from, to, "s"),
    lineChart("Queue depth by priority (per minute, max)", depthSeries, from, to),
  );
}

async function refreshHealth(container) {
  let report;
  try {
    report = await get("/health");
  } catch (err) {
    report = err.body && err.body.components ? err.body : null; // 503 still carries the report
    if (!report) throw err;
  }
  const rows = (report.components || []).map((c) => [
    c.name,
    c.kind,
    badge(c.state),
    c.latency_ms !== undefined ? `${Number(c.latency_ms).toFixed(1)} ms` : "–",
    c.message || "–",
  ]);
  swap(
    container,
    h("p", {}, "Platform: ", badge(report.status), ` version ${report.version || "?"}, checked ${age(report.checked_at)}`),
    table("Components", ["Component", "Kind", "State", "Latency", "Message"], rows),
  );
}
