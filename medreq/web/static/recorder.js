// A voice message recorded in the browser with MediaRecorder (WebM/Opus where supported).

const MAX_SECONDS = 120;
const TYPES = ["audio/webm;codecs=opus", "audio/webm", "audio/ogg;codecs=opus", "audio/mp4"];

export function recordingSupported() {
  return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.MediaRecorder);
}

export class VoiceRecorder {
  constructor({ onTick, onDone }) {
    this.onTick = onTick;
    this.onDone = onDone;
    this.recorder = null;
    this.stream = null;
    this.blob = null;
  }

  async start() {
    this.blob = null;
    this.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const mimeType = TYPES.find((type) => MediaRecorder.isTypeSupported(type));
    this.recorder = new MediaRecorder(this.stream, mimeType ? { mimeType } : {});
    const chunks = [];
    const started = Date.now();
    this.recorder.ondataavailable = (event) => { if (event.data.size) chunks.push(event.data); };
    this.recorder.onstop = () => {
      clearInterval(this.ticker);
      for (const track of this.stream.getTracks()) track.stop();
      this.blob = new Blob(chunks, { type: this.recorder.mimeType || "audio/webm" });
      this.onDone(this.blob);
    };
    this.ticker = setInterval(() => {
      const seconds = Math.floor((Date.now() - started) / 1000);
      this.onTick(seconds);
      if (seconds >= MAX_SECONDS) this.stop();
    }, 250);
    this.recorder.start(250);
  }

  stop() {
    if (this.recorder && this.recorder.state !== "inactive") this.recorder.stop();
  }

  get recording() { return !!this.recorder && this.recorder.state === "recording"; }

  /** The file name to upload under: its extension follows the recorded type. */
  fileName() {
    const type = (this.blob && this.blob.type) || "";
    if (type.includes("ogg")) return "reply.ogg";
    if (type.includes("mp4")) return "reply.m4a";
    return "reply.webm";
  }
}
