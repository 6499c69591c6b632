// Small SVG charts of the monitoring service's buckets ([{start, value, count}], oldest first):
// one line per series over a fixed time range, the largest value on the axis, the latest in text.

import { h, s } from "./dom.js";

const W = 320;
const H = 110;
const PAD_L = 44;
const PAD_B = 18;
const PAD_T = 8;

// series: [{name, points: [{start, value}]}]; from/to: ms; unit: shown after numbers.
export function lineChart(title, series, from, to, unit = "") {
  const all = series.flatMap((x) => x.points.map((p) => Number(p.value)));
  const max = all.length ? Math.max(...all, 0) : 0;
  const top = max > 0 ? niceCeil(max) : 1;
  const px = (t) => PAD_L + ((t - from) / Math.max(1, to - from)) * (W - PAD_L - 4);
  const py = (v) => PAD_T + (1 - v / top) * (H - PAD_T - PAD_B);
  const latest = series
    .filter((x) => x.points.length)
    .map((x) => `${x.name} ${fmt(x.points[x.points.length - 1].value)}${unit}`)
    .join(", ");
  const label = all.length ? `${title}: latest ${latest}; highest ${fmt(max)}${unit}` : `${title}: no data in this range`;

  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", "aria-label": label });
  svg.append(
    s("line", { class: "axis", x1: PAD_L, y1: H - PAD_B, x2: W - 4, y2: H - PAD_B }),
    s("line", { class: "axis", x1: PAD_L, y1: PAD_T, x2: PAD_L, y2: H - PAD_B }),
    s("text", { class: "tick", x: PAD_L - 4, y: PAD_T + 8, "text-anchor": "end" }, `${fmt(top)}${unit}`),
    s("text", { class: "tick", x: PAD_L - 4, y: H - PAD_B, "text-anchor": "end" }, "0"),
    s("text", { class: "tick", x: PAD_L, y: H - 4 }, clock(from)),
    s("text", { class: "tick", x: W - 4, y: H - 4, "text-anchor": "end" }, clock(to)),
  );
  series.forEach((x, i) => {
    if (!x.points.length) return;
    const d = x.points
      .map((p, j) => `${j ? "L" : "M"} ${px(Date.parse(p.start)).toFixed(1)} ${py(Number(p.value)).toFixed(1)}`)
      .join(" ");
    svg.append(s("path", { class: `line series-${i % 6}`, d }));
    if (x.points.length === 1) {
      const p = x.points[0];
      svg.append(s("circle", { class: `dot series-${i % 6}`, cx: px(Date.parse(p.start)), cy: py(Number(p.value)), r: 3 }));
    }
  });
  const legend = series.length > 1
    ? h("ul", { class: "legend" }, series.map((x, i) => h("li", { class: `series-${i % 6}` }, x.name)))
    : null;
  return h("figure", { class: "chart-box" },
    h("figcaption", {}, title),
    svg,
    h("p", { class: "chart-note" }, all.length ? `latest: ${latest}` : "no data in the last hour"),
    legend);
}

function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmt(v) {
  const n = Number(v);
  if (!Number.isFinite(n)) return "–";
  if (Math.abs(n) >= 100 || Number.isInteger(n)) return String(Math.round(n));
  return n.toFixed(2);
}

function clock(ms) {
  return new Date(ms).toISOString().slice(11, 16);
}
