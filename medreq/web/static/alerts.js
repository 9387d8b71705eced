// A chime made with WebAudio (no sound file to ship) and a desktop notification when allowed.

let context = null;

/** Create or wake the audio context: browsers allow it only from a user's gesture. */
export function unlockSound() {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return;
  if (!context) context = new Ctx();
  if (context.state === "suspended") context.resume().catch(() => {});
}

/** Two short rising tones, quiet enough not to startle. */
export function chime() {
  if (!context) unlockSound();
  if (!context) return;
  const start = context.currentTime + 0.01;
  [880, 1320].forEach((frequency, i) => {
    const osc = context.createOscillator();
    const gain = context.createGain();
    osc.type = "sine";
    osc.frequency.value = frequency;
    const t = start + i * 0.16;
    gain.gain.setValueAtTime(0.0001, t);
    gain.gain.exponentialRampToValueAtTime(0.2, t + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.3);
    osc.connect(gain).connect(context.destination);
    osc.start(t);
    osc.stop(t + 0.32);
  });
}

export function notificationsAllowed() {
  return "Notification" in window && Notification.permission === "granted";
}

export async function askForNotifications() {
  if (!("Notification" in window)) return "unsupported";
  if (Notification.permission === "default") return Notification.requestPermission();
  return Notification.permission;
}

/** A desktop notification (when permitted); clicking it focuses the tab and calls onClick. */
export function notify(title, body, tag, onClick) {
  if (!notificationsAllowed()) return;
  try {
    const note = new Notification(title, { body, tag });
    note.onclick = () => {
      window.focus();
      onClick();
      note.close();
    };
  } catch {
    // some platforms allow notifications only from a service worker: the sound still plays
  }
}
