// The signed-in identity: a bearer JWT kept in sessionStorage (this tab only, gone when it closes).
//
// A token can come from the URL fragment (/console#token=...): a fragment is never sent to the
// server, and it is removed from the address bar as soon as it has been read. The JWT's claims are
// decoded here for display only (who, which scopes, which buttons to show); the services verify
// the signature and enforce every permission themselves.

const TOKEN_KEY = "ossa.console.token";
const SESSION_KEY = "ossa.console.session"; // "1" when the token came from POST /auth/login

export function tokenFromFragment() {
  const hash = window.location.hash.replace(/^#/, "");
  if (!hash) return null;
  const params = new URLSearchParams(hash);
  const token = params.get("token");
  if (token === null) return null;
  params.delete("token");
  const rest = params.toString();
  const url = window.location.pathname + window.location.search + (rest ? `#${rest}` : "");
  window.history.replaceState(null, "", url);
  return token.trim();
}

export function storeToken(token, fromSession = false) {
  sessionStorage.setItem(TOKEN_KEY, token);
  if (fromSession) sessionStorage.setItem(SESSION_KEY, "1");
  else sessionStorage.removeItem(SESSION_KEY);
}

export function currentToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function isSession() {
  return sessionStorage.getItem(SESSION_KEY) === "1";
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(SESSION_KEY);
}

// The JWT's payload, or null when the text is not a JWT.
export function claims(token) {
  const parts = (token || "").split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
    const text = new TextDecoder().decode(Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)));
    const payload = JSON.parse(text);
    return payload && typeof payload === "object" ? payload : null;
  } catch {
    return null;
  }
}

export function scopes(payload) {
  const scope = payload?.scope;
  if (Array.isArray(scope)) return scope.map(String);
  if (typeof scope === "string") return scope.split(/\s+/).filter(Boolean);
  return [];
}

// Whether the token claims a permission (admin:all grants everything). Display only.
export function can(payload, permission) {
  const held = scopes(payload);
  return held.includes("admin:all") || held.includes(permission);
}

// The spec's role names, from the scopes (for the header).
export function roleOf(payload) {
  const held = new Set(scopes(payload));
  if (held.has("admin:all")) return "admin";
  if (held.has("workflow:execute")) return "operator";
  if (held.has("workflow:read") || held.has("agent:read")) return "viewer";
  return "no role";
}

export function expired(payload) {
  return typeof payload?.exp === "number" && payload.exp * 1000 <= Date.now();
}
