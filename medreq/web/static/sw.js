// The console's service worker: Web Push notifications while no console tab is open
// (docs/protocol.md §5, "Reaching accounts that are not connected").
//
// The server pushes an event only to an account with no live socket, so this worker never
// competes with an open tab's own notification. A notification can show on a locked screen:
// it names the request by number and what happened, never a patient, phone or medicine
// (medical data stays behind the sign-in). It does no fetching and keeps nothing.

// One entry per event the server pushes: medreq.protocol.UNREAD, which tests/test_unread_set.py
// holds these keys to (the set itself is not fetched: each kind needs its own words here anyway).
const TEXT = {
  new_request: (e) => ["New medicine request", `Request #${e.request_id} is waiting for an answer.`],
  pharmacy_response: (e) => [
    e.status === "ACCEPTED" ? "Your request was accepted" : "Your request was answered",
    `The pharmacy answered request #${e.request_id}.`,
  ],
  // the push carries no reason: the patient cancelled, or chose another pharmacy of those asked
  request_cancelled: (e) => ["Request closed", `The patient closed request #${e.request_id}.`],
  request_chosen: (e) => ["Your offer was chosen", `The patient chose you for request #${e.request_id}.`],
  message: (e) => ["New message", `A new message about request #${e.request_id}.`],
};

/** Title and body for a pushed event, or null for events that need no notification. */
function describe(event) {
  const text = TEXT[event && event.type];
  return text ? text(event) : null;
}

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let data = null;
  try {
    data = event.data ? event.data.json() : null;
  } catch {
    data = null;
  }
  // Browsers require a visible notification for every push (userVisibleOnly): an event of a kind
  // this worker does not describe still gets a plain one.
  const [title, body] = describe(data) || ["medreq", "Something changed in one of your requests."];
  const tag = data && data.request_id ? `request-${data.request_id}` : "medreq";
  event.waitUntil(
    self.registration.showNotification(title, {
      body,
      tag,
      renotify: true,
      icon: "/static/favicon.svg",
      data: { request_id: data && data.request_id ? data.request_id : null },
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(
    (async () => {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const open = windows.find((client) => new URL(client.url).pathname === "/");
      if (open) return open.focus();
      return self.clients.openWindow("/");
    })(),
  );
});
