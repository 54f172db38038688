// Arena: a form for a new episode (model, instruction, latency, steps, start from the default scene, a
// state blob or a teleop recording at a time); the running episode's progress and log, live; then its
// video with the metrics beside it; and a history grid of past episodes with thumbnails and filters.
// "Watch it live in Foxglove" serves the episode on a Foxglove WebSocket while it runs; the run page
// shows the links to open it.

import { blobUrl, download, get, post, sse } from "../api.js";
import { arena, episodeView, metricRows } from "../arena_api.js";
import { ago, badge, banner, fill, h, keyedFill, markReady, num, poller, progressBar, showError, toast } from "../ui.js";

const HISTORY_MS = 3000;
const STATUS_MS = 400;

export default {
  title: "Arena",
  mount(root, ctx) {
    const abort = new AbortController();
    const urls = new Set();
    // #/arena/ID shows an episode; #/arena/from/RECORDING/SECONDS fills the form with that start.
    const preset = ctx.args[0] === "from" ? { recording: ctx.args[1], at: Number(ctx.args[2] || 0) } : null;
    let current = preset ? null : ctx.args[0] || null;
    let watch = null; // {id, stop()} of the episode shown
    const thumbs = new Map(); // episode id -> object URL

    // -- the form -------------------------------------------------------------------------------------
    const model = h("select#arena-model", { name: "model", required: true });
    const instruction = h("input#arena-instruction", { name: "instruction", value: "pick up the red cube", required: true, maxLength: 500 });
    const latency = h("input#arena-latency", { name: "latency_ms", type: "number", min: 0, max: 5000, step: 1, placeholder: "model default" });
    const steps = h("input#arena-steps", { name: "steps", type: "number", min: 1, max: 3000, value: 50, required: true });
    const hz = h("select#arena-hz", { name: "control_hz" }, [5, 10, 20, 25, 50].map((v) => h("option", { value: v, selected: v === 10 }, `${v} Hz`)));
    const seed = h("input#arena-seed", { name: "seed", type: "number", min: 0, value: 0 });
    const size = h("select#arena-size", { name: "size" }, h("option", { value: "320x240" }, "320 × 240"), h("option", { value: "640x480" }, "640 × 480"));
    const camera = h("select#arena-camera", { name: "camera" }, h("option", { value: "front" }, "front"), h("option", { value: "wrist" }, "wrist"));
    const scene = h("select#arena-scene", { name: "scene" }, h("option", { value: "default" }, "default"), h("option", { value: "shuffled" }, "shuffled (seeded)"));
    const blob = h("textarea#arena-blob", { name: "start_blob", rows: 3, placeholder: "paste a state blob, or use “continue from here” on a finished episode" });
    const recording = h("select#arena-recording", { name: "recording" });
    const at = h("input#arena-at", { name: "at_s", type: "number", min: 0, step: 0.1, value: 0 });
    const liveBox = h("input#arena-live", { type: "checkbox", name: "live" });
    const startKind = (v) => h("input", { type: "radio", name: "start", value: v, checked: v === "scene", onchange: syncStart });
    const radios = ["scene", "blob", "recording"].map(startKind);
    const startParts = {
      scene: h("div.row", h("label", "scene", scene)),
      blob: h("div", h("label", "state blob", blob)),
      recording: h("div.row", h("label.grow", "teleop recording", recording), h("label", "at (s)", at)),
    };
    function syncStart() {
      const kind = radios.find((r) => r.checked).value;
      for (const [k, el] of Object.entries(startParts)) el.hidden = k !== kind;
    }
    const submit = h("button.btn.btn-primary#arena-run", { type: "submit" }, "Run episode");
    const form = h("form.panel#arena-form", { onsubmit: onSubmit },
      h("h2", "New episode"),
      h("div.form-grid",
        h("label", "model", model), h("label.wide", "instruction", instruction),
        h("label", "latency (ms)", latency), h("label", "steps", steps), h("label", "control rate", hz),
        h("label", "seed", seed), h("label", "video size", size), h("label", "video camera", camera),
        h("fieldset.wide", h("legend", "start from"),
          h("div.row", h("label.radio", radios[0], "default scene"), h("label.radio", radios[1], "state blob"),
            h("label.radio", radios[2], "teleop recording at a time")),
          startParts.scene, startParts.blob, startParts.recording),
        h("label.radio.wide", liveBox, "watch it live in Foxglove while it runs (paced to real time)")),
      h("div.row.end", { style: { marginTop: "10px" } }, h("span.muted.small#arena-admin-note"), submit));
    syncStart();

    async function onSubmit(ev) {
      ev.preventDefault();
      const [w, hgt] = size.value.split("x").map(Number);
      const spec = {
        model: model.value, instruction: instruction.value.trim(), steps: Number(steps.value), control_hz: Number(hz.value),
        seed: Number(seed.value || 0), width: w, height: hgt, camera: camera.value,
      };
      if (latency.value !== "") spec.latency_ms = Number(latency.value);
      if (liveBox.checked) spec.live = true;
      const kind = radios.find((r) => r.checked).value;
      if (kind === "scene") spec.scene = scene.value;
      else if (kind === "blob") {
        if (!blob.value.trim()) { showError(new Error("paste a state blob first")); return; }
        spec.start_blob = blob.value.trim();
      } else {
        if (!recording.value) { showError(new Error("pick a teleop recording first")); return; }
        spec.from_recording = recording.value;
        spec.at_s = Number(at.value || 0);
      }
      submit.disabled = true;
      try {
        const created = await arena.createEpisode(spec, abort.signal);
        const e = episodeView(created);
        toast(`episode ${e.id} queued`, "ok");
        ctx.navigate("arena", e.id);
        history.now();
      } catch (err) {
        if (err.name !== "AbortError") showError(err);
      } finally {
        submit.disabled = !ctx.isAdmin();
      }
    }

    function applyPreset(p) {
      radios[2].checked = true;
      syncStart();
      recording.value = p.recording;
      at.value = String(p.at);
      if (p.recording && recording.value !== p.recording) showError(new Error(`recording ${p.recording} is not in the list`));
      instruction.focus();
    }

    // -- the episode shown ------------------------------------------------------------------------------
    const detail = h("div#arena-episode");

    function showEpisode(id) {
      if (watch) watch.stop();
      current = id;
      for (const t of tiles.querySelectorAll(".tile")) t.classList.toggle("selected", t.dataset.episode === id);
      if (!id) { fill(detail, h("div.panel.empty", "Run an episode, or pick one from the history below.")); return; }
      const head = h("div.row");
      const prog = h("div#arena-progress");
      const liveView = h("div#arena-live-view");
      let sawLive = false;
      const log = h("pre.log#arena-log");
      const result = h("div#arena-result");
      fill(detail, h("div.panel", head, prog, liveView), result, h("div.panel", h("h3", "Log"), log));
      const local = new AbortController();
      let streaming = false;
      let finished = false;
      const addLog = (line) => {
        const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        log.append(`${line}\n`);
        if (atEnd) log.scrollTop = log.scrollHeight;
      };
      const startLog = () => {
        streaming = true;
        sse(arena.logStream(id), (ev) => {
          if (ev.event === "log" || ev.event === "message") addLog(typeof ev.data === "string" ? ev.data : ev.data.line ?? JSON.stringify(ev.data));
          else if (ev.event === "progress" || ev.event === "end") status.now();
        }, { signal: local.signal }).catch((err) => {
          if (err.name !== "AbortError") addLog(`[log stream: ${err.message}]`);
        });
      };
      const status = poller(async () => {
        if (finished) return;
        let e;
        try {
          e = episodeView(await get(arena.episode(id), { signal: local.signal }));
        } catch (err) {
          if (err.name !== "AbortError") fill(prog, banner(err.message));
          return;
        }
        const control = (label, action) => h("button.btn.btn-small", {
          type: "button", id: `episode-${action}`, disabled: !ctx.isAdmin(), title: ctx.isAdmin() ? "" : "needs an admin key",
          onclick: async () => {
            try {
              await post(`${arena.episode(id)}/${action}`, {}, { signal: local.signal });
              toast(`episode ${id}: ${action} requested`, "ok");
              if (action === "rerun") showEpisode(id);
            } catch (err) { if (err.name !== "AbortError") showError(err); }
          },
        }, label);
        const headSig = JSON.stringify([e.status, e.success, ctx.isAdmin()]);
        if (head.dataset.sig !== headSig) { // rebuilt only on change: a button is never replaced under the pointer
          head.dataset.sig = headSig;
          fill(head, h("h2.grow", `Episode ${e.id}`), badge(e.status),
            e.success === true ? badge("success", "task success") : e.success === false ? badge("failure", "task failed") : null,
            !e.done ? control("Cancel", "cancel") : e.failed ? control("Run again", "rerun") : null);
        }
        fill(prog,
          h("div.row.small.muted", h("span", `${e.model} · “${e.instruction}”`), h("span.grow"),
            h("span#arena-step", e.steps ? `step ${e.step ?? 0} of ${e.steps}` : "")),
          progressBar(e.fraction, e.done ? (e.failed ? "failed" : "done") : ""),
          e.error ? h("p.error-text", e.error) : null);
        const live = e.raw.live;
        sawLive = sawLive || Boolean(live);
        const liveSig = JSON.stringify([live, e.done && sawLive]);
        if (liveView.dataset.sig !== liveSig) { // rebuilt only on change: a link is never replaced under the pointer
          liveView.dataset.sig = liveSig;
          fill(liveView, liveLines(live, e.done && sawLive));
        }
        if (!streaming) startLog();
        window.__vla.updates.push({ page: "arena", t: performance.now(), step: e.step });
        if (e.done) {
          finished = true;
          status.stop();
          if (!e.failed) showResult(e, result, local.signal);
          history.now();
        }
      }, STATUS_MS);
      watch = { id, stop() { status.stop(); local.abort(); } };
    }

    /** What the run page says about an episode's live view (`live` from the API; `ended`: it was on). */
    function liveLines(live, ended) {
      if (ended) return h("p.small.muted", "The live view closed when the episode ended.");
      if (!live) return null;
      if (live.state === "unavailable") return h("p.error-text", `Live view unavailable: ${live.error}. The episode runs without it.`);
      if (live.state !== "on") return h("p.small.muted", "Live view: it starts in Foxglove when the episode starts.");
      return h("div.small#arena-live-on",
        h("p", h("strong", "Watch it live: "),
          h("a#arena-live-link", { href: live.foxglove_web, target: "_blank", rel: "noopener" }, "open it in Foxglove"),
          " (web app) or ",
          h("a#arena-live-desktop", { href: live.foxglove_desktop }, "in the Foxglove desktop app"), "."),
        h("p.muted", "Or in Foxglove: Open connection → Foxglove WebSocket → ", h("code#arena-live-url", live.url),
          ". The address is on the machine that runs this service; layout: configs/foxglove_layout.json."));
    }

    async function showResult(e, box, signal) {
      const video = h("video#arena-video", { controls: true, muted: true, autoplay: true, playsInline: true, loop: true });
      const metrics = h("table.metrics#arena-metrics", h("tbody", metricRows(e.metrics).map(([k, v]) => h("tr", h("th", k), h("td.num", v)))));
      fill(box, h("div.panel", h("div.result",
        h("div", video, h("div.row", { style: { marginTop: "8px" } },
          h("button.btn.btn-small", { type: "button", onclick: () => download(arena.video(e.id), `${e.id}.mp4`).catch(showError) }, "⬇ video"),
          h("button.btn.btn-small", { type: "button", onclick: () => download(arena.trajectory(e.id), `${e.id}.mcap`).catch(showError) }, "⬇ trajectory (MCAP)"),
          h("button.btn.btn-small", { type: "button", onclick: () => download(arena.blob(e.id), `${e.id}.blob.txt`).catch(showError) }, "⬇ final state blob"),
          h("button.btn.btn-small", { type: "button", onclick: () => continueFrom(e.id) }, "Continue from here"))),
        h("div", h("h3", "Metrics"), metrics))));
      try {
        const url = await blobUrl(arena.video(e.id), { signal });
        urls.add(url);
        video.src = url;
      } catch (err) {
        if (err.name !== "AbortError") video.replaceWith(banner(`video: ${err.message}`));
      }
    }

    async function continueFrom(id) {
      try {
        const text = await get(arena.blob(id), { signal: abort.signal });
        blob.value = typeof text === "string" ? text.trim() : text.blob || text.final_blob || "";
        radios[1].checked = true;
        syncStart();
        form.scrollIntoView({ behavior: "smooth" });
        toast("the final state is in the form: the next episode starts there", "ok");
      } catch (err) { showError(err); }
    }

    // -- history -----------------------------------------------------------------------------------------
    const fModel = h("select#history-model", { onchange: () => history.now() }, h("option", { value: "" }, "all models"));
    const fStatus = h("select#history-status", { onchange: () => history.now() },
      ["", "queued", "running", "done", "failed", "cancelled"].map((s) => h("option", { value: s }, s || "any status")));
    const fSuccess = h("select#history-success", { onchange: () => history.now() },
      h("option", { value: "" }, "any result"), h("option", { value: "true" }, "task success"), h("option", { value: "false" }, "task failed"));
    const fText = h("input#history-text", { type: "search", placeholder: "instruction contains…", oninput: () => renderTiles() });
    const tiles = h("div.grid#arena-history");
    let episodes = [];

    function renderTiles() {
      const q = fText.value.trim().toLowerCase();
      const shown = episodes.filter((e) => !q || e.instruction.toLowerCase().includes(q));
      if (!shown.length) { fill(tiles, h("div.empty", episodes.length ? "No episode matches." : "No episodes yet.")); return; }
      if (!tiles.querySelector(".tile")) fill(tiles);
      keyedFill(tiles, shown, (e) => e.id,
        (e) => JSON.stringify([e.status, e.step, e.success, e.progressScore, e.id === current, thumbs.has(e.id), Math.floor(Date.now() / 30000)]), (e) => {
        const thumb = h("div.thumb", e.done && !e.failed ? "…" : e.status);
        const url = thumbs.get(e.id);
        if (url) fill(thumb, h("img", { src: url, alt: "" }));
        else if (e.done && !e.failed) loadThumb(e.id, thumb);
        return h("div.tile", { dataset: { episode: e.id, status: e.status }, class: e.id === current ? "selected" : undefined, onclick: () => ctx.navigate("arena", e.id) },
          thumb,
          h("div.meta",
            h("span.title", e.instruction),
            h("span", e.model),
            h("span.row", badge(e.status), e.success === true ? badge("success", "success") : e.success === false ? badge("failure", "failed") : null,
              h("span.grow"), h("span.muted", num(e.progressScore, 0))),
            h("span.muted", ago(e.createdAt))));
      });
    }

    async function loadThumb(id, el) {
      thumbs.set(id, null);
      try {
        const url = await blobUrl(arena.thumbnail(id), { signal: abort.signal });
        urls.add(url);
        thumbs.set(id, url);
        fill(el, h("img", { src: url, alt: "" }));
      } catch {
        fill(el, "no thumbnail");
      }
    }

    const history = poller(async () => {
      try {
        const data = await get(arena.episodes, { signal: abort.signal, query: { model: fModel.value, status: fStatus.value, success: fSuccess.value, limit: 60 } });
        episodes = (Array.isArray(data) ? data : data.episodes || []).map(episodeView);
        renderTiles();
        markReady("arena");
      } catch (err) {
        if (err.name !== "AbortError") fill(tiles, banner(err.message));
      }
    }, HISTORY_MS);

    // -- page -----------------------------------------------------------------------------------------------
    fill(root,
      h("div.page-head", h("h1", "Arena"), h("span.muted", "policies in the loop of the MuJoCo Panda scene, latency counted in sim time")),
      h("div.arena-layout", form, detail),
      h("div.panel", h("div.row", { style: { marginBottom: "10px" } }, h("h2.grow", "History"), fText, fModel, fStatus, fSuccess), tiles));

    (async () => {
      try {
        const [models, recs] = await Promise.all([get(arena.models, { signal: abort.signal }), get("/v1/recordings", { signal: abort.signal }).catch(() => ({ recordings: [] }))]);
        const list = Array.isArray(models) ? models : models.models || [];
        fill(model, list.map((m) => h("option", { value: m.id, dataset: { latency: m.latency_ms ?? 0 } },
          m.latency_ms ? `${m.id} (${m.latency_ms} ms)` : m.id)));
        const showDefault = () => { latency.placeholder = `model default: ${model.selectedOptions[0]?.dataset.latency ?? 0} ms`; };
        model.addEventListener("change", showDefault);
        const cr = list.find((m) => m.id === "color-reach");
        if (cr) model.value = cr.id;
        showDefault();
        fModel.append(...list.map((m) => h("option", { value: m.id }, m.id)));
        fill(recording, h("option", { value: "" }, recs.recordings.length ? "pick a recording" : "no recordings"),
          recs.recordings.filter((r) => !r.error).map((r) => h("option", { value: r.id },
            `${r.id} (${num(r.duration_s, 1)} s${r.sim_state ? "" : ", no simulator state"})`)));
        if (preset) applyPreset(preset);
      } catch (err) {
        if (err.name !== "AbortError") showError(err);
      }
    })();
    const admin = ctx.isAdmin();
    submit.disabled = !admin;
    fill(form.querySelector("#arena-admin-note"), admin ? "" : "running episodes needs an admin key");
    showEpisode(current);

    return {
      cleanup() { history.stop(); if (watch) watch.stop(); abort.abort(); urls.forEach((u) => URL.revokeObjectURL(u)); },
      onArgs(args) {
        if (args[0] === "from") { applyPreset({ recording: args[1], at: Number(args[2] || 0) }); return; }
        if ((args[0] || null) !== current) showEpisode(args[0] || null);
      },
    };
  },
};
