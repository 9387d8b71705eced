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
  if (document.body.dataset.screen !== name) window.scrollTo(0, 0); // a new screen starts at its top
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

/** The words a form field goes by: its label's own text ("Phone", not "Phone (optional)"). */
function labelText(input) {
  if (input.tagName === "FIELDSET") return input.querySelector("legend").textContent.trim();
  const label = input.labels && input.labels[0];
  const own = label ? [...label.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent).join("") : "";
  return own.trim() || input.name;
}

/** A server's field message (`{"username": "is taken"}`, docs/protocol.md §1) as a sentence. */
export function fieldSentence(input, text) {
  const words = String(text || "").trim().replace(/\.$/, "");
  if (/^(must|is|are|should|cannot|can't|may)\b/.test(words)) return `${labelText(input)} ${words}.`;
  return `${labelText(input)}: ${words || "check this field"}.`;
}

/** The required fields left empty, each with its `data-missing` sentence ("Enter your name."). */
export function missingFields(form) {
  const fields = {};
  for (const input of form.querySelectorAll("[required]")) {
    if (!String(input.value).trim()) fields[input.name] = input.dataset.missing || `Enter ${labelText(input).toLowerCase()}.`;
  }
  // a group of checkboxes (`<fieldset data-field-for>`): at least one ticked
  for (const group of form.querySelectorAll("fieldset[data-field-for][data-missing]")) {
    if (!group.querySelector("input:checked")) fields[group.dataset.fieldFor] = group.dataset.missing;
  }
  return Object.keys(fields).length ? fields : null;
}

function clearFieldErrors(form) {
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  for (const line of form.querySelectorAll(".field-error")) {
    const input = form.querySelector(`[aria-describedby~="${line.id}"]`);
    if (input) {
      const rest = input.getAttribute("aria-describedby").split(/\s+/).filter((id) => id && id !== line.id);
      if (rest.length) input.setAttribute("aria-describedby", rest.join(" "));
      else input.removeAttribute("aria-describedby");
    }
    line.remove();
  }
}

/**
 * An error onto a form: each of its `fields` as a sentence right under its input (tied to it by
 * aria-describedby, the input marked aria-invalid), the rest into the form's error line.
 * `error.fields` maps a field name to the server's words (§1) or, with `sentences`, to ours.
 */
export function showFormError(form, errorLine, error, { sentences = false } = {}) {
  clearFieldErrors(form);
  errorLine.textContent = "";
  if (!error) return;
  const unplaced = [];
  let first = null;
  let placed = 0;
  for (const [name, text] of Object.entries(error.fields || {})) {
    // a field of several inputs (checkboxes sharing a name) answers for itself as its fieldset
    const input = form.querySelector(`fieldset[data-field-for="${name}"]`) || form.elements.namedItem(name);
    if (!input || !input.setAttribute || !input.id) {
      const what = name.replace(/_/g, " ");
      unplaced.push(sentences ? text : `${what.charAt(0).toUpperCase()}${what.slice(1)}: ${text}.`);
      continue;
    }
    const line = el("p", { class: "field-error", id: `${input.id}-error` }, sentences ? text : fieldSentence(input, text));
    input.after(line);
    if (input.tagName !== "FIELDSET") input.setAttribute("aria-invalid", "true"); // not a group's attribute
    input.setAttribute("aria-describedby", [line.id, input.getAttribute("aria-describedby")].filter(Boolean).join(" "));
    first = first || input;
    placed += 1;
  }
  if (!placed) errorLine.textContent = error.message;
  else if (unplaced.length) errorLine.textContent = unplaced.join(" ");
  else if (placed > 1) errorLine.textContent = `${placed} fields need a change: see the message under each.`;
  if (first) (first.tagName === "FIELDSET" ? first.querySelector("input:not(:disabled)") || first : first).focus();
}
