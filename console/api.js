// The public REST API on this origin (/api/v1/...), with the bearer token of auth.js.
// Errors arrive in the platform's one shape {"code", "message", "details"}; they are thrown as
// ApiError carrying the HTTP status and that message.

import { currentToken } from "./auth.js";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// Listeners told about every 401 (the token expired or was revoked: sign in again), with the
// token that was refused (it may have been replaced while the request was on its way).
const unauthorized = new Set();
export function onUnauthorized(fn) {
  unauthorized.add(fn);
}

export async function call(method, path, body, { token } = {}) {
  const headers = { accept: "application/json" };
  const bearer = token ?? currentToken();
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`/api/v1${path}`, init);
  } catch (err) {
    throw new ApiError(0, `the gateway cannot be reached (${err.message})`, null);
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  if (!response.ok) {
    const message = (parsed && parsed.message) || `${response.status} ${response.statusText}`;
    const error = new ApiError(response.status, message, parsed);
    if (response.status === 401 && token === undefined) unauthorized.forEach((fn) => fn(error, bearer));
    throw error;
  }
  return parsed;
}

// A server-sent-events stream (GET, e.g. /executions/{id}/watch): yields each event's `data:` JSON
// until the server ends the stream or `signal` aborts it. Errors before the first event are thrown
// like call()'s.
export async function* events(path, signal) {
  const headers = { accept: "text/event-stream" };
  const bearer = currentToken();
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const response = await fetch(`/api/v1${path}`, { headers, cache: "no-store", credentials: "omit", signal });
  if (!response.ok) {
    const text = await response.text();
    let message = `${response.status} ${response.statusText}`;
    try {
      message = JSON.parse(text).message || message;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(response.status, message, text);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).join("\n");
      if (data.trim()) yield JSON.parse(data);
    }
  }
}

export const get = (path) => call("GET", path);
export const post = (path, body = {}) => call("POST", path, body);

// "?a=1&b=2" from an object, skipping empty values.
export function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") q.set(key, String(value));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}
