// Approval gates waiting for a person (docs/roles.md): a gate task `<step>~approval` in the state
// waiting_approval gets a form with an optional reason, Approve and Reject. They call
// POST /tasks/{id}/approve or /reject with the console's token (permission workflow:execute);
// callers whose token does not claim it see the gate without the buttons.

import { post } from "../api.js";
import { badge, h } from "../dom.js";

// The step a gate task guards, or null when the task is not a gate.
export function gateStep(task) {
  const m = /^(.+)~approval$/.exec(String(task.name || ""));
  return m ? m[1] : null;
}

// One form per waiting gate. `reasons` (Map task id -> text) keeps what was typed across the
// view's re-renders; `done()` runs after a decision, `failed(message)` after an error.
export function approvalForms(tasks, { canDecide, reasons, done, failed }) {
  const waiting = (tasks || []).filter((t) => t.status === "waiting_approval" && gateStep(t));
  if (!waiting.length) return null;
  return h("div", { class: "approvals", id: "approvals" }, waiting.map((t) => form(t, canDecide, reasons, done, failed)));
}

function form(task, canDecide, reasons, done, failed) {
  const step = gateStep(task);
  const timeout = task.input?.approval?.timeout_seconds;
  const until = timeout ? ` (it times out ${timeout} s after it began)` : "";
  const text = h("p", {}, badge("waiting_approval"), ` Step `, h("strong", {}, step), ` waits for a person's approval${until}.`);
  if (!canDecide) {
    return h("div", { class: "approval", "data-approval": step }, text, h("p", { class: "empty" }, "Deciding needs the permission workflow:execute."));
  }
  const inputId = `reason-${task.id}`;
  const reason = h("input", { id: inputId, type: "text", "data-key": inputId, maxlength: 500, autocomplete: "off",
    value: reasons.get(task.id) || "", oninput: (e) => reasons.set(task.id, e.target.value),
    // The view is redrawn while the person types (the focus comes back here): keep the caret at the end.
    onfocus: (e) => e.target.setSelectionRange(e.target.value.length, e.target.value.length) });
  const decide = (verb) => async (event) => {
    const buttons = event.target.closest("form").querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    const said = (reasons.get(task.id) || "").trim();
    try {
      await post(`/tasks/${task.id}/${verb}`, said ? { reason: said } : {});
      reasons.delete(task.id);
      await done();
    } catch (err) {
      buttons.forEach((b) => (b.disabled = false));
      failed(`Could not ${verb} step ${step}: ${err.message}`);
    }
  };
  return h("form", { class: "approval", "data-approval": step, "aria-label": `Approval of step ${step}`, onsubmit: (e) => e.preventDefault() },
    text,
    h("span", { class: "field" }, h("label", { for: inputId }, "Reason (optional)"), reason),
    h("button", { type: "button", class: "approve", "data-key": `approve-${task.id}`, "data-approval": step, onclick: decide("approve") }, "Approve"),
    h("button", { type: "button", class: "danger reject", "data-key": `reject-${task.id}`, "data-approval": step, onclick: decide("reject") }, "Reject"));
}
