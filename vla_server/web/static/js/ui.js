// DOM and formatting helpers shared by the pages: element builder, badges, toasts, pollers.

/** h("div.card#id", {attrs, onclick}, ...children): builds an element. Strings become text nodes. */
export function h(spec, attrs, ...children) {
  if (attrs === null || attrs === undefined || typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs)) {
    if (attrs !== null && attrs !== undefined) children.unshift(attrs);
    attrs = {};
  }
  const m = spec.match(/^([a-z0-9-]+)?((?:[.#][\w-]+)*)$/i);
  const el = document.createElement((m && m[1]) || "div");
  for (const part of ((m && m[2]) || "").match(/[.#][\w-]+/g) || []) {
    if (part[0] === ".") el.classList.add(part.slice(1)); else el.id = part.slice(1);
  }
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className += (el.className ? " " : "") + v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// -- formatting -------------------------------------------------------------------------------------
export const isNum = (x) => typeof x === "number" && Number.isFinite(x);
export function num(x, digits = 1, unit = "") {
  return isNum(x) ? `${x.toFixed(digits)}${unit ? " " + unit : ""}` : "–";
}
export function ms(x) { return isNum(x) ? (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(x < 10 ? 1 : 0)} ms`) : "–"; }
export function bytes(n) {
  if (!isNum(n)) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
export function mb(x) { return isNum(x) ? (x >= 1024 ? `${(x / 1024).toFixed(2)} GiB` : `${x.toFixed(0)} MiB`) : "–"; } // the registry counts MiB
export function duration(s) {
  if (!isNum(s)) return "–";
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}
/** "12 s ago" from Unix seconds (or an ISO string). */
export function ago(t) {
  const secs = typeof t === "string" ? Date.parse(t) / 1000 : t;
  if (!isNum(secs) || secs <= 0) return "never";
  const d = Date.now() / 1000 - secs;
  if (d < 2) return "just now";
  if (d < 90) return `${Math.round(d)} s ago`;
  if (d < 5400) return `${Math.round(d / 60)} min ago`;
  if (d < 172800) return `${Math.round(d / 3600)} h ago`;
  return new Date(secs * 1000).toLocaleDateString();
}
export function when(t) {
  const secs = typeof t === "string" ? Date.parse(t) / 1000 : t;
  return isNum(secs) ? new Date(secs * 1000).toLocaleString() : "–";
}
export const pct = (x, digits = 0) => (isNum(x) ? `${(100 * x).toFixed(digits)} %` : "–");

const TONES = {
  ok: ["warm", "ready", "done", "succeeded", "success", "won", "active", "connected", "decided"],
  warn: ["loading", "unloading", "restarting", "queued", "running", "pending", "starting", "encoding", "tie", "awaiting_vote"],
  bad: ["failed", "failure", "error", "crashed", "cancelled", "canceled", "lost", "interrupted"],
  muted: ["cold", "unknown", "missing", "idle", "closed"],
};
export function tone(state) {
  const s = String(state ?? "").toLowerCase();
  for (const [t, words] of Object.entries(TONES)) if (words.includes(s)) return t;
  if (s.startsWith("success")) return "ok";
  if (s.startsWith("fail") || s.includes("error")) return "bad";
  return "info";
}
export function badge(state, label) {
  return h(`span.badge.badge-${tone(state)}`, { dataset: { state: String(state ?? "") } }, label ?? String(state ?? "–"));
}

export function kv(pairs) {
  const dl = h("dl.kv");
  for (const [k, v] of pairs) {
    const dd = h("dd", v instanceof Node ? v : String(v ?? "–"));
    dl.append(h("dt", k), dd);
  }
  return dl;
}

export function progressBar(fraction, state = "") {
  const f = Math.max(0, Math.min(1, isNum(fraction) ? fraction : 0));
  return h(`div.progress${state ? "." + state : ""}`, { role: "progressbar", "aria-valuenow": Math.round(f * 100), "aria-valuemin": 0, "aria-valuemax": 100 },
    h("span", { style: { width: `${(f * 100).toFixed(1)}%` } }));
}

// -- messages -------------------------------------------------------------------------------------------
/** Shows a message in the page's corner; errors stay until closed, others fade after a few seconds. */
export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const t = h(`div.toast.${kind}`, { role: kind === "error" ? "alert" : "status" },
    h("span.msg", message), h("button.close", { type: "button", title: "dismiss", onclick: () => t.remove() }, "×"));
  box.appendChild(t);
  while (box.children.length > 5) box.firstChild.remove();
  if (kind !== "error") setTimeout(() => t.remove(), 4000);
  return t;
}
export const showError = (err) => toast(err && err.message ? err.message : String(err), "error");

export function banner(message, kind = "error") {
  return h(`div.banner.${kind}`, { role: kind === "error" ? "alert" : "status" }, message);
}

// -- live updates ---------------------------------------------------------------------------------------
/**
 * Calls `fn` now and then every `intervalMs` (waiting for each call to finish), pausing while the
 * tab is hidden. Returns {stop(), now()}: now() runs it at once (after a user action).
 */
export function poller(fn, intervalMs) {
  let timer = null;
  let stopped = false;
  let running = false;
  let again = false;
  const run = async () => {
    clearTimeout(timer);
    if (stopped) return;
    if (running) { again = true; return; }
    running = true;
    try { await fn(); } catch (err) { console.debug("poll", err); } finally { running = false; }
    if (stopped) return;
    if (again) { again = false; run(); return; }
    if (!document.hidden) timer = setTimeout(run, intervalMs);
  };
  const onVisible = () => { if (!document.hidden) run(); };
  document.addEventListener("visibilitychange", onVisible);
  run();
  return {
    now: run,
    stop() { stopped = true; clearTimeout(timer); document.removeEventListener("visibilitychange", onVisible); },
  };
}

/**
 * Marks a page as showing its data, for tests and benchmarks: window.__vla.ready[page] = ms from the
 * route change to the data on screen; readyAt[page] = ms since the document's navigation started.
 */
export function markReady(page) {
  const v = (window.__vla = window.__vla || { ready: {}, updates: [] });
  v.readyAt = v.readyAt || {};
  if (!(page in v.ready)) {
    v.readyAt[page] = performance.now();
    v.ready[page] = v.readyAt[page] - (v.navStart ?? 0);
  }
  document.body.dataset.ready = page;
}

/**
 * Fills `container` with one element per item, reusing the element already there for an item whose
 * key and signature are unchanged (so a live refresh never replaces a button under the pointer).
 * render(item) builds a new element; signature(item) is a string of everything it shows.
 */
export function keyedFill(container, items, key, signature, render) {
  const old = new Map();
  for (const el of container.children) if (el.dataset.key !== undefined) old.set(el.dataset.key, el);
  const next = items.map((item) => {
    const k = String(key(item));
    const sig = signature(item);
    const prev = old.get(k);
    if (prev && prev.dataset.sig === sig) return prev;
    const el = render(item);
    el.dataset.key = k;
    el.dataset.sig = sig;
    return el;
  });
  next.forEach((el, i) => { if (container.children[i] !== el) container.insertBefore(el, container.children[i] || null); });
  while (container.children.length > next.length) container.lastElementChild.remove();
}
