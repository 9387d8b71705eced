// REST calls (docs/protocol.md §2–§3) with the bearer token, refreshed before it expires.

import { session } from "./session.js";

export class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
    this.fields = error.fields || null;
  }
}

let refreshing = null;
let refreshTimer = null;
let onExpired = () => {};

/** Called when the session cannot be renewed (refresh token expired or revoked). */
export function whenSessionExpires(fn) { onExpired = fn; }

async function request(method, path, { json, form, auth = true, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form; // the browser sets multipart/form-data with its boundary
  }
  if (auth && session.access) init.headers.Authorization = `Bearer ${session.access}`;
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, { code: "network", message: "The server cannot be reached. Try again in a moment." });
  }
  if (response.status === 204) return null;
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) throw new ApiError(response.status, (body && body.error) || {});
  return body;
}

/** One refresh at a time across this origin's tabs (Web Locks, where the browser has them). */
function oneAtATime(fn) {
  return navigator.locks ? navigator.locks.request("medreq.refresh", fn) : fn();
}

/**
 * New access and refresh tokens; one refresh at a time. The refresh token sent is used up (sent
 * again, the server revokes the sign-in), so the new one is kept at once, and a refresh token
 * another tab has used up already is replaced by that tab's answer, never sent (session.js).
 */
export function refreshNow() {
  if (!refreshing) {
    refreshing = (async () => {
      try {
        const renewed = await oneAtATime(async () => {
          const used = session.data && session.data.refresh;
          if (!used) return false; // signed out meanwhile
          if (await session.fromOtherTab(used)) return Boolean(session.data);
          const body = await request("POST", "/auth/refresh", { json: { refresh: used }, auth: false });
          session.rotated(used, body);
          return true;
        });
        if (renewed) scheduleRefresh();
        return renewed;
      } catch (error) {
        if (error.status === 401) {
          onExpired();
          return false;
        }
        // offline or server down: try again soon
        clearTimeout(refreshTimer);
        refreshTimer = setTimeout(refreshNow, 5000);
        throw error;
      } finally {
        refreshing = null;
      }
    })();
  }
  return refreshing;
}

/** When the access token is due for renewal: at 80% of its life, and at least a minute before it
 * ends (half its life when it lives under two minutes). */
function renewAt() {
  const life = session.data.expiresAt - session.data.issuedAt;
  const lead = Math.max(Math.min(60_000, life / 2), life * 0.2);
  return session.data.expiresAt - lead;
}

export function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!session.data) return;
  const delay = Math.max(0, renewAt() - Date.now());
  refreshTimer = setTimeout(() => { refreshNow().catch(() => {}); }, delay);
}

export function stopRefresh() { clearTimeout(refreshTimer); }

session.onAdopt(() => scheduleRefresh()); // tokens from another tab: refresh when they age

/** An authenticated call; on 401 renew the token once and retry. */
export async function call(method, path, options = {}) {
  // a call made after the renewal time (the timer slept with the laptop, say) renews first; a
  // fixed margin here instead renewed on every call when tokens live under that margin
  if (session.data && Date.now() >= renewAt()) await refreshNow().catch(() => {});
  try {
    return await request(method, path, options);
  } catch (error) {
    if (error.status === 401 && options.auth !== false && session.data && (await refreshNow().catch(() => false))) {
      return request(method, path, options);
    }
    throw error;
  }
}

export const api = {
  register: (body) => request("POST", "/auth/register", { json: body, auth: false }),
  token: (username, password) => request("POST", "/auth/token", { json: { username, password }, auth: false }),
  logout: (refresh) => request("POST", "/auth/logout", { json: { refresh } }),
  me: () => call("GET", "/auth/me"),
  pharmacies: () => call("GET", "/pharmacies/"),
  requests: (query = "") => call("GET", `/medicine/request/${query}`),
  request: (id) => call("GET", `/medicine/request/${id}/`),
  create: (form, key) => call("POST", "/medicine/request/", { form, headers: { "Idempotency-Key": key } }),
  respond: (form) => call("POST", "/medicine/response/", { form }),
  cancel: (id) => call("POST", `/medicine/request/${id}/cancel/`),
  choose: (id) => call("POST", `/medicine/request/${id}/choose/`),
  group: (group) => call("GET", `/medicine/request/?group=${encodeURIComponent(String(group))}&limit=100`),
  message: (id, text) => call("POST", `/medicine/request/${id}/messages/`, { json: { text } }),
};
