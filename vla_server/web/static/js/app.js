// The single-page app: hash routing (#/page/arg…), the API key dialog, and page mounting.
// A page module exports default {title, mount(root, ctx)} where mount returns a cleanup function.

import * as api from "./api.js";
import { badge, fill, h, showError } from "./ui.js";

const PAGES = {
  models: () => import("./pages/models.js"),
  sessions: () => import("./pages/sessions.js"),
  arena: () => import("./pages/arena.js"),
  battles: () => import("./pages/battles.js"),
  recordings: () => import("./pages/recordings.js"),
};
const DEFAULT_PAGE = "models";

let cleanup = null;
let generation = 0;
window.__vla = window.__vla || { ready: {}, updates: [] };

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const page = parts[0] in PAGES ? parts[0] : DEFAULT_PAGE;
  return { page, args: parts[0] in PAGES ? parts.slice(1) : [] };
}

/** Navigates inside the app; `replace` keeps the history entry (for state kept in the URL). */
export function navigate(page, ...args) {
  const hash = "#/" + [page, ...args].map(encodeURIComponent).join("/");
  if (location.hash !== hash) location.hash = hash;
}

async function route() {
  const { page, args } = parseHash();
  const mine = ++generation;
  const main = document.getElementById("main");
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page);
  const samePage = main.dataset.page === page && cleanup && cleanup.page === page;
  if (samePage && cleanup.onArgs) { // a page that handles its own sub-routes (e.g. recording selection)
    cleanup.onArgs(args);
    return;
  }
  if (cleanup) { try { cleanup.fn(); } catch (err) { console.error(err); } cleanup = null; }
  window.__vla.navStart = performance.now();
  delete window.__vla.ready[page];
  delete document.body.dataset.ready;
  let mod;
  try {
    mod = (await PAGES[page]()).default;
  } catch (err) {
    fill(main, h("div.banner.error", `cannot load the ${page} page: ${err.message}`));
    return;
  }
  if (mine !== generation) return;
  main.dataset.page = page;
  document.body.dataset.page = page;
  document.title = `${mod.title} · VLA server`;
  fill(main);
  const ctx = { args, navigate, api, isAdmin: () => keyInfo.admin === true };
  try {
    const result = mod.mount(main, ctx) || {};
    const fn = typeof result === "function" ? result : result.cleanup || (() => {});
    cleanup = { page, fn, onArgs: result.onArgs };
  } catch (err) {
    showError(err);
  }
}

// -- the API key --------------------------------------------------------------------------------------
let keyInfo = {};

/** Checks the stored key against the service and shows its tier in the top bar. */
async function checkKey() {
  const status = document.getElementById("key-status");
  if (!api.getKey()) {
    keyInfo = {};
    fill(status, "no key");
    status.className = "badge badge-muted";
    return false;
  }
  try {
    keyInfo = await api.get("/v1/auth/whoami");
    status.replaceWith(Object.assign(badge("ok", `${keyInfo.name || "key"} · ${keyInfo.tier || "?"}${keyInfo.admin ? " · admin" : ""}`), { id: "key-status" }));
    return true;
  } catch (err) {
    keyInfo = {};
    const bad = Object.assign(badge("failed", err.status === 401 ? "key refused" : "key unchecked"), { id: "key-status", title: err.message });
    status.replaceWith(bad);
    return err.status !== 401;
  }
}

function setupKeyDialog() {
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  const error = document.getElementById("key-error");
  const open = () => { input.value = ""; error.hidden = true; dialog.showModal(); input.focus(); };
  document.getElementById("key-button").addEventListener("click", open);
  document.getElementById("key-cancel").addEventListener("click", () => dialog.close());
  document.getElementById("key-forget").addEventListener("click", async () => {
    api.setKey("");
    await checkKey();
    dialog.close();
  });
  document.getElementById("key-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const previous = api.getKey();
    api.setKey(input.value.trim());
    if (await checkKey()) {
      dialog.close();
      route();
    } else {
      error.textContent = "The service refused this key.";
      error.hidden = false;
      api.setKey(previous);
      checkKey();
    }
  });
  return open;
}

/** The service went away: say so in the top bar; when it is back, check the key and mount the page
 * afresh, so its lists and forms (e.g. the arena's models) are filled again without navigating. */
function setupServiceWatch() {
  const bar = document.querySelector(".keybox");
  const note = h("span#service-status.badge.badge-bad", { hidden: true }, "service unreachable");
  bar.prepend(note);
  window.addEventListener("vla:service-away", () => { note.hidden = false; });
  window.addEventListener("vla:service-back", async () => {
    note.hidden = true;
    await checkKey();
    const main = document.getElementById("main");
    delete main.dataset.page; // not the same page any more: mount it again
    if (cleanup) cleanup.onArgs = null;
    route();
  });
}

window.addEventListener("DOMContentLoaded", async () => {
  const openKey = setupKeyDialog();
  setupServiceWatch();
  window.addEventListener("hashchange", route);
  window.addEventListener("unhandledrejection", (ev) => { if (ev.reason?.name !== "AbortError") showError(ev.reason); });
  const ok = await checkKey();
  route();
  if (!api.getKey() || !ok) openKey();
});
