// The service's HTTP API as the pages use it: one fetch wrapper that adds the API key, turns error
// replies into ApiError with the server's message, and helpers for media (blob URLs, since <video>
// and <img> cannot send headers) and live streams (server-sent events read through fetch).

const KEY_STORAGE = "vla.apiKey";
export const AUTH_HEADER = "Authorization";
export const authValue = (key) => `Bearer ${key}`;

export function getKey() { return sessionStorage.getItem(KEY_STORAGE) || ""; }
export function setKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key); else sessionStorage.removeItem(KEY_STORAGE);
  window.dispatchEvent(new CustomEvent("vla:key"));
}

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }
}

/** Turns FastAPI's error bodies ({"detail": str | [{loc, msg}]}) into one readable line. */
export function errorText(status, body) {
  const d = body && typeof body === "object" ? (body.detail ?? body.error ?? body.message) : body;
  let text;
  if (Array.isArray(d)) text = d.map((e) => `${(e.loc || []).filter((x) => x !== "body").join(".")}: ${e.msg}`).join("; ");
  else if (d && typeof d === "object") text = d.message || JSON.stringify(d);
  else text = d ? String(d) : "";
  const why = { 401: "the API key is missing or not valid", 403: "this needs an admin key", 404: "not found",
    503: "the service is busy or unavailable" }[status];
  if (!text) text = why || `HTTP ${status}`;
  else if (why && status !== 404 && !text.toLowerCase().includes("key")) text = `${text} (${why})`;
  return text;
}

function headers(extra = {}) {
  const h = { ...extra };
  const key = getKey();
  if (key) h[AUTH_HEADER] = authValue(key);
  return h;
}

async function parseBody(res) {
  const type = res.headers.get("content-type") || "";
  if (type.includes("application/json")) return res.json();
  return res.text();
}

// -- the service going away and coming back -------------------------------------------------------------
// A request that cannot reach the service marks it "away": the top bar says so and /health is polled
// every second; when it answers, a "vla:service-back" event lets the app reload the page's lists and forms.
const HEALTH_POLL_MS = 1000;
let away = false;

export function serviceAway() { return away; }

function markAway() {
  if (away) return;
  away = true;
  window.dispatchEvent(new CustomEvent("vla:service-away"));
  const poll = async () => {
    try {
      const res = await fetch("/health", { cache: "no-store" });
      if (res.ok) {
        away = false;
        window.dispatchEvent(new CustomEvent("vla:service-back"));
        return;
      }
    } catch { /* still away */ }
    setTimeout(poll, HEALTH_POLL_MS);
  };
  setTimeout(poll, HEALTH_POLL_MS);
}

const UNREACHABLE = "cannot reach the service; this page updates by itself when it is back";

/** fetch() with the key; resolves to the parsed body; rejects with ApiError (HTTP) or Error (network). */
export async function request(method, path, { body, signal, query } = {}) {
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
    const s = q.toString();
    if (s) url += (url.includes("?") ? "&" : "?") + s;
  }
  const init = { method, signal, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  let res;
  try {
    res = await fetch(url, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    markAway();
    throw new Error(UNREACHABLE);
  }
  const parsed = await parseBody(res).catch(() => "");
  if (!res.ok) throw new ApiError(res.status, errorText(res.status, parsed), parsed);
  return parsed;
}

export const get = (path, opts) => request("GET", path, opts);
export const post = (path, body, opts = {}) => request("POST", path, { ...opts, body });
export const del = (path, opts) => request("DELETE", path, opts);

/** Fetches a binary resource with the key; returns an object URL (revoke it when done). */
export async function blobUrl(path, { signal } = {}) {
  let res;
  try {
    res = await fetch(path, { headers: headers(), signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    markAway();
    throw new Error(UNREACHABLE);
  }
  if (!res.ok) throw new ApiError(res.status, errorText(res.status, await parseBody(res).catch(() => "")));
  return URL.createObjectURL(await res.blob());
}

/** Downloads a resource with the key and saves it under `filename` (an <a download> click). */
export async function download(path, filename) {
  const url = await blobUrl(path);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * Reads a server-sent-events stream through fetch (so the key goes in a header) and calls
 * onEvent({event, data, id}) per event; `data` is parsed JSON when it parses. Resolves when the
 * stream ends; rejects with ApiError on an HTTP error. Abort with `signal`.
 */
export async function sse(path, onEvent, { signal } = {}) {
  const res = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal });
  if (!res.ok) throw new ApiError(res.status, errorText(res.status, await parseBody(res).catch(() => "")));
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let ev = { event: "message", data: [], id: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let nl;
    while ((nl = buf.search(/\r?\n/)) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf[nl] === "\r" ? 2 : 1));
      if (line === "") {
        if (ev.data.length) {
          const text = ev.data.join("\n");
          let data = text;
          try { data = JSON.parse(text); } catch { /* plain text event */ }
          onEvent({ event: ev.event, data, id: ev.id });
        }
        ev = { event: "message", data: [], id: null };
      } else if (!line.startsWith(":")) {
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "data") ev.data.push(val);
        else if (field === "event") ev.event = val;
        else if (field === "id") ev.id = val;
      }
    }
  }
}

/**
 * A live feed: follows the server-sent events at `path` (calling onData(event.data) per event named
 * `name`) and reconnects when the stream ends; if the feed is not there or fails twice in a row,
 * polls `pollPath` every `pollMs` instead. Returns {stop(), now()}; now() fetches `pollPath` at once.
 */
export function liveFeed(path, name, pollPath, pollMs, onData, onError) {
  let stopped = false;
  let timer = null;
  let ctrl = null;
  let failures = 0;
  const pollOnce = async () => {
    try {
      onData(await get(pollPath));
    } catch (err) {
      if (err.name !== "AbortError") onError(err);
    }
  };
  const poll = async () => {
    if (stopped) return;
    if (!document.hidden) await pollOnce();
    if (!stopped) timer = setTimeout(poll, pollMs);
  };
  const follow = async () => {
    while (!stopped) {
      ctrl = new AbortController();
      try {
        await sse(path, (ev) => { if (ev.event === name) { failures = 0; onData(ev.data); } }, { signal: ctrl.signal });
      } catch (err) {
        if (stopped || err.name === "AbortError") return;
        failures++;
        if (err.status === 401 || err.status === 403) { onError(err); }
        if (failures >= 2 || err.status === 404) { poll(); return; }
      }
      await new Promise((r) => { timer = setTimeout(r, 500); });
    }
  };
  follow();
  return {
    now: pollOnce,
    stop() { stopped = true; clearTimeout(timer); if (ctrl) ctrl.abort(); },
  };
}
