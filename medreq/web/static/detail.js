// One request opened: its facts, prescription, answer, and the thread with the other party.
// Built once per opened request; `update()` refreshes the parts that events change, so what
// the user is typing or recording survives every event.

import { api } from "./api.js";
import { recordingSupported, VoiceRecorder } from "./recorder.js";
import { session } from "./session.js";
import { state } from "./state.js";
import { announce, el, statusBadge, timeEl, toast } from "./ui.js";

const TYPING_IDLE_MS = 2500;
const TYPING_SHOWN_MS = 8000;

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

    this.container.replaceChildren(
      el("button", { type: "button", class: "link back", onclick: () => this.ctx.onClose() }, "← Back to the list"),
      this.heading, this.status, this.facts, this.prescription, this.answer, this.actions, this.thread,
    );
    this.renderPrescription();
    if (this.role === "pharmacy") this.buildAnswerForm();
  }

  update() {
    const req = this.request;
    this.status.replaceChildren("Status: ", statusBadge(req.status));
    const facts = [["Quantity", String(req.quantity)]];
    if (this.role === "patient") facts.unshift(["Pharmacy", req.pharmacy.name]);
    else {
      facts.unshift(["Patient", req.patient.name]);
      if (req.patient.phone) facts.push(["Phone", req.patient.phone]);
    }
    if (req.medicine_name) facts.push(["Medicine", req.medicine_name]);
    if (req.note) facts.push(["Note", req.note]);
    facts.push(["Sent", timeEl(req.created_at)]);
    this.facts.replaceChildren(...facts.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
    this.renderAnswer();
    this.renderActions();
    this.renderThread();
  }

  renderPrescription() {
    const req = this.request;
    if (!req.image_url) {
      this.prescription.replaceChildren(el("p", { class: "muted" }, "No prescription image (medicine named instead)."));
      return;
    }
    const label = `Prescription for request ${req.id}`;
    if (/\.pdf(\?|$)/.test(new URL(req.image_url, location.href).pathname)) {
      this.prescription.replaceChildren(
        el("a", { href: req.image_url, target: "_blank", rel: "noopener", class: "pdf-link" },
          el("span", { class: "pdf-icon", "aria-hidden": "true" }, "PDF"), "PDF prescription — open"),
      );
      return;
    }
    this.prescription.replaceChildren(
      el("a", { href: req.image_url, target: "_blank", rel: "noopener", class: "rx-link" },
        el("img", { src: req.image_url, alt: label, class: "rx" })),
    );
  }

  renderAnswer() {
    const req = this.request;
    const response = req.response;
    if (req.status !== "PENDING" && this.answerForm) {
      this.answerForm.remove();
      this.answerForm = null;
      if (this.recorder) this.recorder.stop();
    }
    if (!response) {
      let text = null;
      if (req.status === "CANCELLED") {
        text = this.role === "patient" ? "You cancelled this request." : "The patient cancelled this request.";
      } else if (this.role === "patient") {
        text = "Waiting for the pharmacy's answer…";
      }
      this.answer.hidden = !text;
      this.answer.replaceChildren(...(text ? [el("p", { class: "muted" }, text)] : []));
      this.answerKey = null;
      return;
    }
    this.answer.hidden = false;
    const who = this.role === "patient" ? req.pharmacy.name : "You";
    const verb = response.status === "ACCEPTED" ? "accepted" : "rejected";
    const parts = [el("h3", {}, "Answer"), el("p", {}, `${who} ${verb} this request at `, timeEl(response.responded_at), ".")];
    if (response.message) parts.push(el("blockquote", { class: "answer-text" }, response.message));
    if (response.audio_url) {
      parts.push(el("p", { class: "audio-label", id: `voice-${req.id}` }, "Voice message"));
      parts.push(el("audio", { controls: true, preload: "auto", src: response.audio_url, "aria-labelledby": `voice-${req.id}`, class: "voice" }));
    }
    const key = JSON.stringify(response);
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
    const voiceRow = recordingSupported()
      ? el("div", { class: "voice-row" }, this.recordButton, this.voiceClock, this.voicePreview, this.discardButton)
      : el("p", { class: "hint" }, "This browser cannot record audio.");
    this.answerForm = el(
      "form", { class: "answer-form", "aria-labelledby": "answer-title", onsubmit: submit("ACCEPTED") },
      el("h3", { id: "answer-title" }, "Answer"),
      el("label", { for: "answer-text" }, "Message to the patient"),
      message, voiceRow, this.answerError,
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
      this.answerError.textContent = error.message;
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
