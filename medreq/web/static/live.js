// The account's WebSocket (docs/protocol.md §4–§5): ?token=, resume with ?after=, reconnect with
// backoff, drop duplicates by event_id, renew the token in band before it expires.

import { refreshNow } from "./api.js";
import { session } from "./session.js";

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];
const PING_EVERY_MS = 25_000;
const PING_TIMEOUT_MS = 10_000;

export class Live {
  /**
   * onEvent(event): every event, once, in order (typing and presence too).
   * onState(state): "connecting" | "live" | "reconnecting" | "closed".
   * onResync(): the server pruned events we missed: refetch state over REST.
   */
  constructor({ onEvent, onState, onResync }) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.onResync = onResync || (() => {});
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.nextId = 1;
    this.pending = new Map();
    this.stopped = false;
    this.state = "closed";
    this.onAccess = (access) => this.renew(access);
  }

  start() {
    this.stopped = false;
    session.onAccess(this.onAccess);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.stopPings();
    if (this.ws) this.ws.close(1000, "signed out");
    this.ws = null;
    this.setState("closed");
  }

  url() {
    const account = session.account;
    const kind = account.role === "patient" ? "user" : "pharmacy";
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let url = `${scheme}//${location.host}/ws/${kind}/${account.id}/?token=${encodeURIComponent(session.access)}`;
    if (session.lastEventId !== null && session.lastEventId !== undefined) url += `&after=${session.lastEventId}`;
    return url;
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }

  connect() {
    if (this.stopped) return;
    this.setState(this.attempt === 0 && this.state !== "reconnecting" ? "connecting" : "reconnecting");
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.startPings();
      // learn where "now" is when this session has no position yet (pong carries it)
      this.send({ type: "ping" }).then((pong) => {
        if (session.lastEventId === null && pong && typeof pong.last_event_id === "number") {
          session.lastEventId = pong.last_event_id;
        }
        if (ws === this.ws) {
          this.attempt = 0;
          this.setState("live");
        }
      }, () => {});
    };
    ws.onmessage = (message) => { if (ws === this.ws) this.receive(message.data); };
    ws.onclose = (event) => { if (ws === this.ws) this.closed(event.code); };
  }

  receive(text) {
    let data;
    try {
      data = JSON.parse(text);
    } catch {
      return;
    }
    if (data.type === "pong") this.armPong();
    if ((data.type === "ack" || data.type === "error" || data.type === "pong") && data.ref != null && this.pending.has(data.ref)) {
      const { resolve, reject } = this.pending.get(data.ref);
      this.pending.delete(data.ref);
      if (data.type === "error") reject(data.error);
      else resolve(data);
      return;
    }
    if (data.type === "resync_required") {
      this.onResync();
      return;
    }
    if (typeof data.event_id === "number") {
      const last = session.lastEventId;
      if (last !== null && data.event_id <= last) return; // a duplicate (at-least-once delivery)
      session.lastEventId = data.event_id;
    }
    if (data.type !== "ack" && data.type !== "error" && data.type !== "pong") this.onEvent(data);
  }

  closed(code) {
    this.stopPings();
    this.ws = null;
    for (const { reject } of this.pending.values()) reject({ code: "closed", message: "connection closed" });
    this.pending.clear();
    if (this.stopped) return;
    this.setState("reconnecting");
    if (code === 4401) {
      // the token expired or was refused: reconnect at once with a fresh one
      refreshNow().then((ok) => { if (ok) this.connect(); }, () => this.retry());
      return;
    }
    if (code === 4403) {
      this.setState("closed");
      this.stopped = true;
      return;
    }
    this.retry();
  }

  retry() {
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), base / 2 + Math.random() * base / 2);
  }

  /** Send a message; resolves with its `ack` (or `pong`), rejects with its error. */
  send(message, { expectAnswer = true } = {}) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return Promise.reject({ code: "closed", message: "not connected" });
    if (!expectAnswer) {
      this.ws.send(JSON.stringify(message));
      return Promise.resolve(null);
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ ...message, id }));
    });
  }

  /** A renewed access token: hand it to the open socket; if refused, reconnect with it. */
  renew(access) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    const ws = this.ws;
    this.send({ type: "auth", token: access }).catch(() => {
      if (ws === this.ws) ws.close(4000, "reconnecting with a fresh token");
    });
  }

  startPings() {
    this.stopPings();
    this.pingTimer = setInterval(() => {
      this.send({ type: "ping" }, { expectAnswer: false }).catch(() => {});
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => { if (this.ws) this.ws.close(4000, "no pong"); }, PING_TIMEOUT_MS);
    }, PING_EVERY_MS);
  }

  armPong() { clearTimeout(this.pongTimer); }

  stopPings() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  }
}
