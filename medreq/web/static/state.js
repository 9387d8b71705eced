// What the console knows: requests by id, their threads, read and typing state.
// Every event is applied idempotently, so a replay after a reconnect changes nothing twice.

export const state = {
  account: null,
  requests: new Map(), // id → <Request>
  threads: new Map(), // id → Map(message id → message)
  lastEventOf: new Map(), // request id → highest event_id seen for it
  readSent: new Map(), // request id → up_to_event_id we reported
  seenAt: new Map(), // request id → timestamp of the other party's latest read receipt
  unread: new Map(), // request id → count
  unreadOnServer: new Set(), // request ids the server last said had unread events (<Request>.unread)
  typing: new Map(), // request id → timer of the indicator
  selected: null, // the open request's id
  selectedGroup: null, // or the open group's (a patient's request to several pharmacies)
  next: null, // cursor of the next page of requests

  reset() {
    this.account = null;
    for (const map of [this.requests, this.threads, this.lastEventOf, this.readSent, this.seenAt, this.unread, this.unreadOnServer]) map.clear();
    for (const timer of this.typing.values()) clearTimeout(timer);
    this.typing.clear();
    this.selected = null;
    this.selectedGroup = null;
    this.next = null;
  },

  put(request) {
    const known = this.requests.get(request.id);
    // keep the thread and any fields an older copy had that this one lacks
    this.requests.set(request.id, known ? { ...known, ...request } : request);
    if (typeof request.unread === "number" && !this.unread.has(request.id)) this.unread.set(request.id, request.unread);
    if (request.unread > 0) this.unreadOnServer.add(request.id);
    if (Array.isArray(request.messages)) for (const message of request.messages) this.addMessage(request.id, message);
    return this.requests.get(request.id);
  },

  addMessage(requestId, message) {
    if (!this.threads.has(requestId)) this.threads.set(requestId, new Map());
    const thread = this.threads.get(requestId);
    if (thread.has(message.id)) return false;
    thread.set(message.id, message);
    return true;
  },

  messages(requestId) {
    const thread = this.threads.get(requestId);
    return thread ? [...thread.values()].sort((a, b) => a.id - b.id) : [];
  },

  sortedRequests() {
    return [...this.requests.values()].sort((a, b) => b.id - a.id);
  },

  /** The requests of a group (docs/protocol.md, asking several pharmacies), in the order asked. */
  groupMembers(group) {
    return [...this.requests.values()].filter((r) => r.group === group).sort((a, b) => a.id - b.id);
  },

  /**
   * The patient's list: one entry per single request (`{request}`) and one per group
   * (`{group, members}`), newest first.
   */
  listEntries() {
    const entries = [];
    const groups = new Map();
    for (const request of this.sortedRequests()) {
      if (request.group === null || request.group === undefined) {
        entries.push({ request });
        continue;
      }
      if (!groups.has(request.group)) {
        const entry = { group: request.group, members: [] };
        groups.set(request.group, entry);
        entries.push(entry);
      }
      groups.get(request.group).members.unshift(request); // oldest (first asked) first
    }
    return entries;
  },

  /** Apply a server event; returns the id of the request it touched (or null). */
  apply(event) {
    const id = event.request_id;
    if (typeof event.event_id === "number" && id) {
      this.lastEventOf.set(id, Math.max(this.lastEventOf.get(id) || 0, event.event_id));
    }
    const known = this.requests.get(id);
    switch (event.type) {
      case "new_request": {
        // a replayed `new_request` of a request already closed brings back nothing it lost
        const closed = known && known.status === "CANCELLED";
        this.put({
          id,
          patient: closed ? known.patient : { id: event.patient_id, name: event.patient_name, phone: event.patient_phone },
          pharmacy: known ? known.pharmacy : { id: this.account.id, name: this.account.name },
          quantity: event.quantity,
          medicine_name: event.medicine_name,
          note: event.note,
          image_url: closed ? known.image_url : event.image_url,
          asked_pharmacies: event.asked_pharmacies ?? (known ? known.asked_pharmacies : 1),
          status: known ? known.status : "PENDING",
          response: known ? known.response : null,
          created_at: known ? known.created_at : event.timestamp,
          updated_at: event.timestamp,
        });
        return id;
      }
      case "pharmacy_response":
        if (!known) return id;
        this.put({
          id,
          status: event.status,
          response: {
            status: event.status, message: event.message, audio_url: event.audio_url, responded_at: event.timestamp,
            price: event.price ?? null, currency: event.currency ?? null, ready_at: event.ready_at ?? null,
          },
          updated_at: event.timestamp,
        });
        return id;
      case "request_updated":
        // a request moves on from PENDING, or is closed (an accepted one too: the patient chose
        // another pharmacy of its group); never back, whatever order events are replayed in
        if (known && (known.status === "PENDING" || (event.status === "CANCELLED" && known.status === "ACCEPTED"))) {
          this.put({ id, status: event.status, updated_at: event.timestamp });
        }
        return id;
      case "request_cancelled":
        // the pharmacy's side: once closed, the patient's phone and prescription are no longer
        // its to see (docs/protocol.md, minimum necessary); they go from the screen at once
        if (known) {
          this.put({
            id, status: "CANCELLED", cancel_reason: event.reason || known.cancel_reason || null,
            image_url: null, patient: { ...known.patient, phone: null }, updated_at: event.timestamp,
          });
        }
        return id;
      case "request_chosen":
        if (known) this.put({ id, chosen: true, updated_at: event.timestamp });
        return id;
      case "message":
        this.addMessage(id, { id: event.message_id, from: event.from, text: event.text, created_at: event.timestamp });
        return id;
      case "read":
        if (event.by !== this.account.id) {
          const previous = this.seenAt.get(id);
          if (!previous || previous < event.timestamp) this.seenAt.set(id, event.timestamp);
        }
        return id;
      default:
        return id || null;
    }
  },
};
