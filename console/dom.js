// Small DOM and formatting helpers shared by the views. No framework: h() builds elements.

const SVG_NS = "http://www.w3.org/2000/svg";

// h("button", {class: "x", onclick: fn, "aria-label": "..."}, child, ...): an element.
// Children may be strings, nodes, arrays, null/undefined/false (skipped).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  return fill(el, attrs, children);
}

// The same for SVG elements.
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  return fill(el, attrs, children);
}

function fill(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

// Replace a container's content.
export function mount(container, ...children) {
  container.replaceChildren();
  append(container, children);
}

// A coloured status badge: the colour is a class, the word is always shown (not colour alone).
export function badge(status) {
  const word = status || "unknown";
  return h("span", { class: `badge st-${word.replace(/[^a-z_]/g, "")}` }, word);
}

// A table with a caption and header row; rows are arrays of cells (nodes or strings).
export function table(caption, headers, rows, empty = "Nothing to show.") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h(
    "table",
    {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))),
  );
}

// A labelled <select>; `options` are [value, text] pairs.
export function select(id, labelText, options, value, onchange) {
  return h(
    "span",
    { class: "field" },
    h("label", { for: id }, labelText),
    h("select", { id, onchange: (e) => onchange(e.target.value) },
      options.map(([v, t]) => h("option", { value: v, selected: v === value }, t))),
  );
}

export function parseTime(value) {
  if (!value) return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) || ms <= 0 ? null : ms;
}

// "4s", "3m 12s", "2h 5m", "3d 1h".
export function span(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)}s`;
  const sec = Math.round(ms / 1000);
  const min = Math.floor(sec / 60);
  if (min < 60) return `${min}m ${sec % 60}s`;
  const hours = Math.floor(min / 60);
  if (hours < 48) return `${hours}h ${min % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

export function age(value) {
  const t = parseTime(value);
  return t === null ? "never" : `${span(Date.now() - t)} ago`;
}

export function duration(start, end) {
  const a = parseTime(start);
  if (a === null) return "–";
  const b = parseTime(end) ?? Date.now();
  return span(b - a);
}

export function shortId(id) {
  return id ? id.slice(0, 8) : "";
}

export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

// Replace a container's content, keeping keyboard focus on the element with the same data-key
// (polling re-renders tables; a user tabbing through them must not lose their place).
export function swap(container, ...children) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.dataset.key : undefined;
  mount(container, ...children);
  if (key) container.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
}
