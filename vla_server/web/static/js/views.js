// What the pages show, derived from the service's replies in one place (so a changed field name is
// fixed here, not in every page). Each function takes a reply body and returns plain values.

const first = (...xs) => xs.find((x) => x !== undefined && x !== null);

/** GET /v1/models → {models: [...], usedMb, budgetMb, maxModels, policy, evictNext, warm}. */
export function modelsView(data) {
  const models = Array.isArray(data) ? data : data.models || [];
  const reg = (Array.isArray(data) ? {} : first(data.registry, data.budget, data)) || {};
  const used = first(reg.memory_used_mb, reg.used_mb,
    models.reduce((a, m) => a + (typeof m.memory_mb === "number" ? m.memory_mb : 0), 0));
  return {
    models: models.map((m) => ({ ...m, state: String(m.state || "cold").toLowerCase() })),
    usedMb: used,
    budgetMb: first(reg.memory_budget_mb, reg.budget_mb),
    maxModels: first(reg.max_models),
    policy: first(reg.eviction_policy, reg.policy, reg.eviction),
    evictNext: first(reg.evict_next, reg.next_eviction, null),
    warm: models.filter((m) => String(m.state).toLowerCase() === "warm").length,
  };
}

/** GET /v1/sessions → a list of session rows. */
export function sessionsView(data) {
  const rows = Array.isArray(data) ? data : data.sessions || [];
  return rows.map((s) => ({
    id: first(s.session_id, s.id),
    model: s.model,
    tier: first(s.tier, s.key_tier),
    keyName: first(s.key_name, s.key, s.name, ""),
    client: first(s.client, s.peer, ""),
    targetFps: s.target_fps,
    actualFps: s.actual_fps,
    frames: first(s.total_frames, s.frames),
    dropped: first(s.dropped_frames, s.drops),
    dropRate: s.drop_rate_percent,
    latencyMs: first(s.avg_latency_ms, s.latency_ms),
    latencyP50Ms: s.latency_p50_ms,
    latencyP95Ms: s.latency_p95_ms,
    runtimeS: s.runtime_seconds,
    queue: s.frame_queue_size,
    state: first(s.state, s.status, "active"),
  }));
}
