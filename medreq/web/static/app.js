// The medreq web console: sign in or register, then the patient's or the pharmacy's screen,
// kept live by the account's WebSocket. Plain ES modules, no build step, nothing from a CDN.

import { api, ApiError, scheduleRefresh, stopRefresh, whenSessionExpires } from "./api.js";
import { askForNotifications, chime, notificationsAllowed, notify, unlockSound } from "./alerts.js";
import { disablePush, enablePush } from "./push.js";
import { askToSignInAgain, hideDevices, showDevices } from "./devices.js";
import { DetailView, requestBadge } from "./detail.js";
import { GroupView } from "./group.js";
import { Live } from "./live.js";
import { session } from "./session.js";
import { state } from "./state.js";
import { $, announce, el, missingFields, showFormError, showScreen, statusBadge, timeEl, toast } from "./ui.js";

/** The events the server counts as unread (docs/protocol.md, unread counts): the server writes its
 * own set into the page (medreq.protocol.UNREAD), so the two cannot drift apart. */
const UNREAD_TYPES = new Set(document.querySelector('meta[name="medreq-unread"]').content.split(" "));

/**
 * How many pharmacies one request may go to: the server's default. A server configured lower
 * answers 422 past its own limit, and the form shows its words under the list.
 */
const MAX_PHARMACIES = 5;
let maxPharmacies = MAX_PHARMACIES; // lowered when the server says it takes fewer

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
  for (const id of ["p-list", "ph-list", "nr-pharmacy-list"]) $(id).replaceChildren();
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
  if (!folded) (document.querySelector("#nr-pharmacy-list input:not(:disabled)") || $("nr-medicine")).focus();
});

function showConnection(connection) {
  const badge = $("conn");
  badge.hidden = false;
  badge.dataset.state = connection;
  badge.textContent = CONNECTION_TEXT[connection];
}

/** The pharmacies to tick, each marked when it is online (a live connection: it answers fast). */
async function loadPharmacies() {
  const list = $("nr-pharmacy-list");
  try {
    const { results } = await api.pharmacies();
    list.replaceChildren(...results.map((p) => el(
      "li", {},
      el("label", { class: "choice" },
        el("input", { type: "checkbox", name: "pharmacy", value: p.id }),
        el("span", { dataset: { pharmacyId: p.id, name: p.name } }, pharmacyLabel(p.name, p.online === true))),
    )));
    if (!results.length) list.append(el("li", { class: "muted" }, "No pharmacy available yet."));
    limitPicks();
  } catch (error) {
    toast(error.message);
  }
}

function pharmacyLabel(name, online) {
  return online ? `${name} · online` : name;
}

/** A `presence` event: a pharmacy of a pending request came or went; relabel it in place. */
function showPresence(event) {
  const label = document.querySelector(`#nr-pharmacy-list [data-pharmacy-id="${Number(event.pharmacy_id)}"]`);
  if (label) label.textContent = pharmacyLabel(label.dataset.name, event.online === true);
}

/** Up to `maxPharmacies` ticked: the rest wait, disabled, until one is unticked. */
function limitPicks() {
  const boxes = [...document.querySelectorAll("#nr-pharmacy-list input")];
  const ticked = boxes.filter((box) => box.checked).length;
  for (const box of boxes) box.disabled = !box.checked && ticked >= maxPharmacies;
  const hint = $("nr-pharmacies-hint");
  if (ticked > maxPharmacies) hint.textContent = `${ticked} ticked, but one request can go to at most ${maxPharmacies}: untick ${ticked - maxPharmacies}.`;
  else if (ticked === maxPharmacies && ticked > 1) hint.textContent = `${ticked} ticked, the most one request can go to. Each gets it; you then choose one of those that accept.`;
  else if (ticked > 1) hint.textContent = `${ticked} ticked: each gets the request, and you choose one of those that accept.`;
  else if (maxPharmacies > 1) hint.textContent = `Tick one, or up to ${maxPharmacies} to ask them all at once: you then choose one of those that accept.`;
  else hint.textContent = "Tick the pharmacy to ask.";
}

/** A server that takes fewer pharmacies per request than the default says so in its 422. */
function learnLimit(error) {
  const found = error && error.status === 422 && error.fields && /at most (\d+)/.exec(String(error.fields.pharmacy || ""));
  if (!found) return;
  maxPharmacies = Math.max(1, Number(found[1]));
  limitPicks();
}

$("nr-pharmacy-list").addEventListener("change", limitPicks);

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
  const entries = patient ? state.listEntries() : state.sortedRequests().map((request) => ({ request }));
  const items = entries.map((entry) => {
    if (entry.group !== undefined) return groupItem(entry);
    const req = entry.request;
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
        requestBadge(req),
        unreadBadge(unread),
      ),
    );
  });
  if (state.next) {
    items.push(el("li", {}, el("button", { type: "button", class: "link", onclick: () => loadRequests(true) }, "Show older requests")));
  }
  $(listId).replaceChildren(...items);
  $(emptyId).hidden = state.requests.size > 0;
}

function unreadBadge(unread) {
  if (!unread) return null;
  return el("span", { class: "unread" }, el("span", { class: "visually-hidden" }, `${unread} new`), el("span", { "aria-hidden": "true" }, String(unread)));
}

/** A request to several pharmacies: one entry, with how it stands (what one chose, how many accepted). */
function groupItem({ group, members }) {
  const first = members[0];
  const asked = Math.max(first.asked_pharmacies || 0, members.length);
  const unread = members.reduce((sum, req) => sum + (state.unread.get(req.id) || 0), 0);
  const current = state.selectedGroup === group || members.some((req) => req.id === state.selected);
  const chosen = members.find((req) => req.chosen);
  const accepted = members.filter((req) => req.status === "ACCEPTED").length;
  let badge;
  if (chosen) badge = el("span", { class: "badge badge-chosen", dataset: { status: "CHOSEN" } }, "Chosen");
  else if (accepted) badge = el("span", { class: "badge badge-accepted", dataset: { status: "ACCEPTED" } }, `${accepted} accepted`);
  else if (members.some((req) => req.status === "PENDING")) badge = statusBadge("PENDING");
  else if (members.every((req) => req.status === "CANCELLED")) badge = statusBadge("CANCELLED");
  else badge = statusBadge("REJECTED");
  const who = chosen ? chosen.pharmacy.name : `${asked} pharmacies`;
  return el(
    "li", {},
    el(
      "button", {
        type: "button", class: "req req-group", dataset: { group },
        "aria-current": current ? "true" : false,
        onclick: () => openGroup(group),
      },
      el("span", { class: "req-title" }, first.medicine_name || `Request #${first.id}`),
      el("span", { class: "req-sub" }, `${who} · ×${first.quantity} · `, timeEl(first.created_at)),
      badge,
      unreadBadge(unread),
    ),
  );
}

/** The patient's request to several pharmacies, every answer in one panel (group.js). */
async function openGroup(group) {
  const container = $("p-detail");
  try {
    for (const req of (await api.group(group)).results) state.put(req); // every member, however old
  } catch (error) {
    toast(error.message);
    return;
  }
  if (!state.groupMembers(group).length) return;
  if (detail) detail.destroy();
  state.selected = null;
  state.selectedGroup = group;
  container.hidden = false;
  for (const box of ["p-nothing", "ph-nothing"]) $(box).hidden = true;
  document.body.dataset.detail = "open";
  detail = new GroupView(container, group, {
    live,
    onClose: () => closeDetail(true),
    onOpen: (id) => openDetail(id),
    onChanged: () => { renderList(); if (detail) detail.update(); },
  });
  renderList();
  revealTop(container);
  detail.heading.focus();
  detail.markRead();
}

/** Fetch a group's requests again (another tab chose, say), once however many events say so. */
const groupsRefreshing = new Set();
function refreshGroup(group) {
  if (groupsRefreshing.has(group)) return;
  groupsRefreshing.add(group);
  api.group(group).then((body) => {
    for (const req of body.results) state.put(req);
    renderList();
    if (detail) detail.update();
  }, () => {}).finally(() => groupsRefreshing.delete(group));
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
  state.selectedGroup = null;
  state.unread.delete(id);
  container.hidden = false;
  for (const box of ["p-nothing", "ph-nothing"]) $(box).hidden = true;
  document.body.dataset.detail = "open";
  const req = state.requests.get(id);
  const group = state.account.role === "patient" ? req.group ?? null : null;
  // a request of a group closes back to all its answers
  const onClose = group !== null ? () => openGroup(group) : () => closeDetail(true);
  detail = new DetailView(container, id, { live, onClose, onChanged: () => { renderList(); detail && detail.update(); } });
  renderList();
  revealTop(container); // its top, with the phone's "Back to the list", below the top bar
  detail.heading.focus();
  detail.markRead();
}

function closeDetail(restoreFocus) {
  const id = state.selected;
  const known = id ? state.requests.get(id) : null;
  const group = state.selectedGroup ?? (known && known.group !== undefined ? known.group : null);
  if (detail) detail.destroy();
  detail = null;
  state.selected = null;
  state.selectedGroup = null;
  delete document.body.dataset.detail;
  for (const box of ["p-detail", "ph-detail"]) {
    $(box).hidden = true;
    $(box).replaceChildren();
  }
  for (const box of ["p-nothing", "ph-nothing"]) $(box).hidden = false;
  if (!state.account) return;
  renderList();
  if (restoreFocus && (id || group !== null)) {
    const button = group !== null && state.account.role === "patient"
      ? document.querySelector(`.req[data-group="${CSS.escape(String(group))}"]`)
      : document.querySelector(`.req[data-request-id="${id}"]`);
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
  // an open group shows each pharmacy's answer and closing, but not its messages
  const inGroup = Boolean(detail && detail.group !== undefined && detail.has(id));
  const unreadKind = UNREAD_TYPES.has(event.type);
  if (unreadKind && !open && !(inGroup && event.type !== "message")) {
    state.unread.set(id, (state.unread.get(id) || 0) + 1);
  }
  const group = state.account.role === "patient" ? state.requests.get(id).group ?? null : null;
  if (event.type === "request_updated" && group !== null) {
    refreshGroup(group); // a choice closes the others (and says which one) in one go
  } else if (event.type === "request_updated" && !state.requests.get(id).response && event.status !== "CANCELLED") {
    api.request(id).then((req) => { state.put(req); renderList(); if (detail && detail.id === id) detail.update(); }, () => {});
  }
  alertFor(event);
  renderList();
  if (open || inGroup) {
    if (open && event.type === "message") detail.showTyping(false);
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
    announce(event.reason === "another_pharmacy_chosen"
      ? `${req.patient.name} chose another pharmacy for request ${req.id}`
      : `${req.patient.name} cancelled request ${req.id}`);
  } else if (event.type === "request_chosen") {
    chime();
    notify(`${req.patient.name} chose your offer`, `Request ${req.id}`, `request-${req.id}`, () => openDetail(req.id));
    announce(`${req.patient.name} chose your offer for request ${req.id}`);
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
    const grouped = body.group !== null && body.group !== undefined;
    for (const req of grouped && Array.isArray(body.requests) ? body.requests : [body.data]) state.put(req);
    form.reset();
    limitPicks();
    showPreview(null);
    showFormError(form, $("nr-error"), null);
    renderList();
    // the form folds away and the new request is shown, and focused, in the list
    foldNewRequest(true);
    const sent = grouped
      ? document.querySelector(`#p-list [data-group="${CSS.escape(String(body.group))}"]`)
      : document.querySelector(`#p-list [data-request-id="${body.data.id}"]`);
    if (sent) sent.focus();
    const to = grouped ? `${state.groupMembers(body.group).length} pharmacies` : body.data.pharmacy.name;
    announce(`Request sent to ${to}`);
    toast(`Request sent to ${to}.`);
  } catch (error) {
    if (error.status && error.status < 500) idempotencyKey = null;
    learnLimit(error);
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
