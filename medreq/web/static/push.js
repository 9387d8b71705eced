// Web Push for the console (docs/protocol.md §5): the browser's push subscription, registered with
// the server so that events reach a signed-in person whose console tab is closed. `sw.js` shows them.

import { call } from "./api.js";

export function pushSupported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

function keyBytes(base64url) {
  const padded = base64url.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (base64url.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

/**
 * Subscribe this browser and tell the server. Resolves to "on", or "unsupported" when the
 * browser has no service workers or no push service (it still gets in-tab notifications);
 * rejects with the server's ApiError (403 `reauthentication_required`: a sign-in too old).
 */
export function enablePush() {
  enabling = subscribe();
  return enabling;
}

// The subscribing in flight: a sign-out right after a sign-in (which subscribes on its own when
// permission was given before) waits for it, or its POST could land after the sign-out's DELETE
// and leave the browser subscribed to the account that signed out (seen in the browser test).
let enabling = null;

async function subscribe() {
  if (!pushSupported()) return "unsupported";
  let subscription;
  try {
    const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    await navigator.serviceWorker.ready;
    const { public_key: publicKey } = await call("GET", "/push/vapid-public-key");
    subscription = await registration.pushManager.getSubscription();
    const key = subscription && subscription.options && subscription.options.applicationServerKey;
    if (subscription && key && !sameKey(new Uint8Array(key), keyBytes(publicKey))) {
      await subscription.unsubscribe(); // made for another server key: useless now
      subscription = null;
    }
    if (!subscription) {
      subscription = await registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: keyBytes(publicKey),
      });
    }
  } catch {
    return "unsupported"; // no push service in this browser (or the server has no push support)
  }
  await call("POST", "/push/subscriptions", { json: subscription.toJSON() });
  return "on";
}

/** This browser's push subscription endpoint, or null (none, or no push support). */
export async function currentEndpoint() {
  if (!pushSupported()) return null;
  try {
    const registration = await navigator.serviceWorker.getRegistration("/");
    const subscription = registration && (await registration.pushManager.getSubscription());
    return subscription ? subscription.endpoint : null;
  } catch {
    return null;
  }
}

function sameKey(a, b) {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/**
 * On sign-out: forget this browser at the server and at the push service, so a shared computer
 * shows nothing of the next person's or the last person's requests. Never throws.
 */
export async function disablePush({ server = true } = {}) {
  if (!pushSupported()) return;
  if (enabling) await enabling.catch(() => {});
  try {
    const registration = await navigator.serviceWorker.getRegistration("/");
    const subscription = registration && (await registration.pushManager.getSubscription());
    if (!subscription) return;
    if (server) {
      await call("DELETE", "/push/subscriptions", { json: { endpoint: subscription.endpoint } }).catch(() => {});
    }
    // without the server's word (an ended session), the push service's 410 removes it there
    await subscription.unsubscribe();
  } catch {
    // nothing to undo
  }
}
