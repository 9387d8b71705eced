// One request opened: its facts, prescription, answer, and the thread with the other party.
// Built once per opened request; `update()` refreshes the parts that events change, so what
// the user is typing or recording survives every event.

import { api } from "./api.js";
import { recordingSupported, VoiceRecorder } from "./recorder.js";
import { session } from "./session.js";
import { state } from "./state.js";
import { announce, el, showFormError, statusBadge, timeEl, toast } from "./ui.js";

const TYPING_IDLE_MS = 2500;
const TYPING_SHOWN_MS = 8000;

/** A request's badge: its status, or "Chosen" for the accepted request its patient chose. */
export function requestBadge(req) {
  if (req.chosen && req.status === "ACCEPTED") {
    return el("span", { class: "badge badge-chosen", dataset: { status: "CHOSEN" } }, "Chosen");
  }
  return statusBadge(req.status);
}

/** A price as the patient's browser writes money ("€12.50"), or as given when it cannot. */
export function money(price, currency) {
  if (price === null || price === undefined || price === "") return null;
  if (!currency) return String(price);
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(Number(price));
  } catch {
    return `${price} ${currency}`;
  }
}

/** The offer an answer carries (price, when ready), as a small list; null without one. */
export function offerTerms(response) {
  if (!response) return null;
  const terms = [];
  const price = money(response.price, response.currency);
  if (price) terms.push(["Price", price]);
  if (response.ready_at) terms.push(["Ready", timeEl(response.ready_at)]);
  if (!terms.length) return null;
  return el("dl", { class: "facts offer-terms" }, ...terms.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

/** What a pharmacy answered: its words, its voice message and its offer. */
export function answerBody(req) {
  const response = req.response;
  const parts = [];
  if (response.message) parts.push(el("blockquote", { class: "answer-text" }, response.message));
  if (response.audio_url) {
    parts.push(el("p", { class: "audio-label", id: `voice-${req.id}` }, "Voice message"));
    parts.push(el("audio", { controls: true, preload: "auto", src: response.audio_url, "aria-labelledby": `voice-${req.id}`, class: "voice" }));
  }
  const terms = offerTerms(response);
  if (terms) parts.push(terms);
  return parts;
}

/**
 * Why a closed request is closed, in words for whoever is reading (null while open). A request of
 * a group closes when its patient chooses another pharmacy (docs/protocol.md, choosing one).
 */
export function closedText(req, role) {
  if (role === "patient") {
    if (req.chosen) return `You chose ${req.pharmacy.name}.`;
    if (req.status !== "CANCELLED") return null;
    const chosen = req.group !== null && req.group !== undefined ? state.groupMembers(req.group).find((r) => r.chosen) : null;
    if (chosen) return `Closed: you chose ${chosen.pharmacy.name}.`;
    if (req.cancel_reason === "another_pharmacy_chosen") return "Closed: you chose another pharmacy.";
    return "You cancelled this request.";
  }
  if (req.chosen) return "The patient chose your offer: expect them.";
  if (req.status !== "CANCELLED") return null;
  return req.cancel_reason === "another_pharmacy_chosen"
    ? "The patient chose another pharmacy."
    : "The patient cancelled this request.";
}

/** The prescription: an image, a PDF as a link, or why there is none to show. */
export function prescriptionNode(req, role) {
  if (!req.image_url) {
    const text = role === "pharmacy" && req.status === "CANCELLED"
      ? "The prescription is no longer shown: this request is closed."
      : "No prescription image (medicine named instead).";
    return el("p", { class: "muted" }, text);
  }
  const label = `Prescription for request ${req.id}`;
  if (/\.pdf(\?|$)/.test(new URL(req.image_url, location.href).pathname)) {
    return el("a", { href: req.image_url, target: "_blank", rel: "noopener", class: "pdf-link" },
      el("span", { class: "pdf-icon", "aria-hidden": "true" }, "PDF"), "PDF prescription — open");
  }
  return el("a", { href: req.image_url, target: "_blank", rel: "noopener", class: "rx-link" },
    el("img", { src: req.image_url, alt: label, class: "rx" }));
}

export class DetailView {
  /** ctx: { live, onClose, onChanged } */
  constructor(container, requestId, ctx) {
    this.container = container;
    this.id = requestId;
    this.ctx = ctx;
    this.role = state.account.role;
    this.typingSent = false;
    this.typingTimer = null;
    this.build();
    this.update();
  }

  get request() { return state.requests.get(this.id); }

  other() {
    const req = this.request;
    return this.role === "patient" ? req.pharmacy : req.patient;
  }

  build() {
    const req = this.request;
    const title = req.medicine_name || `Request #${req.id}`;
    this.heading = el("h2", { id: "detail-title", tabindex: "-1" }, title);
    this.container.setAttribute("aria-labelledby", "detail-title");
    this.status = el("p", { class: "detail-status" });
    this.facts = el("dl", { class: "facts" });
    this.prescription = el("div", { class: "prescription" });
    this.answer = el("section", { class: "answer", "aria-label": "Answer" });
    this.actions = el("div", { class: "actions" });

    this.threadList = el("ol", { class: "thread", "aria-label": "Messages" });
    this.typingLine = el("p", { class: "typing", hidden: true });
    this.messageInput = el("input", {
      id: "thread-input", name: "text", maxlength: "2000", autocomplete: "off",
      oninput: () => this.typed(),
    });
    const composer = el(
      "form", { class: "composer", onsubmit: (event) => { event.preventDefault(); this.sendMessage(); } },
      el("label", { for: "thread-input", class: "visually-hidden" }, "Message"),
      this.messageInput,
      el("button", { type: "submit" }, "Send"),
    );
    this.thread = el(
      "section", { class: "thread-box", "aria-labelledby": "thread-title" },
      el("h3", { id: "thread-title" }, `Messages with ${this.other().name}`),
      this.threadList, this.typingLine, composer,
    );

    // a patient's request that went to several pharmacies leads back to all their answers
    const grouped = this.role === "patient" && req.group !== null && req.group !== undefined;
    const toGroup = grouped
      ? el("p", {}, el("button", { type: "button", class: "link", onclick: () => this.ctx.onClose() }, "See every pharmacy's answer"))
      : null;
    this.container.replaceChildren(
      el("button", { type: "button", class: "link back", onclick: () => this.ctx.onClose() }, grouped ? "← Back to all answers" : "← Back to the list"),
      ...[this.heading, this.status, toGroup, this.facts, this.prescription, this.answer, this.actions, this.thread].filter(Boolean),
    );
    if (this.role === "pharmacy") this.buildAnswerForm();
  }

  update() {
    const req = this.request;
    this.status.replaceChildren("Status: ", requestBadge(req));
    const facts = [["Quantity", String(req.quantity)]];
    if (this.role === "patient") facts.unshift(["Pharmacy", req.pharmacy.name]);
    else {
      facts.unshift(["Patient", req.patient.name]);
      if (req.patient.phone) facts.push(["Phone", req.patient.phone]);
      if (req.asked_pharmacies > 1) facts.push(["Asked", `${req.asked_pharmacies} pharmacies at once; the patient chooses one`]);
    }
    if (req.medicine_name) facts.push(["Medicine", req.medicine_name]);
    if (req.note) facts.push(["Note", req.note]);
    facts.push(["Sent", timeEl(req.created_at)]);
    this.facts.replaceChildren(...facts.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
    this.renderPrescription();
    this.renderAnswer();
    this.renderActions();
    this.renderThread();
  }

  renderPrescription() {
    const req = this.request;
    // once closed, a pharmacy no longer sees the prescription: it goes at once (and its link stops working)
    // by the file, not its link: a request fetched again comes with a freshly signed link to the
    // same file, and an image replaced while it loads is a broken one
    const file = req.image_url ? new URL(req.image_url, location.href).pathname : "";
    const key = `${file}|${req.status}`;
    if (this.prescriptionKey === key) return;
    this.prescriptionKey = key;
    this.prescription.replaceChildren(prescriptionNode(req, this.role));
  }

  renderAnswer() {
    const req = this.request;
    const response = req.response;
    if (req.status !== "PENDING" && this.answerForm) {
      this.answerForm.remove();
      this.answerForm = null;
      if (this.recorder) this.recorder.stop();
    }
    const closed = closedText(req, this.role);
    if (!response) {
      let text = closed;
      if (!text && this.role === "patient") text = "Waiting for the pharmacy's answer…";
      this.answer.hidden = !text;
      this.answer.replaceChildren(...(text ? [el("p", { class: "muted closed-note" }, text)] : []));
      this.answerKey = null;
      return;
    }
    this.answer.hidden = false;
    const who = this.role === "patient" ? req.pharmacy.name : "You";
    const verb = response.status === "ACCEPTED" ? "accepted" : "rejected";
    const parts = [el("h3", {}, "Answer"), el("p", {}, `${who} ${verb} this request at `, timeEl(response.responded_at), "."), ...answerBody(req)];
    if (closed) parts.push(el("p", { class: req.chosen ? "chosen-note" : "muted closed-note" }, closed));
    const key = JSON.stringify([response, closed]);
    if (this.answerKey !== key) {
      this.answerKey = key;
      this.answer.replaceChildren(...parts);
    }
  }

  renderActions() {
    const req = this.request;
    if (this.role !== "patient" || req.status !== "PENDING") {
      this.actions.replaceChildren();
      return;
    }
    if (this.actions.childElementCount) return;
    const cancel = el("button", { type: "button", class: "danger", onclick: () => confirmBox.hidden = false }, "Cancel request");
    const confirmBox = el(
      "div", { class: "confirm", hidden: true, role: "group", "aria-label": "Confirm cancelling" },
      el("span", {}, "Cancel this request? The pharmacy is told at once. "),
      el("button", { type: "button", class: "danger", onclick: () => this.cancel() }, "Yes, cancel it"),
      el("button", { type: "button", class: "secondary", onclick: () => { confirmBox.hidden = true; cancel.focus(); } }, "Keep it"),
    );
    this.actions.replaceChildren(cancel, confirmBox);
  }

  async cancel() {
    try {
      const body = await api.cancel(this.id);
      state.put(body.data || body);
      announce("Request cancelled");
      this.ctx.onChanged(this.id);
      this.heading.focus();
    } catch (error) {
      toast(error.message);
    }
  }

  // --- pharmacy: the answer form with an optional voice message -----------------------------

  buildAnswerForm() {
    if (this.request.status !== "PENDING") return;
    const message = el("textarea", { id: "answer-text", name: "text_message", maxlength: "2000", rows: "3" });
    this.voicePreview = el("audio", { controls: true, class: "voice", hidden: true, "aria-label": "Your recorded voice message" });
    this.voiceClock = el("span", { class: "clock", "aria-live": "off" });
    this.recordButton = el("button", { type: "button", class: "secondary", "aria-pressed": "false", onclick: () => this.toggleRecording() }, "Record a voice message");
    this.discardButton = el("button", { type: "button", class: "link", hidden: true, onclick: () => this.discardVoice() }, "Remove the recording");
    this.answerError = el("p", { class: "form-error", role: "alert" });
    const submit = (status) => (event) => { event.preventDefault(); this.sendAnswer(status, message.value); };
    // an offer, so a patient who asked several pharmacies compares like with like (all optional)
    const offer = el(
      "fieldset", { class: "offer-fields" },
      el("legend", {}, "If you accept, your offer ", el("span", { class: "muted" }, "(optional)")),
      el("div", { class: "offer-row" },
        el("div", {},
          el("label", { for: "answer-price" }, "Price"),
          el("input", { id: "answer-price", name: "price", inputmode: "decimal", autocomplete: "off", maxlength: "12", "aria-describedby": "answer-price-hint" })),
        el("div", {},
          el("label", { for: "answer-currency" }, "Currency"),
          el("input", { id: "answer-currency", name: "currency", maxlength: "3", autocomplete: "off", "aria-describedby": "answer-price-hint", class: "currency" })),
        el("div", {},
          el("label", { for: "answer-ready" }, "Ready for pickup"),
          el("input", { id: "answer-ready", name: "ready_at", type: "datetime-local" }))),
      el("p", { id: "answer-price-hint", class: "hint" }, "Price like 12.50; currency in three letters (EUR), else the server's own."),
    );
    const voiceRow = recordingSupported()
      ? el("div", { class: "voice-row" }, this.recordButton, this.voiceClock, this.voicePreview, this.discardButton)
      : el("p", { class: "hint" }, "This browser cannot record audio.");
    this.answerForm = el(
      "form", { class: "answer-form", "aria-labelledby": "answer-title", onsubmit: submit("ACCEPTED") },
      el("h3", { id: "answer-title" }, "Answer"),
      el("label", { for: "answer-text" }, "Message to the patient"),
      message, voiceRow, offer, this.answerError,
      el("div", { class: "row" },
        el("button", { type: "submit", class: "accept" }, "Accept"),
        el("button", { type: "button", class: "danger", onclick: submit("REJECTED") }, "Reject")),
    );
    this.answer.after(this.answerForm);
  }

  async toggleRecording() {
    if (this.recorder && this.recorder.recording) {
      this.recorder.stop();
      return;
    }
    this.discardVoice();
    this.recorder = new VoiceRecorder({
      onTick: (s) => { this.voiceClock.textContent = `Recording… ${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`; },
      onDone: (blob) => {
        this.voiceBlob = blob;
        this.voicePreview.src = URL.createObjectURL(blob);
        this.voicePreview.hidden = false;
        this.discardButton.hidden = false;
        this.voiceClock.textContent = "Recorded.";
        this.recordButton.textContent = "Record again";
        this.recordButton.setAttribute("aria-pressed", "false");
        announce("Voice message recorded");
      },
    });
    try {
      await this.recorder.start();
      this.recordButton.textContent = "Stop recording";
      this.recordButton.setAttribute("aria-pressed", "true");
    } catch (error) {
      this.answerError.textContent = `The microphone is not available: ${error.message || error.name}`;
    }
  }

  discardVoice() {
    this.voiceBlob = null;
    if (this.voicePreview) {
      if (this.voicePreview.src) URL.revokeObjectURL(this.voicePreview.src);
      this.voicePreview.removeAttribute("src");
      this.voicePreview.hidden = true;
      this.discardButton.hidden = true;
      this.voiceClock.textContent = "";
      this.recordButton.textContent = "Record a voice message";
    }
  }

  async sendAnswer(status, text) {
    if (this.recorder && this.recorder.recording) {
      this.answerError.textContent = "Stop the recording first.";
      return;
    }
    const form = new FormData();
    form.append("request_id", String(this.id));
    form.append("status", status);
    if (text.trim()) form.append("text_message", text.trim());
    const fields = this.answerForm.elements;
    const price = fields.price.value.trim().replace(",", ".");
    if (status === "ACCEPTED" && price) form.append("price", price);
    const currency = fields.currency.value.trim().toUpperCase();
    if (status === "ACCEPTED" && price && currency) form.append("currency", currency);
    const ready = fields.ready_at.value; // the pharmacy's local time, sent with its offset (UTC)
    if (status === "ACCEPTED" && ready && !Number.isNaN(new Date(ready).getTime())) {
      form.append("ready_at", new Date(ready).toISOString().replace("Z", "+00:00"));
    }
    if (this.voiceBlob) form.append("audio", this.voiceBlob, this.recorder.fileName());
    const buttons = this.answerForm.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const body = await api.respond(form);
      state.put(body.data);
      announce(status === "ACCEPTED" ? "Request accepted" : "Request rejected");
      this.ctx.onChanged(this.id);
      this.heading.focus();
    } catch (error) {
      showFormError(this.answerForm, this.answerError, error);
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  // --- the thread ------------------------------------------------------------------------------

  renderThread() {
    const me = state.account.id;
    const seenAt = state.seenAt.get(this.id);
    const items = state.messages(this.id).map((m) => {
      const mine = m.from === me;
      const seen = mine && seenAt && m.created_at && m.created_at <= seenAt;
      return el(
        "li", { class: mine ? "mine" : "theirs", dataset: { messageId: m.id } },
        el("span", { class: "from" }, mine ? "You" : this.other().name),
        el("span", { class: "text" }, m.text),
        el("span", { class: "meta" }, timeEl(m.created_at), seen ? el("span", { class: "seen" }, " · Seen") : null),
      );
    });
    if (!items.length) items.push(el("li", { class: "empty muted" }, "No messages yet."));
    this.threadList.replaceChildren(...items);
  }

  showTyping(active) {
    clearTimeout(state.typing.get(this.id));
    this.typingLine.hidden = !active;
    this.typingLine.textContent = active ? `${this.other().name} is typing…` : "";
    if (active) state.typing.set(this.id, setTimeout(() => this.showTyping(false), TYPING_SHOWN_MS));
  }

  typed() {
    if (!this.typingSent) {
      this.typingSent = true;
      this.ctx.live.send({ type: "typing", request_id: this.id, state: "start" }, { expectAnswer: false }).catch(() => {});
    }
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
  }

  stopTyping() {
    clearTimeout(this.typingTimer);
    if (!this.typingSent) return;
    this.typingSent = false;
    this.ctx.live.send({ type: "typing", request_id: this.id, state: "stop" }, { expectAnswer: false }).catch(() => {});
  }

  async sendMessage() {
    const text = this.messageInput.value.trim();
    if (!text) return;
    this.stopTyping();
    let message;
    try {
      // over the socket when it is up (an ack), else over REST
      const ack = await this.ctx.live.send({ type: "message", request_id: this.id, text }).catch((error) => {
        if (error && error.code !== "closed") throw error;
        return null;
      });
      message = ack ? ack.message : (await api.message(this.id, text)).message;
    } catch (error) {
      toast(error.message || "The message was not sent.");
      return;
    }
    this.messageInput.value = "";
    if (message) state.addMessage(this.id, message);
    this.renderThread();
  }

  /** Report what has been read of this request, while it is open and the tab is visible. */
  markRead() {
    if (document.visibilityState !== "visible") return;
    let upTo = state.lastEventOf.get(this.id) || 0;
    // Events the server counts as unread that this page never saw live (they came before it
    // connected): the whole request was just fetched, so everything up to the account's latest
    // event is on screen.
    if (state.unreadOnServer.has(this.id)) upTo = Math.max(upTo, session.lastEventId || 0);
    if (!upTo || upTo <= (state.readSent.get(this.id) || 0)) return;
    state.readSent.set(this.id, upTo);
    state.unreadOnServer.delete(this.id);
    this.ctx.live.send({ type: "read", request_id: this.id, up_to_event_id: upTo }).catch(() => {
      state.readSent.delete(this.id);
    });
  }

  destroy() {
    this.stopTyping();
    if (this.recorder) this.recorder.stop();
    clearTimeout(state.typing.get(this.id));
  }
}
