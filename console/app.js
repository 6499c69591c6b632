// The console's entry point: sign-in, tabs, and the polling loop that refreshes the visible tab.

import { ApiError, onUnauthorized, post } from "./api.js";
import * as auth from "./auth.js";
import { h, mount } from "./dom.js";
import { agentsView } from "./views/agents.js";
import { executionsView } from "./views/executions.js";
import { queueView } from "./views/queue.js";
import { workflowsView } from "./views/workflows.js";

// How often the visible tab is refreshed (ms); `#poll=5000` in the URL changes it.
const DEFAULT_POLL_MS = 2000;
const TABS = ["agents", "workflows", "executions", "queue"];

const $ = (id) => document.getElementById(id);
let views = null;
let active = "agents";
let timer = null;
let pollMs = DEFAULT_POLL_MS;

function start() {
  const fragmentToken = auth.tokenFromFragment();
  if (fragmentToken) auth.storeToken(fragmentToken);
  const poll = Number(new URLSearchParams(window.location.hash.slice(1)).get("poll"));
  if (poll >= 250) pollMs = poll;
  $("token-form").addEventListener("submit", onTokenForm);
  $("key-form").addEventListener("submit", onKeyForm);
  setupTabs();
  onUnauthorized((err, refused) => {
    if (refused === auth.currentToken()) signOut(`Signed out: ${err.message}`);
  });
  document.addEventListener("visibilitychange", () => document.hidden || refreshNow());
  // A new #token=... on the open page (a script switching identities) signs in with it.
  window.addEventListener("hashchange", () => {
    const token = auth.tokenFromFragment();
    const payload = auth.claims(token);
    if (!token || !payload) return;
    auth.storeToken(token);
    enter(payload);
  });
  const payload = auth.claims(auth.currentToken());
  if (payload && !auth.expired(payload)) enter(payload);
  else showSignIn(payload ? "The token has expired; sign in again." : "");
}

function showSignIn(message) {
  stopPolling();
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message || "";
  mount($("who"));
  $("token-input").focus();
}

function enter(payload) {
  $("signin").hidden = true;
  $("app").hidden = false;
  const role = auth.roleOf(payload);
  mount(
    $("who"),
    h("span", { class: "who-name" }, `${payload.sub || "?"}`),
    " ",
    h("span", { class: `role role-${role.replace(/\s/g, "-")}`, title: auth.scopes(payload).join(" ") }, role),
    " ",
    h("button", { type: "button", class: "secondary", id: "sign-out", onclick: () => signOut("") }, "Sign out"),
  );
  const ctx = { me: payload, can: (perm) => auth.can(payload, perm), go, refreshNow, status: setStatus };
  views = {
    agents: agentsView($("panel-agents"), ctx),
    workflows: workflowsView($("panel-workflows"), ctx),
    executions: executionsView($("panel-executions"), ctx),
    queue: queueView($("panel-queue"), ctx),
  };
  select(active, false);
}

async function onTokenForm(event) {
  event.preventDefault();
  const token = $("token-input").value.trim();
  const payload = auth.claims(token);
  if (!payload) {
    $("signin-error").textContent = "That is not a JWT (three dot-separated parts).";
    return;
  }
  if (auth.expired(payload)) {
    $("signin-error").textContent = "That token has expired.";
    return;
  }
  auth.storeToken(token);
  $("token-input").value = "";
  enter(payload);
}

async function onKeyForm(event) {
  event.preventDefault();
  const key = $("key-input").value.trim();
  try {
    const session = await post("/auth/login", { api_key: key });
    auth.storeToken(session.access_token, true);
    $("key-input").value = "";
    enter(auth.claims(session.access_token) || {});
  } catch (err) {
    $("signin-error").textContent = `Login failed: ${err.message}`;
  }
}

async function signOut(message) {
  const token = auth.currentToken();
  // Only a session made here is ended on the server: a pasted token may be shared (admin.token).
  if (auth.isSession() && token) {
    try {
      await post("/auth/logout", {});
    } catch {
      // Expired or already revoked: nothing left to end.
    }
  }
  auth.clearToken();
  views = null;
  showSignIn(message);
}

function setupTabs() {
  const tabs = TABS.map((name) => $(`tab-${name}`));
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(TABS[i], true));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      const jump = { Home: 0, End: TABS.length - 1 }[event.key];
      if (step === undefined && jump === undefined) return;
      event.preventDefault();
      const next = jump ?? (i + step + TABS.length) % TABS.length;
      select(TABS[next], true);
      tabs[next].focus();
    });
  });
}

function select(name, userAction) {
  active = name;
  for (const tab of TABS) {
    const selected = tab === name;
    $(`tab-${tab}`).setAttribute("aria-selected", String(selected));
    $(`tab-${tab}`).tabIndex = selected ? 0 : -1;
    $(`panel-${tab}`).hidden = !selected;
  }
  if (userAction) setStatus("Loading…");
  refreshNow();
}

// Switch to a tab and show one item there (e.g. go("executions", id)).
function go(name, item) {
  if (views && item !== undefined) views[name].open(item);
  select(name, true);
  $(`tab-${name}`).focus();
}

function stopPolling() {
  if (timer !== null) clearTimeout(timer);
  timer = null;
}

async function refreshNow() {
  stopPolling();
  if (!views) return;
  const view = views[active];
  try {
    await view.refresh();
    setStatus(`Updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    setStatus(`Could not refresh: ${err.message}`, true);
  }
  if (views && views[active] === view && timer === null) {
    timer = setTimeout(() => (document.hidden ? (timer = null) : refreshNow()), pollMs);
  }
}

// "Updated 12:00:01" after every refresh (not announced: it changes every poll); errors go to a
// role=alert line, written only when they change so a screen reader says each one once.
function setStatus(text, isError = false) {
  const errors = $("error-line");
  const next = isError ? text : "";
  if (errors.textContent !== next) errors.textContent = next;
  if (!isError) $("status-line").textContent = text;
}

start();
