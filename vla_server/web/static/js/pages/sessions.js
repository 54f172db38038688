// Live sessions: every /v1/stream session — model, tier, target vs actual fps, drops, latency — pushed
// by the server (/v1/live/sessions) as sessions open and close and every half second while any is open.

import { liveFeed } from "../api.js";
import { badge, banner, duration, fill, h, isNum, markReady, ms, num } from "../ui.js";
import { sessionsView } from "../views.js";

const POLL_MS = 500; // only when the live feed (server-sent events) is not available

function fpsCell(target, actual) {
  const ok = !isNum(target) || !isNum(actual) || actual >= 0.9 * target;
  return h("td.num.fps", h(`span.badge.badge-${ok ? "ok" : "warn"}`, `${num(actual, 1)} / ${num(target, 0)}`));
}

export default {
  title: "Live sessions",
  mount(root) {
    const abort = new AbortController();
    const body = h("tbody");
    const summary = h("span.muted#sessions-count");
    const error = h("div");
    fill(root,
      h("div.page-head", h("h1", "Live sessions"), summary, h("span.grow"), h("span.muted.small", "live")),
      error,
      h("div.panel", h("table#sessions-table",
        h("thead", h("tr", h("th", "session"), h("th", "model"), h("th", "key · tier"), h("th.num", "fps actual / target"),
          h("th.num", "frames"), h("th.num", "dropped"), h("th.num", "latency p50 / p95"), h("th.num", "queue"), h("th.num", "running for"))),
        body)));

    const poll = liveFeed("/v1/live/sessions", "sessions", "/v1/sessions", POLL_MS, (data) => {
      const rows = sessionsView(data);
      fill(error);
      fill(summary, `${rows.length} open`);
      if (!rows.length) {
        fill(body, h("tr", h("td.empty", { colSpan: 9 }, "No stream sessions. Clients connect to ws://HOST:PORT/v1/stream.")));
      } else {
        fill(body, rows.map((s) => h("tr", { dataset: { session: s.id, model: s.model } },
          h("td", h("code", String(s.id).slice(0, 8)), " ", s.state !== "active" ? badge(s.state) : null),
          h("td", s.model),
          h("td", s.keyName ? `${s.keyName} · ` : "", badge("info", s.tier ?? "–")),
          fpsCell(s.targetFps, s.actualFps),
          h("td.num.frames", String(s.frames ?? "–")),
          h("td.num", `${s.dropped ?? "–"}` + (isNum(s.dropRate) ? ` (${s.dropRate.toFixed(1)} %)` : "")),
          h("td.num", s.latencyP50Ms !== undefined ? `${ms(s.latencyP50Ms)} / ${ms(s.latencyP95Ms)}` : ms(s.latencyMs)),
          h("td.num", String(s.queue ?? "–")),
          h("td.num", duration(s.runtimeS)))));
      }
      markReady("sessions");
      window.__vla.updates.push({ page: "sessions", t: performance.now() });
    }, (err) => fill(error, banner(err.message)));

    return () => { poll.stop(); abort.abort(); };
  },
};
