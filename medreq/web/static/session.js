// The signed-in account and its tokens, kept in sessionStorage: they end with the tab, never
// written to disk beyond the browser's session.
//
// The server rotates refresh tokens: each works once, and one sent again revokes the whole
// sign-in (docs/security.md). A tab opened from this one (a duplicated tab, a link opened in a
// new tab) starts with a copy of this tab's sessionStorage, so both hold the same refresh token.
// Tabs therefore tell each other, on a BroadcastChannel of this origin (nothing leaves the
// browser), which refresh token they used up and what replaced it; a tab holding the used-up
// one takes the new pair instead of sending the old token again (api.js `refreshNow`).

const KEY = "medreq.session";
const listeners = new Set();
const adoptListeners = new Set();
const channel = "BroadcastChannel" in window ? new BroadcastChannel("medreq.session") : null;
let lastRotation = null; // { used, refresh, access, expires_in }: this tab's latest refresh
let waiting = null; // resolves `fromOtherTab` when another tab answers

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

  /** Called after tokens came from another tab (api.js reschedules its refresh). */
  onAdopt(fn) { adoptListeners.add(fn); },

  /** This tab used up refresh token `used`; `body` is the server's answer (new access and refresh). */
  rotated(used, body) {
    if (!this.data) return;
    this.data.refresh = body.refresh;
    this.setAccess(body.access, body.expires_in);
    lastRotation = { used, refresh: body.refresh, access: body.access, expires_in: body.expires_in };
    if (channel) channel.postMessage({ type: "rotated", ...lastRotation });
  },

  /** Tokens another tab got for the refresh token this tab holds. */
  adopt(message) {
    if (!this.data || this.data.refresh !== message.used) return false;
    this.data.refresh = message.refresh;
    this.setAccess(message.access, message.expires_in);
    for (const fn of adoptListeners) fn();
    if (waiting) waiting();
    return true;
  },

  /**
   * Before sending refresh token `used`: has another tab used it up already? Asks the other
   * tabs and waits a moment for an answer; true when this tab now holds their newer tokens.
   */
  async fromOtherTab(used) {
    if (!this.data || this.data.refresh !== used) return true;
    if (!channel) return false;
    const answered = new Promise((resolve) => {
      waiting = () => resolve(true);
      setTimeout(() => resolve(false), 300);
    });
    channel.postMessage({ type: "ask", used });
    const adopted = await answered;
    waiting = null;
    return adopted || !this.data || this.data.refresh !== used;
  },

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
    lastRotation = null;
    this.save();
    listeners.clear();
  },
};

if (channel) {
  channel.addEventListener("message", ({ data: message }) => {
    if (!message || !session.data) return;
    if (message.type === "rotated") session.adopt(message);
    else if (message.type === "ask" && lastRotation && lastRotation.used === message.used) {
      channel.postMessage({ type: "rotated", ...lastRotation }); // that tab still holds what we used up
    }
  });
}
