// Recordings: the teleop recordings folder. Left: every finished recording with its outcome, duration
// and task, filterable. Right: the selected one — what `teleop-replay info` says, the plot, an MP4
// made on demand and played here, and download links.

import { blobUrl, download, get, post } from "../api.js";
import { badge, banner, bytes, duration, fill, h, markReady, progressBar, showError, when } from "../ui.js";

const base = (id) => `/v1/recordings/${id.split("/").map(encodeURIComponent).join("/")}`;

export default {
  title: "Recordings",
  mount(root, ctx) {
    const abort = new AbortController();
    const urls = [];
    let items = [];
    let selected = ctx.args[0] || null;
    let videoTimer = null;

    const filterText = h("input", { type: "search", placeholder: "filter by name, task, folder…", oninput: () => renderList() });
    const filterOutcome = h("select", { onchange: () => renderList() },
      h("option", { value: "" }, "any outcome"), h("option", { value: "success" }, "success"), h("option", { value: "failure" }, "failure"),
      h("option", { value: "other" }, "other"));
    const listBody = h("tbody");
    const count = h("span.muted");
    const detail = h("div#recording-detail");
    fill(root,
      h("div.page-head", h("h1", "Recordings"), count, h("span.grow"),
        h("button.btn", { type: "button", onclick: () => load() }, "Refresh")),
      h("div.rec-layout",
        h("div.panel.rec-list",
          h("div.row", { style: { marginBottom: "8px" } }, filterText, filterOutcome),
          h("table#recordings-table",
            h("thead", h("tr", h("th", "recording · task"), h("th", "outcome"), h("th.num", "duration"))),
            listBody)),
        detail));

    function matches(r) {
      const q = filterText.value.trim().toLowerCase();
      if (q && ![r.id, r.task, r.operator].some((s) => String(s || "").toLowerCase().includes(q))) return false;
      const o = filterOutcome.value;
      if (o === "success" || o === "failure") return String(r.outcome).startsWith(o);
      if (o === "other") return !String(r.outcome).startsWith("success") && !String(r.outcome).startsWith("failure");
      return true;
    }

    function renderList() {
      const shown = items.filter(matches);
      fill(count, `${shown.length} of ${items.length}`);
      if (!items.length) {
        fill(listBody, h("tr", h("td.empty", { colSpan: 3 }, "No recordings yet. The daemon writes them to its recordings folder.")));
        return;
      }
      fill(listBody, shown.map((r) => h("tr.clickable", {
        class: r.id === selected ? "selected" : undefined, dataset: { id: r.id },
        onclick: () => ctx.navigate("recordings", r.id),
      },
      h("td", h("div.rec-name", r.name), h("div.small", r.task || h("span.muted", "no task")),
        h("div.muted.small", [r.folder, bytes(r.size_bytes), r.operator].filter(Boolean).join(" · "))),
      h("td", r.error ? badge("error", "unreadable") : badge(String(r.outcome).split(" ")[0], String(r.outcome).split(" (")[0]),
        r.gaps_found ? h("div", badge("loading", "gaps")) : null),
      h("td.num", duration(r.duration_s)))));
    }

    async function load() {
      try {
        const res = await get("/v1/recordings", { signal: abort.signal });
        items = res.recordings;
        renderList();
        markReady("recordings");
        if (selected) show(selected);
        else fill(detail, h("div.panel.empty", items.length ? "Pick a recording on the left." : ""));
      } catch (err) {
        if (err.name !== "AbortError") fill(detail, banner(err.message));
      }
    }

    async function show(id) {
      selected = id;
      clearTimeout(videoTimer);
      for (const tr of listBody.querySelectorAll("tr")) tr.classList.toggle("selected", tr.dataset.id === id);
      const summary = items.find((r) => r.id === id);
      const infoBox = h("pre.infotext#recording-info", "reading…");
      const plotBox = h("div#recording-plot", h("p.muted", "drawing the plot (a second or two)…"));
      const videoBox = h("div#recording-video");
      fill(detail,
        h("div.panel",
          h("div.row", h("h2.grow", id), summary ? badge(String(summary.outcome).split(" ")[0], summary.outcome) : null),
          summary ? h("p.muted.small", `${when(summary.modified)} · ${bytes(summary.size_bytes)} · ${summary.messages} messages`
            + (summary.cameras.length ? ` · cameras: ${summary.cameras.join(", ")}` : "")
            + (summary.sim_state ? " · simulator state recorded" : "")) : null,
          h("div.row#recording-downloads",
            h("button.btn.btn-small", { type: "button", onclick: () => download(`${base(id)}/file`, id.split("/").pop()).catch(showError) }, "⬇ MCAP"),
            h("button.btn.btn-small", { type: "button", onclick: () => download(`${base(id)}/plot.png`, id.split("/").pop().replace(/\.mcap$/, ".png")).catch(showError) }, "⬇ plot PNG"),
            h("button.btn.btn-small", { type: "button", onclick: () => download(`${base(id)}/info`, id.split("/").pop().replace(/\.mcap$/, ".info.json")).catch(showError) }, "⬇ info JSON"),
            summary && summary.sim_state ? h("button.btn.btn-small.btn-primary#hand-to-policy", {
              type: "button", title: "start an arena episode from the simulator state at the video's current time",
              onclick: () => {
                const v = videoBox.querySelector("video");
                ctx.navigate("arena", "from", id, (v ? v.currentTime : 0).toFixed(1));
              },
            }, "Hand to a policy here →") : null)),
        h("div.two",
          h("div.panel", h("h3", "Video"), videoBox),
          h("div.panel", h("h3", "Plot (teleop-replay plot)"), plotBox)),
        h("div.panel", h("h3", "teleop-replay info"), infoBox));
      get(`${base(id)}/info`, { signal: abort.signal })
        .then((info) => { if (selected === id) fill(infoBox, info.text); })
        .catch((err) => { if (err.name !== "AbortError") fill(infoBox, h("span.error-text", err.message)); });
      blobUrl(`${base(id)}/plot.png`, { signal: abort.signal })
        .then((url) => {
          urls.push(url);
          if (selected === id) {
            fill(plotBox, h("img.plot#recording-plot-img", {
              src: url, alt: `plot of ${id}`, title: "click to enlarge", onclick: (ev) => ev.currentTarget.classList.toggle("expanded"),
            }));
          }
        })
        .catch((err) => { if (err.name !== "AbortError") fill(plotBox, h("p.error-text", err.message)); });
      watchVideo(id, videoBox, false);
    }

    async function watchVideo(id, box, started) {
      let status;
      try {
        status = await get(`${base(id)}/video`, { signal: abort.signal });
      } catch (err) {
        if (err.name !== "AbortError") fill(box, h("p.error-text", err.message));
        return;
      }
      if (selected !== id) return;
      const summary = items.find((r) => r.id === id);
      if (status.state === "done") {
        showVideos(id, box, status.cameras);
      } else if (status.state === "queued" || status.state === "running") {
        fill(box, h("p", `${status.phase || status.state}…`), progressBar(status.progress));
        videoTimer = setTimeout(() => watchVideo(id, box, true), 400);
      } else {
        const noCams = summary && summary.cameras.length === 0;
        fill(box,
          status.state === "failed" ? h("p.error-text", `Making the video failed: ${status.error}`) : null,
          noCams ? h("p.muted", "This recording has no camera frames.")
            : h("button.btn.btn-primary#make-video", {
              type: "button",
              onclick: async () => {
                try {
                  await post(`${base(id)}/video`, {});
                  watchVideo(id, box, true);
                } catch (err) { showError(err); }
              },
            }, status.state === "failed" ? "Try again" : "Make video (MP4)"));
        if (started && status.state === "failed") showError(new Error(status.error));
      }
    }

    async function showVideos(id, box, cameras) {
      fill(box, h("p.muted", "loading video…"));
      const parts = [];
      for (const cam of cameras) {
        try {
          const url = await blobUrl(`${base(id)}/video/${encodeURIComponent(cam)}.mp4`, { signal: abort.signal });
          urls.push(url);
          parts.push(h("div", h("div.row", h("strong", cam), h("span.grow"),
            h("button.btn.btn-small", { type: "button", onclick: () => download(`${base(id)}/video/${encodeURIComponent(cam)}.mp4`, `${id.split("/").pop().replace(/\.mcap$/, "")}.${cam}.mp4`).catch(showError) }, "⬇ MP4")),
          h("video", { src: url, controls: true, muted: true, autoplay: true, playsInline: true, dataset: { camera: cam } })));
        } catch (err) {
          if (err.name === "AbortError") return;
          parts.push(h("p.error-text", `${cam}: ${err.message}`));
        }
      }
      if (selected === id) fill(box, parts);
    }

    load();
    return {
      cleanup() { abort.abort(); clearTimeout(videoTimer); urls.forEach((u) => URL.revokeObjectURL(u)); },
      onArgs(args) { if (args[0] && args[0] !== selected) show(args[0]); },
    };
  },
};
