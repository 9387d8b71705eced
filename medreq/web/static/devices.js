// "Devices that get notifications": the account's Web Push subscriptions (GET /push/subscriptions),
// each with a Remove button (DELETE /push/subscriptions/{id}), as `medreq push list|remove` shows them.
// A browser someone else signed in on keeps getting the account's notifications until removed here.

import { call } from "./api.js";
import { currentEndpoint } from "./push.js";
import { $, announce, el, timeEl } from "./ui.js";

/** The push service a subscription goes through: its address's host (the rest is its secret). */
function pushService(endpoint) {
  try {
    return new URL(endpoint).host;
  } catch {
    return "an unknown push service";
  }
}

/** Show the section and (re)load its list. */
export async function showDevices() {
  $("devices").hidden = false;
  let results;
  try {
    ({ results } = await call("GET", "/push/subscriptions"));
  } catch (error) {
    $("devices-error").textContent = `The list of devices could not be loaded: ${error.message}`;
    return;
  }
  $("devices-error").textContent = "";
  const here = await currentEndpoint();
  $("devices-empty").hidden = results.length > 0;
  $("devices-list").replaceChildren(...results.map((subscription) => {
    const name = subscription.endpoint === here ? "This browser" : `A browser using ${pushService(subscription.endpoint)}`;
    return el(
      "li", { dataset: { subscriptionId: subscription.id } },
      el("span", {}, `${name} · since `, timeEl(subscription.created_at)),
      el("button", {
        type: "button", class: "secondary",
        "aria-label": `Remove ${name.charAt(0).toLowerCase()}${name.slice(1)}`,
        onclick: () => removeDevice(subscription.id, name),
      }, "Remove"),
    );
  }));
}

async function removeDevice(id, name) {
  try {
    await call("DELETE", `/push/subscriptions/${Number(id)}`);
  } catch (error) {
    if (error.status !== 404) { // 404: removed already (elsewhere): the list below says so
      $("devices-error").textContent = `It could not be removed: ${error.message}`;
      return;
    }
  }
  announce(`${name} removed: it gets no more notifications.`);
  await showDevices();
  $("devices-title").focus();
}

/** Adding a device needs a recent password sign-in (403 reauthentication_required): say so, and offer it. */
export function askToSignInAgain() {
  $("devices").hidden = false;
  $("devices-error").textContent =
    "For your safety, notifications on a closed page need a sign-in of the last 10 minutes. " +
    "Sign in again with your password, then turn notifications on once more.";
  $("devices-reauth").hidden = false;
  $("devices-reauth").focus();
}

export function hideDevices() {
  $("devices").hidden = true;
  $("devices-list").replaceChildren();
  $("devices-error").textContent = "";
  $("devices-reauth").hidden = true;
}
