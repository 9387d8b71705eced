// The medreq web console: sign in or register, then the patient's or the pharmacy's screen,
// kept live by the account's WebSocket. Plain ES modules, no build step, nothing from a CDN.

import { api, ApiError, scheduleRefresh, stopRefresh, whenSessionExpires } from "./api.js";
import { askForNotifications, chime, notificationsAllowed, notify, unlockSound } from "./alerts.js";
import { disablePush, enablePush } from "./push.js";
import { askToSignInAgain, hideDevices, showDevices } from "./devices.js";
import { DetailView } from "./detail.js";
import { Live } from "./live.js";
import { session } from "./session.js";
import { state } from "./state.js";
import { $, announce, el, missingFields, showFormError, showScreen, statusBadge, timeEl, toast } from "./ui.js";

/** The events the server counts as unread (docs/protocol.md, unread counts). */
const UNREAD_TYPES = ["new_request", "pharmacy_response", "message", "request_cancelled"];

let live = null;
let detail = null;

const CONNECTION_TEXT = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", closed: "Offline" };

// The sticky top bar's height, for the stylesheet's scroll-padding: what focus or a scroll brings
// into view stops below the bar, also when it wraps to two lines on a phone.
const topbar = document.querySelector(".topbar");
new ResizeObserver(() => {
  document.documentElement.style.setProperty("--topbar-h", `${topbar.offsetHeight}px`);
}).observe(topbar);

/** Scroll so that `element` starts just below the top bar, unless it already starts in view. */
function revealTop(element) {
  const top = element.getBoundingClientRect().top;
  if (top < topbar.getBoundingClientRect().bottom || top > window.innerHeight / 2) element.scrollIntoView({ block: "start" });
}

// --- signing in, registering, signing out ---------------------------------------------------

function showSignIn(message) {
  showScreen("signin");
  $("signin-error").textContent = message || "";
  $("signin-username").focus();
}

function showRegister() {
  showScreen("register");
  $("register-name").focus();
}

$("to-register").addEventListener("click", (event) => { event.preventDefault(); showRegister(); });
$("to-signin").addEventListener("click", (event) => { event.preventDefault(); showSignIn(); });

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  unlockSound(); // a user's gesture: the pharmacy's chime may play from now on
  const form = event.currentTarget;
  const username = form.elements.username.value.trim();
  const password = form.elements.password.value;
  const missing = missingFields(form);
  if (missing) {
    showFormError(form, $("signin-error"), { fields: missing }, { sentences: true });
    return;
  }
  try {
    session.start(await api.token(username, password));
    form.reset();
    showFormError(form, $("signin-error"), null);
    enterConsole();
  } catch (error) {
    showFormError(form, $("signin-error"), { message: error.status === 401 ? "Wrong username or password." : error.message });
    $("signin-password").focus();
  }
});

$("register-form").addEventListener("change", (event) => {
  if (event.target.name !== "role") return;
  const pharmacy = event.target.value === "pharmacy";
  $("register-name-label").textContent = pharmacy ? "Pharmacy name" : "Your name";
  $("register-name").dataset.missing = pharmacy ? "Enter the pharmacy's name." : "Enter your name.";
  $("register-phone-hint").textContent = pharmacy ? "Shown to patients." : "The pharmacy sees it with your requests.";
  $("register-note").hidden = !pharmacy;
});

$("register-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  unlockSound();
  const form = event.currentTarget;
  const body = {
    role: form.elements.role.value,
    name: form.elements.name.value.trim(),
    phone: form.elements.phone.value.trim() || null,
    username: form.elements.username.value.trim(),
    password: form.elements.password.value,
  };
  const missing = missingFields(form);
  if (missing) {
    showFormError(form, $("register-error"), { fields: missing }, { sentences: true });
    return;
  }
  try {
    await api.register(body);
    session.start(await api.token(body.username, body.password));
    form.reset();
    showFormError(form, $("register-error"), null);
    enterConsole();
  } catch (error) {
    showFormError(form, $("register-error"), error instanceof ApiError ? error : { message: String(error) });
  }
});

$("sign-out").addEventListener("click", () => signOut());

async function signOut(message) {
  const refresh = session.data && session.data.refresh;
  // this browser stops receiving the account's notifications (an ended session cannot tell the
  // server: the push service's 410 for the dropped subscription removes it there)
  await disablePush({ server: Boolean(refresh && !message) });
  if (refresh && !message) await api.logout(refresh).catch(() => {}); // revoke it on the server
  if (live) live.stop();
  live = null;
  stopRefresh();
  closeDetail(false);
  session.clear();
  state.reset();
  for (const id of ["p-list", "ph-list", "nr-pharmacy"]) $(id).replaceChildren();
  $("who").textContent = "";
  $("sign-out").hidden = true;
  $("conn").hidden = true;
  hideDevices();
  showSignIn(message);
}

$("devices-reauth").addEventListener("click", () => signOut("Sign in with your password, then turn notifications on again."));

whenSessionExpires(() => signOut("Your session has ended. Please sign in again."));

// --- the console ----------------------------------------------------------------------------

async function enterConsole() {
  const account = session.account;
  state.account = account;
  $("who").textContent = `${account.name} · ${account.role}`;
  $("sign-out").hidden = false;
  scheduleRefresh();
  try {
    const me = await api.me();
    state.account = { ...account, ...me };
  } catch (error) {
    if (error.status === 401) return signOut("Please sign in again.");
  }
  if (state.account.status === "pending") {
    showScreen("pending");
    $("pending-title").focus();
    return;
  }
  // granted before: subscribe again quietly (a sign-in too old to add it stays quiet here)
  const resubscribed = notificationsAllowed() ? enablePush().catch(() => {}) : Promise.resolve();
  resubscribed.then(() => { if (session.data) showDevices(); });
  live = new Live({ onEvent, onState: showConnection, onResync: () => loadRequests() });
  live.start();
  if (account.role === "patient") {
    showScreen("patient");
    $("p-enable-alerts").hidden = notificationsAllowed();
    await Promise.all([loadPharmacies(), loadRequests()]);
    // a patient with requests sees them first; the form folds to its heading until wanted
    foldNewRequest(state.requests.size > 0);
    $(state.requests.size ? "mine-title" : "new-title").focus();
  } else {
    showScreen("pharmacy");
    $("enable-alerts").hidden = notificationsAllowed();
    await loadRequests();
    $("incoming-title").focus();
  }
}

function foldNewRequest(folded) {
  $("nr-fold").setAttribute("aria-expanded", String(!folded));
  $("new-request").hidden = folded;
}

$("nr-fold").addEventListener("click", () => {
  const folded = $("nr-fold").getAttribute("aria-expanded") === "true";
  foldNewRequest(folded);
  if (!folded) $("nr-pharmacy").focus();
});

function showConnection(connection) {
  const badge = $("conn");
  badge.hidden = false;
  badge.dataset.state = connection;
  badge.textContent = CONNECTION_TEXT[connection];
}

async function loadPharmacies() {
  const select = $("nr-pharmacy");
  try {
    const { results } = await api.pharmacies();
    select.replaceChildren(
      el("option", { value: "" }, results.length ? "Choose a pharmacy" : "No pharmacy available yet"),
      ...results.map((p) => el("option", { value: p.id, dataset: { name: p.name } }, pharmacyLabel(p.name, p.online === true))),
    );
  } catch (error) {
    toast(error.message);
  }
}

function pharmacyLabel(name, online) {
  return online ? `${name} · online` : name;
}

/** A `presence` event: a pharmacy of a pending request came or went; relabel it in place. */
function showPresence(event) {
  const option = document.querySelector(`#nr-pharmacy option[value="${Number(event.pharmacy_id)}"]`);
  if (option) option.textContent = pharmacyLabel(option.dataset.name, event.online === true);
}

async function loadRequests(more = false) {
  try {
    const query = more && state.next ? `?limit=50&cursor=${encodeURIComponent(state.next)}` : "?limit=50";
    const body = await api.requests(query);
    for (const request of body.results) state.put(request);
    if (!more || body.next === null) state.next = body.next;
    renderList();
    if (detail) detail.update();
  } catch (error) {
    toast(error.message);
  }
}

function listIds() {
  return state.account.role === "patient" ? ["p-list", "p-empty"] : ["ph-list", "ph-empty"];
}

function renderList() {
  const [listId, emptyId] = listIds();
  const patient = state.account.role === "patient";
  const items = state.sortedRequests().map((req) => {
    const unread = state.unread.get(req.id) || 0;
    const title = req.medicine_name || `Request #${req.id}`;
    const who = patient ? req.pharmacy.name : req.patient.name;
    return el(
      "li", {},
      el(
        "button", {
          type: "button", class: "req", dataset: { requestId: req.id },
          "aria-current": state.selected === req.id ? "true" : false,
          onclick: () => openDetail(req.id),
        },
        el("span", { class: "req-title" }, title),
        el("span", { class: "req-sub" }, `${who} · ×${req.quantity} · `, timeEl(req.created_at)),
        statusBadge(req.status),
        unread ? el("span", { class: "unread" }, el("span", { class: "visually-hidden" }, `${unread} new`), el("span", { "aria-hidden": "true" }, String(unread))) : null,
      ),
    );
  });
  if (state.next) {
    items.push(el("li", {}, el("button", { type: "button", class: "link", onclick: () => loadRequests(true) }, "Show older requests")));
  }
  $(listId).replaceChildren(...items);
  $(emptyId).hidden = state.requests.size > 0;
}

async function openDetail(id) {
  const container = $(state.account.role === "patient" ? "p-detail" : "ph-detail");
  try {
    state.put(await api.request(id)); // the whole thread
  } catch (error) {
    toast(error.message);
    return;
  }
  if (detail) detail.destroy();
  state.selected = id;
  state.unread.delete(id);
  container.hidden = false;
  for (const box of ["p-nothing", "ph-nothing"]) $(box).hidden = true;
  document.body.dataset.detail = "open";
  detail = new DetailView(container, id, { live, onClose: () => closeDetail(true), onChanged: () => { renderList(); detail && detail.update(); } });
  renderList();
  revealTop(container); // its top, with the phone's "Back to the list", below the top bar
  detail.heading.focus();
  detail.markRead();
}

function closeDetail(restoreFocus) {
  const id = state.selected;
  if (detail) detail.destroy();
  detail = null;
  state.selected = null;
  delete document.body.dataset.detail;
  for (const box of ["p-detail", "ph-detail"]) {
    $(box).hidden = true;
    $(box).replaceChildren();
  }
  for (const box of ["p-nothing", "ph-nothing"]) $(box).hidden = false;
  if (!state.account) return;
  renderList();
  if (restoreFocus && id) {
    const button = document.querySelector(`[data-request-id="${id}"]`);
    if (button) button.focus();
  }
}

document.addEventListener("visibilitychange", () => { if (detail) detail.markRead(); });
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && detail && !event.target.closest("input, textarea, select")) closeDetail(true);
});

// --- events ---------------------------------------------------------------------------------

function onEvent(event) {
  if (event.type === "presence") {
    showPresence(event);
    return;
  }
  if (event.type === "typing") {
    if (detail && detail.id === event.request_id && event.from !== state.account.id) detail.showTyping(event.state === "start");
    return;
  }
  const id = state.apply(event);
  if (!id) return;
  const open = detail && detail.id === id;
  if (!state.requests.has(id)) {
    // a request this page has not loaded (older than the first page): fetch it
    api.request(id).then((req) => { state.put(req); renderList(); }, () => {});
    return;
  }
  const unreadKind = UNREAD_TYPES.includes(event.type);
  if (unreadKind && !open) {
    state.unread.set(id, (state.unread.get(id) || 0) + 1);
  }
  if (event.type === "request_updated" && !state.requests.get(id).response && event.status !== "CANCELLED") {
    api.request(id).then((req) => { state.put(req); renderList(); if (detail && detail.id === id) detail.update(); }, () => {});
  }
  alertFor(event);
  renderList();
  if (open) {
    if (event.type === "message") detail.showTyping(false);
    detail.update();
    // only what counts as unread is worth a receipt: answering our own `read` event (or a
    // `typing`) with another `read` made an endless receipt loop until the rate limit hit
    if (unreadKind) detail.markRead();
  }
}

function alertFor(event) {
  const req = state.requests.get(event.request_id);
  if (event.type === "new_request") {
    const what = req.medicine_name ? `${req.medicine_name} ×${req.quantity}` : `×${req.quantity}`;
    chime();
    notify(`New request from ${req.patient.name}`, what, `request-${req.id}`, () => openDetail(req.id));
    announce(`New request from ${req.patient.name}: ${what}`);
  } else if (event.type === "pharmacy_response") {
    const verb = event.status === "ACCEPTED" ? "accepted" : "rejected";
    announce(`${event.pharmacy_name} ${verb} your request${req.medicine_name ? ` for ${req.medicine_name}` : ""}`);
  } else if (event.type === "request_cancelled") {
    announce(`${req.patient.name} cancelled request ${req.id}`);
  } else if (event.type === "message" && event.from !== state.account.id && !(detail && detail.id === req.id)) {
    announce(`New message on request ${req.id}`);
  }
}

// --- the patient's new request ----------------------------------------------------------------

$("nr-image").addEventListener("change", (event) => {
  showPreview(event.target.files[0]);
});

/** The chosen prescription: an image previewed, a PDF as a link that opens it (never an <img>). */
function showPreview(file) {
  const box = $("nr-preview-box");
  const img = $("nr-preview");
  const pdf = $("nr-preview-pdf");
  for (const url of [img.getAttribute("src"), pdf.getAttribute("href")]) if (url) URL.revokeObjectURL(url);
  img.removeAttribute("src");
  pdf.removeAttribute("href");
  img.hidden = true;
  pdf.hidden = true;
  box.hidden = !file;
  if (!file) return;
  $("nr-preview-name").textContent = `${file.name} · ${Math.ceil(file.size / 1024)} KB`;
  if (file.type.startsWith("image/")) {
    img.src = URL.createObjectURL(file);
    img.hidden = false;
  } else if (file.type === "application/pdf") {
    pdf.href = URL.createObjectURL(file);
    pdf.hidden = false;
  }
}

let idempotencyKey = null;

$("new-request").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const data = new FormData(form);
  const missing = missingFields(form);
  if (missing) {
    showFormError(form, $("nr-error"), { fields: missing }, { sentences: true });
    return;
  }
  for (const name of ["medicine_name", "note"]) if (!String(data.get(name) || "").trim()) data.delete(name);
  const image = data.get("image");
  if (!image || !image.size) data.delete("image");
  if (!data.has("image") && !data.has("medicine_name")) {
    showFormError(form, $("nr-error"), { fields: { image: "Add a prescription image or the medicine's name." } }, { sentences: true });
    return;
  }
  // one key per request the user means to send, so a retry after a network error creates one
  idempotencyKey = idempotencyKey || crypto.randomUUID();
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const body = await api.create(data, idempotencyKey);
    idempotencyKey = null;
    state.put(body.data);
    form.reset();
    showPreview(null);
    showFormError(form, $("nr-error"), null);
    renderList();
    // the form folds away and the new request is shown, and focused, in the list
    foldNewRequest(true);
    const sent = document.querySelector(`#p-list [data-request-id="${body.data.id}"]`);
    if (sent) sent.focus();
    announce(`Request sent to ${body.data.pharmacy.name}`);
    toast(`Request sent to ${body.data.pharmacy.name}.`);
  } catch (error) {
    if (error.status && error.status < 500) idempotencyKey = null;
    showFormError(form, $("nr-error"), error);
  } finally {
    button.disabled = false;
  }
});

// --- the pharmacy's alerts --------------------------------------------------------------------

async function turnOnAlerts(button, { sound }) {
  if (sound) {
    unlockSound();
    chime();
  }
  const permission = await askForNotifications();
  button.hidden = permission === "granted";
  let background = "unsupported";
  if (permission === "granted") {
    background = await enablePush().catch((error) => (error.code === "reauthentication_required" ? "reauthenticate" : "unsupported"));
  }
  const what = sound ? "Sound and notifications are" : "Notifications are";
  if (background === "reauthenticate") {
    toast(`${what} on while this page is open. To get them while it is closed, sign in again.`);
    askToSignInAgain();
    return;
  }
  if (background === "on") showDevices();
  if (permission !== "granted") toast(sound ? "Sound is on; notifications are blocked by the browser." : "Notifications are blocked by the browser.");
  else if (background === "on") toast(`${what} on, also while this page is closed.`);
  else toast(`${what} on while this page is open (this browser cannot receive them when it is closed).`);
}

$("enable-alerts").addEventListener("click", () => turnOnAlerts($("enable-alerts"), { sound: true }));
$("p-enable-alerts").addEventListener("click", () => turnOnAlerts($("p-enable-alerts"), { sound: false }));

// --- start ----------------------------------------------------------------------------------

if (session.load() && session.account) enterConsole();
else showSignIn();
