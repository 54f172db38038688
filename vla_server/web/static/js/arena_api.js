// The arena's HTTP API (vla_server/arena/api.py) as the Arena and Battles pages use it: paths in one
// place, and views that turn its replies into what the pages show.

import { post } from "./api.js";
import { isNum, ms, num, pct } from "./ui.js";

const A = "/v1/arena";
const enc = encodeURIComponent;

export const arena = {
  episodes: `${A}/episodes`,
  episode: (id) => `${A}/episodes/${enc(id)}`,
  logStream: (id) => `${A}/episodes/${enc(id)}/events`,
  video: (id) => `${A}/episodes/${enc(id)}/video`,
  thumbnail: (id) => `${A}/episodes/${enc(id)}/thumbnail`,
  blob: (id) => `${A}/episodes/${enc(id)}/blob`,
  trajectory: (id) => `${A}/episodes/${enc(id)}/trajectory`,
  battles: `${A}/battles`,
  battle: (id) => `${A}/battles/${enc(id)}`,
  vote: (id) => `${A}/battles/${enc(id)}/vote`,
  leaderboard: `${A}/leaderboard`,
  models: `${A}/models`,
  createEpisode: (spec, signal) => post(`${A}/episodes`, spec, { signal }),
  createBattle: (spec, signal) => post(`${A}/battles`, spec, { signal }),
};

const first = (...xs) => xs.find((x) => x !== undefined && x !== null);
const DONE = new Set(["done", "succeeded", "finished", "completed", "failed", "cancelled", "canceled", "error", "interrupted",
  "awaiting_vote", "decided"]);
const FAILED = new Set(["failed", "cancelled", "canceled", "error", "interrupted"]);

/** An episode reply → {id, status, step, steps, fraction, done, failed, model, instruction, success, progressScore, metrics, createdAt, error}. */
export function episodeView(e) {
  const spec = e.spec || {};
  const metrics = e.metrics || {};
  const prog = typeof e.progress === "object" && e.progress !== null ? e.progress : {};
  const status = String(first(e.status, e.state, "queued")).toLowerCase();
  const steps = first(prog.total, prog.steps, e.total, e.total_steps, spec.steps, metrics.steps);
  const step = first(prog.done, prog.step, e.step, DONE.has(status) && !FAILED.has(status) ? steps : 0);
  return {
    id: String(first(e.id, e.episode_id)),
    status,
    step,
    steps,
    fraction: isNum(step) && isNum(steps) && steps > 0 ? step / steps : DONE.has(status) ? 1 : 0,
    done: DONE.has(status),
    failed: FAILED.has(status),
    model: first(e.model, spec.model, ""),
    instruction: first(e.instruction, spec.instruction, ""),
    success: first(e.success, metrics.success, null),
    progressScore: first(e.progress_score, typeof e.progress === "number" ? e.progress : undefined, metrics.progress, null),
    metrics,
    createdAt: first(e.created_at, e.created, e.queued_at),
    error: first(e.error, ""),
    raw: e,
  };
}

/** Episode metrics → [label, text] rows for the table beside the video. */
export function metricRows(m) {
  const rows = [];
  const add = (label, v) => { if (v !== undefined && v !== null && v !== "–") rows.push([label, v]); };
  add("task", m.task);
  add("success", m.success === true ? "yes" : m.success === false ? "no" : undefined);
  add("progress (0–100)", isNum(m.progress) ? num(m.progress, 1) : undefined);
  add("best progress", isNum(m.max_progress) ? num(m.max_progress, 1) : undefined);
  add("success at step", m.success_step ?? undefined);
  add("lift", isNum(m.lift_m) ? `${(m.lift_m * 100).toFixed(1)} cm` : undefined);
  add("steps", isNum(m.steps) ? `${m.steps} at ${m.control_hz} Hz` : undefined);
  add("sim time", isNum(m.sim_time_s) ? `${m.sim_time_s.toFixed(2)} s` : undefined);
  add("latency (sim)", isNum(m.latency_ms) ? ms(m.latency_ms) + (m.latency_jitter_ms ? ` ± ${ms(m.latency_jitter_ms)}` : "") : undefined);
  add("stale-action ratio", isNum(m.stale_action_ratio) ? pct(m.stale_action_ratio, 1) : undefined);
  add("decision age (mean)", isNum(m.decision_age_ms_mean) ? ms(m.decision_age_ms_mean) : undefined);
  add("inference p50 / max", isNum(m.inference_ms_p50) || isNum(m.inference_ms_max) ? `${ms(m.inference_ms_p50 ?? m.inference_ms_mean)} / ${ms(m.inference_ms_max)}` : undefined);
  add("actions applied", m.actions_applied);
  const w = m.wall || {};
  if (isNum(w.total_s)) add("wall time", `${w.total_s.toFixed(2)} s (physics ${num(w.physics_s, 2)}, render ${num(w.render_s, 2)}, policy ${num(w.policy_s, 2)}, encode ${num(w.encode_s, 2)})`);
  add("real-time factor", isNum(m.realtime_factor) ? `${m.realtime_factor.toFixed(1)}×` : undefined);
  add("final blob", isNum(m.final_blob_chars) ? `${m.final_blob_chars} chars` : undefined);
  return rows;
}

/** A battle reply → {id, status, done, a: {model, episode, status, fraction, success, progress}, b, instruction, outcome, votes {a, b, tie}}. */
export function battleView(b) {
  const side = (k) => {
    const s = (b.episodes && b.episodes[k]) || {};
    return {
      model: first(b[`model_${k}`], s.model, ""),
      episode: first(b[`episode_${k}`], s.id, null),
      status: first(s.status, null),
      fraction: isNum(s.step) && isNum(s.total) && s.total > 0 ? s.step / s.total : 0,
      success: first(s.success, null),
      progress: typeof s.progress === "number" ? s.progress : null,
    };
  };
  const status = String(first(b.status, b.state, "queued")).toLowerCase();
  const outcome = first(b.outcome, b.result, null);
  return {
    id: String(first(b.id, b.battle_id)),
    status,
    done: DONE.has(status),
    failed: FAILED.has(status),
    a: side("a"),
    b: side("b"),
    instruction: first(b.instruction, b.spec?.instruction, ""),
    outcome: outcome === null ? null : String(outcome).toLowerCase(),
    decidedBy: first(b.decided_by, b.outcome_source, null),
    metricOutcome: first(b.metric_outcome, null),
    outcomeBy: first(b.outcome_by, null),
    votes: b.votes && typeof b.votes === "object" && !Array.isArray(b.votes) ? b.votes : { a: 0, b: 0, tie: 0 },
    createdAt: first(b.created_at, b.created),
    raw: b,
  };
}

/** GET leaderboard → rows {model, rating, lo, hi, wins, losses, ties, successRate, episodes, battles}. */
export function leaderboardView(data) {
  const rows = Array.isArray(data) ? data : data.models || data.leaderboard || data.rows || [];
  return rows.map((r) => {
    const ci = r.ci || r.rating_ci || [];
    return {
      model: r.model,
      rating: first(r.rating, r.elo),
      lo: first(r.ci_low, r.rating_lo, r.lo, ci[0]),
      hi: first(r.ci_high, r.rating_hi, r.hi, ci[1]),
      meanProgress: first(r.mean_progress, null),
      wins: first(r.wins, 0),
      losses: first(r.losses, 0),
      ties: first(r.ties, 0),
      successRate: first(r.success_rate, null),
      episodes: first(r.episodes, null),
      battles: first(r.battles, null),
    };
  }).sort((x, y) => (y.rating ?? -Infinity) - (x.rating ?? -Infinity));
}
