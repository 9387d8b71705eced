// A patient's request to several pharmacies at once (docs/protocol.md, asking several pharmacies):
// one panel with each pharmacy's answer as it arrives (its words, voice message and offer), and
// *Choose* on each that accepted. Choosing one closes the others; they read "Closed: you chose …".
// Each pharmacy's card is rebuilt only when that pharmacy's request changes, so a voice message
// playing in one survives the others' answers.

import { api } from "./api.js";
import { answerBody, closedText, prescriptionNode, requestBadge } from "./detail.js";
import { state } from "./state.js";
import { announce, el, timeEl, toast } from "./ui.js";

export class GroupView {
  /** ctx: { live, onClose, onOpen(requestId), onChanged } */
  constructor(container, group, ctx) {
    this.container = container;
    this.group = group;
    this.id = null; // no single request is open
    this.ctx = ctx;
    this.cards = new Map(); // request id → { key, node }
    this.build();
    this.update();
  }

  get members() { return state.groupMembers(this.group); }

  has(requestId) {
    const req = state.requests.get(requestId);
    return Boolean(req) && req.group === this.group;
  }

  build() {
    const first = this.members[0];
    this.heading = el("h2", { id: "detail-title", tabindex: "-1" }, first.medicine_name || `Request #${first.id}`);
    this.container.setAttribute("aria-labelledby", "detail-title");
    this.status = el("p", { class: "detail-status group-status", id: "group-status" });
    this.facts = el("dl", { class: "facts" });
    this.prescription = el("div", { class: "prescription" });
    this.list = el("ol", { class: "offers", "aria-label": "Answers" });
    // the answers first, to compare; what was asked below them
    this.container.replaceChildren(
      el("button", { type: "button", class: "link back", onclick: () => this.ctx.onClose() }, "← Back to the list"),
      this.heading, this.status,
      el("h3", { class: "visually-hidden" }, "The pharmacies' answers"), this.list,
      el("h3", {}, "Your request"), this.facts, this.prescription,
    );
  }

  update() {
    const members = this.members;
    if (!members.length) return;
    const first = members[0];
    const asked = Math.max(first.asked_pharmacies || 0, members.length);
    const chosen = members.find((r) => r.chosen);
    const accepted = members.filter((r) => r.status === "ACCEPTED").length;
    const waiting = members.filter((r) => r.status === "PENDING").length;
    let summary;
    if (chosen) summary = `You chose ${chosen.pharmacy.name}.`;
    else if (accepted) summary = `${accepted} of ${asked} accepted${waiting ? `, ${waiting} yet to answer` : ""}: choose one.`;
    else if (waiting) summary = `Sent to ${asked} pharmacies: waiting for their answers…`;
    else summary = "No pharmacy accepted this request.";
    this.status.textContent = summary;

    const facts = [["Asked", `${asked} pharmacies`], ["Quantity", String(first.quantity)]];
    if (first.medicine_name) facts.push(["Medicine", first.medicine_name]);
    if (first.note) facts.push(["Note", first.note]);
    facts.push(["Sent", timeEl(first.created_at)]);
    this.facts.replaceChildren(...facts.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
    const imageKey = first.image_url ? new URL(first.image_url, location.href).pathname : "";
    if (this.imageKey !== imageKey) {
      this.imageKey = imageKey;
      this.prescription.replaceChildren(prescriptionNode(first, "patient"));
    }

    const cards = members.map((req) => {
      const key = JSON.stringify([req.status, req.response, req.chosen, req.cancel_reason, Boolean(chosen), state.unread.get(req.id) || 0]);
      const known = this.cards.get(req.id);
      if (known && known.key === key) return known.node;
      const node = this.card(req, Boolean(chosen));
      this.cards.set(req.id, { key, node });
      return node;
    });
    // put the cards in order, moving none that is already in place (a playing voice message keeps playing)
    cards.forEach((node, index) => {
      if (this.list.children[index] !== node) this.list.insertBefore(node, this.list.children[index] || null);
    });
    while (this.list.children.length > cards.length) this.list.lastElementChild.remove();
  }

  card(req, anyChosen) {
    const name = req.pharmacy.name;
    const titleId = `offer-${req.id}`;
    const parts = [el("div", { class: "offer-head" }, el("h4", { id: titleId }, name), requestBadge(req))];
    const response = req.response;
    if (response) {
      const verb = response.status === "ACCEPTED" ? "Accepted" : "Rejected";
      parts.push(el("p", { class: "offer-when" }, `${verb} at `, timeEl(response.responded_at), "."));
      parts.push(...answerBody(req));
    } else if (req.status === "PENDING") {
      parts.push(el("p", { class: "muted" }, "Waiting for its answer…"));
    }
    const closed = closedText(req, "patient");
    if (closed && req.status === "CANCELLED") parts.push(el("p", { class: "closed-note" }, closed));
    if (req.chosen) parts.push(el("p", { class: "chosen-note" }, "You chose this pharmacy: it has been told."));

    const actions = el("div", { class: "row" });
    if (req.status === "ACCEPTED" && !anyChosen) {
      const confirmBox = el("div", { class: "confirm", hidden: true, role: "group", "aria-label": `Confirm choosing ${name}` });
      const choose = el("button", {
        type: "button", class: "accept", "aria-describedby": titleId,
        onclick: () => { confirmBox.hidden = false; confirmBox.querySelector("button").focus(); },
      }, "Choose", el("span", { class: "visually-hidden" }, ` ${name}`));
      confirmBox.append(
        el("span", {}, `Choose ${name}? The other pharmacies are told at once and no longer see your prescription. `),
        el("button", { type: "button", class: "accept", onclick: (event) => this.choose(req.id, event.currentTarget) }, "Yes, choose it"),
        el("button", { type: "button", class: "secondary", onclick: () => { confirmBox.hidden = true; choose.focus(); } }, "Not yet"),
      );
      actions.append(choose);
      parts.push(actions, confirmBox);
    } else {
      parts.push(actions);
    }
    const unread = state.unread.get(req.id) || 0;
    actions.append(el(
      "button", { type: "button", class: "secondary", onclick: () => this.ctx.onOpen(req.id) },
      "Messages", el("span", { class: "visually-hidden" }, ` with ${name}`),
      unread ? el("span", { class: "unread-inline" }, ` · ${unread} new`) : null,
    ));
    return el("li", { class: "offer", dataset: { requestId: req.id, status: req.status }, "aria-labelledby": titleId }, ...parts);
  }

  async choose(requestId, button) {
    const name = state.requests.get(requestId).pharmacy.name;
    button.disabled = true;
    try {
      const body = await api.choose(requestId);
      state.put(body.data || body);
      announce(`You chose ${name}. The other pharmacies have been told.`);
    } catch (error) {
      toast(error.message);
    }
    // the others were closed in the same transaction (or, on a 409, someone chose meanwhile)
    try {
      for (const req of (await api.group(this.group)).results) state.put(req);
    } catch (error) {
      toast(error.message);
    }
    this.ctx.onChanged();
    this.status.setAttribute("tabindex", "-1");
    this.status.focus();
  }

  /**
   * The group's answers are on screen: report read what this panel shows of each pharmacy (its
   * answer, its closing), but not a pharmacy with unread messages, which its *Messages* opens.
   */
  markRead() {
    if (document.visibilityState !== "visible") return;
    for (const req of this.members) {
      if ((state.unread.get(req.id) || 0) > 0 || state.unreadOnServer.has(req.id)) continue;
      const upTo = state.lastEventOf.get(req.id) || 0;
      if (!upTo || upTo <= (state.readSent.get(req.id) || 0)) continue;
      state.readSent.set(req.id, upTo);
      this.ctx.live.send({ type: "read", request_id: req.id, up_to_event_id: upTo }).catch(() => {
        state.readSent.delete(req.id);
      });
    }
  }

  showTyping() {}

  destroy() {}
}
