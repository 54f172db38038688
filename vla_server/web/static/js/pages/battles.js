// Battles: two policies from the same start, their videos played in sync side by side, a vote (A / B /
// tie), the outcome; and the leaderboard (Bradley–Terry ratings with confidence intervals) as a table
// and a plot.

import { blobUrl, get, post } from "../api.js";
import { arena, battleView, leaderboardView } from "../arena_api.js";
import { ago, badge, banner, fill, h, isNum, keyedFill, markReady, num, pct, poller, progressBar, showError, toast } from "../ui.js";

const STATUS_WORDS = { queued: "waiting to start", running: "running", awaiting_vote: "waiting for a vote", decided: "decided",
  done: "finished", failed: "failed", cancelled: "cancelled" };
/** A battle's status in plain words (the API's names, e.g. "awaiting_vote", are for programs). */
function battleStatusWords(status) { return STATUS_WORDS[status] || String(status).replace(/_/g, " "); }

const LIST_MS = 3000;
const BATTLE_MS = 500;
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** Horizontal dot-and-whisker plot: rating with its confidence interval, one row per model. */
export function ratingPlot(rows) {
  const longest = Math.max(...rows.map((r) => String(r.model).length), 4);
  const W = 760, rowH = 28, top = 10, left = Math.min(300, 16 + 7.5 * longest), right = 24, bottom = 36;
  const H = top + rows.length * rowH + bottom;
  const vals = rows.flatMap((r) => [r.lo, r.hi, r.rating]).filter(isNum);
  if (!vals.length) return h("p.muted", "no ratings yet");
  let lo = Math.min(...vals), hi = Math.max(...vals);
  const pad = Math.max(10, (hi - lo) * 0.08);
  lo -= pad; hi += pad;
  const x = (v) => left + ((v - lo) / (hi - lo)) * (W - left - right);
  const root = svg("svg", { class: "chart", id: "leaderboard-plot", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "ratings with confidence intervals" });
  const step = Math.pow(10, Math.floor(Math.log10((hi - lo) / 4)));
  const tick = [1, 2, 5, 10].map((m) => m * step).find((s) => (hi - lo) / s <= 6) || step * 10;
  for (let v = Math.ceil(lo / tick) * tick; v <= hi; v += tick) {
    root.append(svg("line", { class: "grid", x1: x(v), x2: x(v), y1: top, y2: H - bottom }),
      svg("text", { x: x(v), y: H - bottom + 16, "text-anchor": "middle" }, v.toFixed(0)));
  }
  root.append(svg("line", { class: "axis", x1: left, x2: W - right, y1: H - bottom, y2: H - bottom }));
  rows.forEach((r, i) => {
    const y = top + i * rowH + rowH / 2;
    root.append(svg("text", { x: left - 8, y: y + 4, "text-anchor": "end" }, r.model));
    if (isNum(r.lo) && isNum(r.hi)) {
      root.append(svg("line", { class: "ci", x1: x(r.lo), x2: x(r.hi), y1: y, y2: y }),
        svg("line", { class: "ci", x1: x(r.lo), x2: x(r.lo), y1: y - 5, y2: y + 5 }),
        svg("line", { class: "ci", x1: x(r.hi), x2: x(r.hi), y1: y - 5, y2: y + 5 }));
    }
    if (isNum(r.rating)) root.append(svg("circle", { class: "pt", cx: x(r.rating), cy: y, r: 5 }, svg("title", {}, `${r.model}: ${r.rating.toFixed(0)}`)));
  });
  root.append(svg("text", { x: left + (W - left - right) / 2, y: H - 2, "text-anchor": "middle" }, "rating (Bradley–Terry, Elo scale) with 95 % bootstrap interval"));
  return root;
}

/** Keeps video `b` on `a`'s clock; returns controls (play/pause, seek) and a stop function. */
function syncPair(a, b) {
  const play = h("button.btn#sync-play", { type: "button" }, "▶ Play both");
  const seek = h("input#sync-seek", { type: "range", min: 0, max: 1000, value: 0, style: { flex: "1" } });
  const clock = h("span.muted.small#sync-clock", "0.0 s");
  let raf = 0;
  const both = (fn) => [a, b].forEach(fn);
  const label = () => { play.textContent = a.paused ? "▶ Play both" : "❚❚ Pause both"; };
  play.addEventListener("click", () => {
    if (a.paused) { b.currentTime = Math.min(a.currentTime, b.duration || a.currentTime); both((v) => v.play().catch(() => {})); }
    else both((v) => v.pause());
  });
  seek.addEventListener("input", () => {
    const t = (seek.value / 1000) * (a.duration || 0);
    both((v) => { v.currentTime = Math.min(t, v.duration || t); });
  });
  a.addEventListener("play", label);
  a.addEventListener("pause", label);
  a.addEventListener("ended", () => { b.pause(); label(); });
  const tick = () => {
    if (a.duration) seek.value = String(Math.round((a.currentTime / a.duration) * 1000));
    clock.textContent = `${a.currentTime.toFixed(1)} s`;
    if (!a.paused && b.paused && b.currentTime < (b.duration || Infinity)) b.play().catch(() => {});
    if (Math.abs(b.currentTime - a.currentTime) > 0.08 && a.currentTime <= (b.duration || Infinity)) b.currentTime = a.currentTime;
    raf = requestAnimationFrame(tick);
  };
  raf = requestAnimationFrame(tick);
  return { controls: h("div.row", play, seek, clock), stop: () => cancelAnimationFrame(raf) };
}

export default {
  title: "Battles",
  mount(root, ctx) {
    const abort = new AbortController();
    const urls = new Set();
    let current = ctx.args[0] || null;
    let view = null; // {id, stop()}

    // -- new battle form ------------------------------------------------------------------------------
    const modelA = h("select#battle-model-a");
    const modelB = h("select#battle-model-b");
    const instruction = h("input#battle-instruction", { value: "pick up the red cube", maxLength: 500 });
    const steps = h("input#battle-steps", { type: "number", min: 1, max: 3000, value: 50 });
    const seed = h("input#battle-seed", { type: "number", min: 0, value: 0 });
    const scene = h("select#battle-scene", h("option", { value: "default" }, "default"), h("option", { value: "shuffled" }, "shuffled (seeded)"));
    const outcomeBy = h("select#battle-outcome-by", h("option", { value: "vote" }, "people's votes"), h("option", { value: "metric" }, "the task metric"));
    const submit = h("button.btn.btn-primary#battle-run", { type: "submit" }, "Start battle");
    const form = h("form.panel#battle-form", {
      onsubmit: async (ev) => {
        ev.preventDefault();
        if (modelA.value === modelB.value) { showError(new Error("pick two different models")); return; }
        submit.disabled = true;
        try {
          const b = battleView(await arena.createBattle({
            model_a: modelA.value, model_b: modelB.value, instruction: instruction.value.trim(),
            steps: Number(steps.value), seed: Number(seed.value || 0), scene: scene.value, outcome_by: outcomeBy.value,
          }, abort.signal));
          toast(`battle ${b.id} started`, "ok");
          ctx.navigate("battles", b.id);
          list.now();
        } catch (err) {
          if (err.name !== "AbortError") showError(err);
        } finally { submit.disabled = !ctx.isAdmin(); }
      },
    },
    h("h2", "New battle"),
    h("div.form-grid", h("label", "model A", modelA), h("label", "model B", modelB), h("label.wide", "instruction", instruction),
      h("label", "steps", steps), h("label", "seed", seed), h("label", "scene", scene), h("label", "decided by", outcomeBy)),
    h("div.row.end", { style: { marginTop: "10px" } }, h("span.muted.small", ctx.isAdmin() ? "" : "starting battles needs an admin key"), submit));
    submit.disabled = !ctx.isAdmin();

    // -- battle view ------------------------------------------------------------------------------------
    const battleBox = h("div#battle-view");

    function showBattle(id) {
      if (view) view.stop();
      current = id;
      for (const tr of listBody.querySelectorAll("tr")) tr.classList.toggle("selected", tr.dataset.battle === id);
      if (!id) { fill(battleBox); return; }
      const local = new AbortController();
      const vA = h("video#battle-video-a", { muted: true, playsInline: true, preload: "auto" });
      const vB = h("video#battle-video-b", { muted: true, playsInline: true, preload: "auto" });
      const headA = h("h3"), headB = h("h3"), metaA = h("div.small"), metaB = h("div.small");
      const sideA = h("div.side#battle-side-a", headA, vA, metaA);
      const sideB = h("div.side#battle-side-b", headB, vB, metaB);
      const status = h("div#battle-status");
      const outcome = h("div#battle-outcome");
      const voteBtns = [["a", "A is better"], ["tie", "Tie"], ["b", "B is better"]].map(([w, label]) => h("button.btn", {
        type: "button", dataset: { vote: w }, disabled: true, onclick: () => vote(w),
      }, label));
      const sync = syncPair(vA, vB);
      fill(battleBox, h("div.panel",
        h("div.row", h("h2.grow", `Battle ${id}`), status),
        h("div.versus", sideA, sideB),
        h("div", { style: { marginTop: "10px" } }, sync.controls),
        h("div.vote", voteBtns),
        outcome));
      let loaded = false;
      let finished = false;
      let voted = false;

      async function vote(winner) {
        voteBtns.forEach((b) => { b.disabled = true; });
        try {
          await post(arena.vote(id), { winner }, { signal: local.signal });
          voted = true;
          toast(winner === "tie" ? "voted: tie" : `voted: ${winner.toUpperCase()} is better`, "ok");
          poll.now();
          board.now();
        } catch (err) {
          if (err.name !== "AbortError") showError(err);
          voteBtns.forEach((b) => { b.disabled = !ctx.isAdmin(); });
        }
      }

      const poll = poller(async () => {
        let b;
        try {
          b = battleView(await get(arena.battle(id), { signal: local.signal }));
        } catch (err) {
          if (err.name !== "AbortError") fill(status, banner(err.message));
          return;
        }
        const reveal = b.outcome !== null || voted;
        fill(headA, h("span", "A", reveal ? h("span.muted", ` · ${b.a.model}`) : null), h("span.grow"), b.outcome === "a" ? badge("won", "winner") : null);
        fill(headB, h("span", "B", reveal ? h("span.muted", ` · ${b.b.model}`) : null), h("span.grow"), b.outcome === "b" ? badge("won", "winner") : null);
        sideA.classList.toggle("winner", b.outcome === "a");
        sideB.classList.toggle("winner", b.outcome === "b");
        // A blind vote: nothing that tells the sides apart (model, task success, progress, the metric's
        // verdict, other people's votes) is shown until this person has voted or the battle is decided.
        const meta = (s) => reveal
          ? [s.success === true ? badge("success", "task success") : s.success === false ? badge("failure", "task failed") : null,
            isNum(s.progress) ? ` progress ${num(s.progress, 0)}/100` : ""]
          : h("span.muted", "results hidden until you vote");
        fill(metaA, meta(b.a));
        fill(metaB, meta(b.b));
        fill(status, badge(b.status, battleStatusWords(b.status)));
        if (!b.done) {
          const frac = (b.a.fraction + b.b.fraction) / 2;
          fill(outcome, h("p.muted", `running both episodes… ${Math.round(frac * 100)} %`), progressBar(frac));
          return;
        }
        if (b.failed) { fill(outcome, banner(`the battle failed: ${b.raw.error || b.status}`)); finished = true; poll.stop(); return; }
        if (!loaded) {
          loaded = true;
          try {
            const [ua, ub] = await Promise.all([blobUrl(arena.video(b.a.episode), { signal: local.signal }), blobUrl(arena.video(b.b.episode), { signal: local.signal })]);
            urls.add(ua); urls.add(ub);
            vA.src = ua; vB.src = ub;
          } catch (err) {
            if (err.name !== "AbortError") fill(outcome, banner(`videos: ${err.message}`));
          }
        }
        const decided = b.outcome !== null;
        voteBtns.forEach((btn) => { btn.disabled = !ctx.isAdmin(); btn.title = ctx.isAdmin() ? "" : "voting needs an admin key"; });
        fill(outcome, h("p#battle-outcome-text", { style: { textAlign: "center" } },
          decided ? [h("strong", b.outcome === "tie" ? "Tie" : `${b.outcome.toUpperCase()} wins`), b.decidedBy ? h("span.muted", ` (by ${b.decidedBy})`) : null]
            : h("span.muted", "No outcome yet: watch both and vote."),
          reveal ? h("span.muted#battle-votes", ` · votes A ${b.votes.a ?? 0} · B ${b.votes.b ?? 0} · tie ${b.votes.tie ?? 0}`) : null,
          reveal && b.metricOutcome ? h("span.muted", ` · task metric says ${b.metricOutcome === "tie" ? "tie" : b.metricOutcome.toUpperCase()}`) : null));
        if (decided && finished) return;
        finished = decided;
      }, BATTLE_MS);
      view = { id, stop() { poll.stop(); sync.stop(); local.abort(); } };
    }

    // -- battle list and leaderboard -------------------------------------------------------------------------
    const listBody = h("tbody");
    const list = poller(async () => {
      try {
        const data = await get(arena.battles, { signal: abort.signal, query: { limit: 30 } });
        const rows = (Array.isArray(data) ? data : data.battles || []).map(battleView);
        if (!rows.length) fill(listBody, h("tr", h("td.empty", { colSpan: 4 }, "No battles yet.")));
        else {
          if (!listBody.querySelector("tr.clickable")) fill(listBody);
          keyedFill(listBody, rows, (b) => b.id, (b) => JSON.stringify([b.status, b.outcome, b.id === current, Math.floor(Date.now() / 30000)]),
            (b) => h("tr.clickable", { dataset: { battle: b.id }, class: b.id === current ? "selected" : undefined, onclick: () => ctx.navigate("battles", b.id) },
          h("td", `${b.a.model} vs ${b.b.model}`), h("td", b.instruction),
          h("td", badge(b.outcome ? (b.outcome === "tie" ? "tie" : "won") : b.status, b.outcome ? (b.outcome === "tie" ? "tie" : `${b.outcome.toUpperCase()} won`) : battleStatusWords(b.status))),
          h("td.muted", ago(b.createdAt))));
        }
      } catch (err) {
        if (err.name !== "AbortError") fill(listBody, h("tr", h("td", { colSpan: 4 }, banner(err.message))));
      }
    }, LIST_MS);

    const boardBody = h("tbody");
    const plotBox = h("div");
    const board = poller(async () => {
      try {
        const rows = leaderboardView(await get(arena.leaderboard, { signal: abort.signal }));
        fill(boardBody, rows.length ? rows.map((r, i) => h("tr", { dataset: { model: r.model } },
          h("td.num", String(i + 1)), h("td", r.model), h("td.num.rating", num(r.rating, 0)),
          h("td.num", isNum(r.lo) ? `${num(r.lo, 0)} – ${num(r.hi, 0)}` : "–"),
          h("td.num.wlt", `${r.wins} / ${r.losses} / ${r.ties}`), h("td.num", pct(r.successRate)), h("td.num", String(r.episodes ?? "–"))))
          : h("tr", h("td.empty", { colSpan: 7 }, "No battles decided yet.")));
        fill(plotBox, rows.length ? ratingPlot(rows) : null);
        markReady("battles");
        window.__vla.updates.push({ page: "battles", t: performance.now() });
      } catch (err) {
        if (err.name !== "AbortError") fill(plotBox, banner(err.message));
      }
    }, LIST_MS);

    fill(root,
      h("div.page-head", h("h1", "Battles"), h("span.muted", "same start, same instruction, two policies")),
      battleBox,
      h("div.split",
        h("div.panel#leaderboard",
          h("h2", "Leaderboard"),
          h("table#leaderboard-table", h("thead", h("tr", h("th.num", "#"), h("th", "model"), h("th.num", "rating"), h("th.num", "95 % CI"),
            h("th.num", "W / L / T"), h("th.num", "success"), h("th.num", "episodes"))), boardBody),
          h("div", { style: { marginTop: "12px" } }, plotBox)),
        h("div", form, h("div.panel", h("h2", "Recent battles"), h("table#battles-table", listBody)))));

    (async () => {
      try {
        const models = await get(arena.models, { signal: abort.signal });
        const ids = (Array.isArray(models) ? models : models.models || []).map((m) => m.id);
        fill(modelA, ids.map((id) => h("option", { value: id }, id)));
        fill(modelB, ids.map((id) => h("option", { value: id }, id)));
        if (ids.length > 1) modelB.value = ids[1];
      } catch (err) { if (err.name !== "AbortError") showError(err); }
    })();
    showBattle(current);

    return {
      cleanup() { list.stop(); board.stop(); if (view) view.stop(); abort.abort(); urls.forEach((u) => URL.revokeObjectURL(u)); },
      onArgs(args) { if ((args[0] || null) !== current) showBattle(args[0] || null); },
    };
  },
};
