// Models: a card per catalog model (state, device, memory, requests, latency, last used, cold start),
// load / unload / pin buttons for admin keys, the registry's memory budget and what it would evict next.

import { liveFeed, post } from "../api.js";
import { ago, badge, banner, fill, h, isNum, kv, markReady, mb, ms, showError, toast } from "../ui.js";
import { modelsView } from "../views.js";

const POLL_MS = 1000; // only when the live feed (server-sent events) is not available

export default {
  title: "Models",
  mount(root, ctx) {
    const abort = new AbortController();
    const budget = h("div.panel#registry-panel");
    const cards = h("div.cards#model-cards");
    const error = h("div");
    const busy = new Map(); // model id -> action under way (shown until the server state moves)
    fill(root, h("div.page-head", h("h1", "Models"), h("span.muted", "warm models answer at once; cold ones load on first use")), error, budget, cards);

    async function act(id, action) {
      busy.set(id, action);
      render(last);
      try {
        await post(`/v1/models/${encodeURIComponent(id)}/${action}`, {}, { signal: abort.signal });
        toast(`${id}: ${action} done`, "ok");
      } catch (err) {
        if (err.name !== "AbortError") showError(err);
      } finally {
        busy.delete(id);
        poll.now();
      }
    }

    function card(m, view) {
      const admin = ctx.isAdmin();
      const why = admin ? undefined : "needs an admin key";
      const doing = busy.get(m.id);
      const state = doing === "load" && m.state === "cold" ? "loading" : doing === "unload" && m.state === "warm" ? "unloading" : m.state;
      const btn = (label, action, enabled, cls = "") => h(`button.btn.btn-small${cls}`, {
        type: "button", disabled: !admin || !enabled || Boolean(doing), title: why, dataset: { action },
        onclick: () => act(m.id, action),
      }, label);
      const s = m.stats || {};
      return h(`div.card.state-${state}`, {
        class: view.evictNext === m.id ? "evict-next" : undefined, dataset: { model: m.id, state },
      },
      h("div.card-head", h("span.card-title", m.id),
        h("span.row", m.pinned ? badge("info", "pinned") : null, badge(state))),
      m.description ? h("div.muted.small", m.description) : null,
      kv([
        ["backend", m.backend || "–"],
        ["device", m.device || "–"],
        ["memory", isNum(m.memory_mb) ? mb(m.memory_mb) : isNum(m.last_memory_mb) ? `– (last ${mb(m.last_memory_mb)})` : "–"],
        ["sessions", String(m.sessions ?? 0)],
        ["requests", `${s.requests ?? 0}` + (s.failures ? ` (${s.failures} failed)` : "")],
        ["latency p50 / p95", `${ms(s.latency_p50_ms)} / ${ms(s.latency_p95_ms)}`],
        ["model time p50", ms(s.model_p50_ms)],
        ["emulated latency", isNum(m.latency_ms) && m.latency_ms > 0 ? ms(m.latency_ms) : "none"],
        ["last used", ago(m.last_used)],
        ["cold start", ms(s.cold_start_ms)],
        ["loads / evictions", `${s.loads ?? 0} / ${s.evictions ?? 0}`],
      ]),
      view.evictNext === m.id ? h("div.small", badge("loading", "evicted next"), " when memory or the model limit is needed") : null,
      m.last_error ? h("div.small.error-text", { title: m.last_error }, `last error: ${String(m.last_error).slice(0, 160)}`) : null,
      h("div.row",
        btn("Load", "load", state === "cold" || state === "failed"),
        btn("Unload", "unload", state === "warm" || state === "failed" || state === "restarting", ".btn-danger"),
        m.pinned ? btn("Unpin", "unpin", true) : btn("Pin", "pin", true)));
    }

    let last = null;
    function render(data) {
      if (!data) return;
      const view = modelsView(data);
      const used = view.usedMb;
      const frac = isNum(view.budgetMb) && view.budgetMb > 0 && isNum(used) ? used / view.budgetMb : 0;
      fill(budget, h("div.row",
        h("strong", "Memory"),
        h(`div.meter${frac > 0.95 ? ".full" : frac > 0.75 ? ".high" : ""}`, { title: `${(frac * 100).toFixed(0)} %` },
          h("span", { style: { width: `${Math.min(100, frac * 100).toFixed(1)}%` } })),
        h("span#memory-figures", `${mb(used)} of ${mb(view.budgetMb)}`),
        h("span.muted", `· ${view.warm} warm of at most ${view.maxModels ?? "–"} · eviction: ${view.policy || "–"}`),
        h("span.grow"),
        h("span#evict-next", view.evictNext ? ["next to evict: ", h("strong", view.evictNext)] : h("span.muted", "nothing to evict"))));
      if (!view.models.length) fill(cards, h("div.panel.empty", "The catalog has no models."));
      else fill(cards, view.models.map((m) => card(m, view)));
    }

    const poll = liveFeed("/v1/live/models", "models", "/v1/models", POLL_MS, (data) => {
      last = data;
      fill(error);
      render(last);
      markReady("models");
      window.__vla.updates.push({ page: "models", t: performance.now() });
    }, (err) => fill(error, banner(err.message)));

    return () => { poll.stop(); abort.abort(); };
  },
};
