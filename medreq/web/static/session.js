// The signed-in account and its tokens, kept in sessionStorage: they end with the tab,
// never shared with another tab or written to disk beyond the browser's session.

const KEY = "medreq.session";
const listeners = new Set();

export function jwtExpiry(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(payload + "=".repeat((4 - (payload.length % 4)) % 4)));
    return typeof claims.exp === "number" ? claims.exp * 1000 : null;
  } catch {
    return null;
  }
}

export const session = {
  data: null,

  load() {
    try {
      this.data = JSON.parse(sessionStorage.getItem(KEY) || "null");
    } catch {
      this.data = null;
    }
    return this.data;
  },

  save() {
    if (this.data) sessionStorage.setItem(KEY, JSON.stringify(this.data));
    else sessionStorage.removeItem(KEY);
  },

  /** From a `POST /auth/token` answer. */
  start(tokens) {
    this.data = { account: tokens.account, refresh: tokens.refresh, lastEventId: null };
    this.setAccess(tokens.access, tokens.expires_in);
  },

  /** A new access token (from sign-in or refresh); listeners (the socket) hear of it. */
  setAccess(access, expiresIn) {
    const expiresAt = jwtExpiry(access) || Date.now() + (expiresIn || 3600) * 1000;
    this.data.access = access;
    this.data.expiresAt = expiresAt;
    this.data.issuedAt = Date.now();
    this.save();
    for (const fn of listeners) fn(access);
  },

  onAccess(fn) { listeners.add(fn); },

  get account() { return this.data && this.data.account; },
  get access() { return this.data && this.data.access; },

  set lastEventId(value) {
    if (!this.data) return;
    this.data.lastEventId = value;
    this.save();
  },
  get lastEventId() { return this.data ? this.data.lastEventId : null; },

  clear() {
    this.data = null;
    this.save();
    listeners.clear();
  },
};
