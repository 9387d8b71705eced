// Small DOM helpers: no framework, every text goes through textContent (never innerHTML).

export const $ = (id) => document.getElementById(id);

/** el("p", {class: "x", onclick: fn}, "text", childNode, …) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Tell screen readers something without moving focus. */
export function announce(text) {
  const region = $("announce");
  region.textContent = "";
  setTimeout(() => { region.textContent = text; }, 30);
}

let toastTimer = null;
export function toast(text) {
  const box = $("toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, 4000);
}

export function showScreen(name) {
  for (const screen of document.querySelectorAll(".screen")) screen.hidden = screen.id !== `screen-${name}`;
  $("booting").hidden = true;
  document.body.dataset.screen = name;
}

const STATUS_TEXT = { PENDING: "Pending", ACCEPTED: "Accepted", REJECTED: "Rejected", CANCELLED: "Cancelled" };

export function statusBadge(status) {
  return el("span", { class: `badge badge-${status.toLowerCase()}`, dataset: { status } }, STATUS_TEXT[status] || status);
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
}

export function timeEl(iso) {
  return el("time", { datetime: iso || "" }, when(iso));
}

/** Field errors of a §1 error body onto a form's inputs; the message into its error line. */
export function showFormError(form, errorLine, error) {
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  errorLine.textContent = error ? error.message : "";
  if (!error || !error.fields) return;
  let first = null;
  for (const name of Object.keys(error.fields)) {
    const input = form.elements.namedItem(name);
    if (input && input.setAttribute) {
      input.setAttribute("aria-invalid", "true");
      first = first || input;
    }
  }
  if (first) first.focus();
}
