// doppel review: the page. Plain JavaScript, no libraries, nothing loaded from elsewhere.
"use strict";

const params = new URLSearchParams(location.search);
const TOKEN = params.get("token") || sessionStorage.getItem("doppel-token") || "";
if (params.get("token")) {
  sessionStorage.setItem("doppel-token", TOKEN);
  history.replaceState(null, "", location.pathname + location.hash);  // keep the token out of history
}

const $ = (id) => document.getElementById(id);
const state = {
  renders: [], uid: null, data: null, frame: 0, view: "swapped", zoom: 0, info: null,
  drawing: null, newPolys: [], schema: null, changed: new Set(), flagged: [], rev: 0, analysis: null,
};

async function api(path, options = {}) {
  const headers = Object.assign({"X-Doppel-Token": TOKEN}, options.headers || {});
  if (options.body && typeof options.body !== "string") {
    options.body = JSON.stringify(options.body);
    headers["Content-Type"] = "application/json";
  }
  const res = await fetch(path, Object.assign({}, options, {headers, credentials: "same-origin"}));
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new Error((data && (data.error || JSON.stringify(data.detail))) || res.statusText);
  return data;
}

function say(text, error = false) {
  const m = $("message");
  m.textContent = text;
  m.className = error ? "error" : "";
}

// -- renders ----------------------------------------------------------------------------------------
async function loadRenders() {
  state.renders = await api("/api/renders");
  const sel = $("render-select");
  sel.innerHTML = "";
  for (const r of state.renders) {
    const o = document.createElement("option");
    o.value = r.uid;
    o.textContent = `${r.output} (${r.clip || "?"}, ${r.uid.slice(0, 8)})${r.analysed ? "" : " - not analysed"}`;
    sel.appendChild(o);
  }
  const wanted = location.hash.startsWith("#/render/") ? location.hash.split("/")[2] : null;
  const pick = state.renders.find((r) => r.uid === wanted) || state.renders[state.renders.length - 1];
  if (!pick) { say("This workspace has no renders yet: run `doppel merge` first."); markReady(); return; }
  sel.value = pick.uid;
  await openRender(pick.uid);
}

async function openRender(uid, keepFrame = false) {
  state.uid = uid;
  history.replaceState(null, "", `${location.pathname}#/render/${uid}`);
  const data = await api(`/api/renders/${uid}`);
  state.data = data;
  $("render-status").textContent = `${data.status}`;
  renderOverrides();
  if (!data.analysed) {
    // Show the frames now (served from the video) and score them in the background.
    state.flagged = [];
    $("frame-max").textContent = data.frames - 1;
    $("frame-num").max = data.frames - 1;
    if (!keepFrame) state.frame = 0;
    drawTimeline();
    await goto(state.frame, true);
    markReady();
    analyseInBackground(uid);
    return;
  }
  state.rev = data.revision;
  state.flagged = data.flagged;
  if (data.stale) say("This render was merged again since it was analysed: press Analyse to refresh.", true);
  $("dirty").textContent = data.dirty;
  $("frame-max").textContent = data.frames - 1;
  $("frame-num").max = data.frames - 1;
  if (!keepFrame) state.frame = 0;
  drawTimeline();
  await goto(state.frame, true);
  markReady();
}

function markReady() { document.body.dataset.ready = "1"; }

// -- timeline and thumbnails --------------------------------------------------------------------------
function drawTimeline() {
  const c = $("timeline"), d = state.data;
  if (!d || !d.frames) return;
  const w = c.width = Math.max(200, c.clientWidth * (window.devicePixelRatio || 1));
  const h = c.height = 56 * (window.devicePixelRatio || 1);
  const g = c.getContext("2d");
  g.fillStyle = "#14161a";
  g.fillRect(0, 0, w, h);
  if (!d.analysed) {  // analysis running: how far it got, scores appear when it is done
    const job = state.analysis;
    if (job && job.total) { g.fillStyle = "#2f4a6b"; g.fillRect(0, h - 6, (job.done / job.total) * w, 6); }
    g.fillStyle = "#f0c040";
    g.fillRect((state.frame / d.frames) * w, 0, 2, h);
    return;
  }
  const n = d.frames, top = d.score.reduce((a, b) => Math.max(a, b), d.flag_score * 2);
  const flagged = new Set(d.flagged);
  const bw = Math.max(1, w / n);
  for (let i = 0; i < n; i++) {
    const s = d.score[i], x = (i / n) * w;
    if (d.frame_status[i] === "p") { g.fillStyle = "#2a2d33"; g.fillRect(x, h - 3, bw, 3); }
    if (d.frame_status[i] === "k") { g.fillStyle = "#4d6b4d"; g.fillRect(x, h - 3, bw, 3); }
    if (s <= 0) continue;
    const bh = Math.max(2, (Math.min(s, top) / top) * (h - 8));
    g.fillStyle = flagged.has(i) ? "#ff3b4a" : "#6f7f99";
    g.fillRect(x, h - bh, bw, bh);
  }
  g.fillStyle = "#ff3b4a";
  for (const i of d.flagged) g.fillRect((i / n) * w, 0, Math.max(1, bw), 4);
  g.fillStyle = "#3ea6ff";
  for (const i of d.cuts) g.fillRect((i / n) * w, 0, 2, h);
  g.fillStyle = "#f0c040";
  g.fillRect((state.frame / n) * w, 0, 2, h);
}

function spriteStyle(el, i) {
  const d = state.data, [tw, th] = d.thumb;
  const sheet = Math.floor(i / d.sheet.per_sheet), k = i % d.sheet.per_sheet;
  const col = k % d.sheet.columns, row = Math.floor(k / d.sheet.columns);
  el.style.width = `${tw}px`;
  el.style.height = `${th}px`;
  el.style.backgroundImage = `url(/api/renders/${state.uid}/sheets/${sheet}.jpg?v=${state.rev})`;
  el.style.backgroundPosition = `-${col * tw}px -${row * th}px`;
}

function frameAt(event) {
  const c = $("timeline"), r = c.getBoundingClientRect();
  return Math.max(0, Math.min(state.data.frames - 1, Math.floor(((event.clientX - r.left) / r.width) * state.data.frames)));
}

function drawFilmstrip() {
  const strip = $("filmstrip"), d = state.data;
  strip.innerHTML = "";
  if (!d.analysed) return;  // thumbnails are made by the analysis
  const flagged = new Set(state.flagged);
  for (let i = Math.max(0, state.frame - 6); i <= Math.min(d.frames - 1, state.frame + 6); i++) {
    const cell = document.createElement("div");
    cell.className = "cell" + (i === state.frame ? " current" : "") + (flagged.has(i) ? " flagged" : "");
    cell.title = `frame ${i}, score ${d.score[i]}`;
    spriteStyle(cell, i);
    cell.addEventListener("click", () => goto(i));
    strip.appendChild(cell);
  }
}

// -- the frame ----------------------------------------------------------------------------------------
async function goto(i, force = false) {
  const d = state.data;
  if (!d || !d.frames) return;
  i = Math.max(0, Math.min(d.frames - 1, i));
  if (i === state.frame && !force) return;
  state.frame = i;
  state.newPolys = [];
  state.drawing = null;
  document.body.dataset.frame = String(i);
  $("frame-num").value = i;
  $("info-frame").textContent = i;
  drawTimeline();
  drawFilmstrip();
  showImage();
  const info = await api(`/api/renders/${state.uid}/frames/${i}`);
  if (state.frame !== i) return;
  state.info = info;
  showInfo();
}

function showImage() {
  const img = $("frame-img");
  img.onload = () => {
    const o = $("overlay");
    o.width = img.naturalWidth;
    o.height = img.naturalHeight;
    applyZoom();
    drawOverlay();
    document.body.dataset.imageHash = imageHash(img);
    document.body.dataset.imageKey = `${state.frame}:${state.view}:${state.rev}`;
  };
  img.src = `/api/renders/${state.uid}/frames/${state.frame}/${state.view}.jpg?v=${state.rev}`;
}

function imageHash(img) {
  const c = document.createElement("canvas");
  c.width = 64; c.height = 64;
  const g = c.getContext("2d");
  g.drawImage(img, 0, 0, 64, 64);
  const px = g.getImageData(0, 0, 64, 64).data;
  let h = 2166136261 >>> 0;
  for (let k = 0; k < px.length; k += 4) {
    h = Math.imul(h ^ ((px[k] >> 3) | ((px[k + 1] >> 3) << 5) | ((px[k + 2] >> 3) << 10)), 16777619) >>> 0;
  }
  return h.toString(16);
}

function applyZoom() {
  const img = $("frame-img"), vp = $("viewport");
  if (!img.naturalWidth) return;
  const fit = Math.min(vp.clientWidth / img.naturalWidth, vp.clientHeight / img.naturalHeight);
  const z = state.zoom > 0 ? state.zoom : fit;
  $("stage").style.transform = `scale(${z})`;
  $("stage").style.width = `${img.naturalWidth}px`;
  $("zoom-level").textContent = `${Math.round(z * 100)}%`;
}

function zoomBy(f) {
  const img = $("frame-img"), vp = $("viewport");
  const fit = Math.min(vp.clientWidth / img.naturalWidth, vp.clientHeight / img.naturalHeight);
  const z = state.zoom > 0 ? state.zoom : fit;
  state.zoom = Math.max(0.1, Math.min(16, z * f));
  applyZoom();
}

function showInfo() {
  const info = state.info, d = state.data;
  const flagged = state.flagged.includes(info.frame);
  $("info").innerHTML = "";
  const lines = [
    `status: ${info.status}${info.shot_cut ? " (shot cut)" : ""}`,
    d.analysed ? `glitch score: ${info.score === null ? "-" : info.score.toFixed(2)}${flagged ? "  FLAGGED" : ""} (flag at ${d.flag_score})`
      : "glitch score: after the analysis",
    `occlusion: ${info.occlusion === null ? "-" : info.occlusion.toFixed(3)}`,
  ];
  for (const t of lines) { const p = document.createElement("div"); p.textContent = t; $("info").appendChild(p); }
  const ul = $("reasons");
  ul.innerHTML = "";
  for (const r of info.reasons) {
    const li = document.createElement("li");
    li.className = r.z >= 4 ? "strong" : "";
    const who = r.person ? `${r.person}: ` : "";
    li.textContent = `${who}${r.reason}: z ${r.z} (value ${r.value}, usual ${r.usual})`;
    ul.appendChild(li);
  }
  $("ov-first").value = info.frame;
  $("ov-last").value = info.frame;
  buildFields(info.settings);
  drawOverlay();
}

// -- overrides ----------------------------------------------------------------------------------------
function buildFields(settings) {
  const box = $("ov-fields"), s = state.schema;
  if (!s) return;
  box.innerHTML = "";
  state.changed.clear();
  for (const key of s.editable) {
    const prop = s.schema.properties[key] || {};
    const label = document.createElement("label");
    label.title = prop.description || "";
    label.append(key.replace(/_/g, " "));
    let input;
    if (s.choices[key]) {
      input = document.createElement("select");
      for (const v of s.choices[key]) { const o = document.createElement("option"); o.value = o.textContent = v; input.appendChild(o); }
      input.value = settings[key];
    } else if (prop.type === "boolean") {
      input = document.createElement("input");
      input.type = "checkbox";
      input.checked = !!settings[key];
    } else {
      input = document.createElement("input");
      input.type = "number";
      if (prop.minimum !== undefined) input.min = prop.minimum;
      if (prop.maximum !== undefined) input.max = prop.maximum;
      input.step = prop.type === "integer" ? "1" : "0.01";
      input.value = settings[key];
    }
    input.id = `ov-${key}`;
    input.dataset.key = key;
    input.addEventListener("change", () => state.changed.add(key));
    label.appendChild(input);
    box.appendChild(label);
  }
}

function fieldValue(key) {
  const input = $(`ov-${key}`), prop = state.schema.schema.properties[key] || {};
  if (input.type === "checkbox") return input.checked;
  if (input.tagName === "SELECT") return input.value;
  return prop.type === "integer" ? parseInt(input.value, 10) : parseFloat(input.value);
}

async function applyOverride(ev) {
  ev.preventDefault();
  if (!state.changed.size) { say("Change a setting first."); return; }
  const settings = {};
  for (const k of state.changed) settings[k] = fieldValue(k);
  try {
    const first = parseInt($("ov-first").value, 10), last = parseInt($("ov-last").value, 10);
    const res = await api(`/api/renders/${state.uid}/overrides`, {method: "POST", body: {first, last, settings}});
    say(`Override ${res.id} saved for frames ${res.first}-${res.last}; ${res.dirty} frame(s) to re-render.`);
    $("dirty").textContent = res.dirty;
    await refreshMeta();
  } catch (e) { say(e.message, true); }
}

async function refreshMeta() {
  const data = await api(`/api/renders/${state.uid}`);
  state.data = data;
  state.flagged = data.flagged || [];
  if (data.revision !== undefined) state.rev = data.revision;
  $("dirty").textContent = data.dirty || 0;
  renderOverrides();
}

function renderOverrides() {
  const ul = $("overrides");
  ul.innerHTML = "";
  for (const o of (state.data && state.data.overrides) || []) {
    const li = document.createElement("li");
    const keys = Object.entries(o.settings).map(([k, v]) => k === "mask_polygons" ? `${v.length} polygon(s)` : `${k}=${v}`);
    const span = document.createElement("span");
    span.textContent = `#${o.id} ${o.first}-${o.last}: ${keys.join(", ")}`;
    const del = document.createElement("button");
    del.textContent = "delete";
    del.addEventListener("click", async () => {
      try {
        const res = await api(`/api/renders/${state.uid}/overrides/${o.id}`, {method: "DELETE"});
        say(`Override ${o.id} deleted; ${res.dirty} frame(s) to re-render.`);
        await refreshMeta();
      } catch (e) { say(e.message, true); }
    });
    li.append(span, del);
    ul.appendChild(li);
  }
}

// -- polygons -----------------------------------------------------------------------------------------
function drawOverlay() {
  const o = $("overlay"), g = o.getContext("2d");
  g.clearRect(0, 0, o.width, o.height);
  const polys = [...((state.info && state.info.polygons) || []), ...state.newPolys];
  if (state.drawing) polys.push(state.drawing);
  for (const p of polys) {
    if (!p.points.length) continue;
    g.beginPath();
    g.moveTo(p.points[0][0], p.points[0][1]);
    for (const [x, y] of p.points.slice(1)) g.lineTo(x, y);
    if (p !== state.drawing) g.closePath();
    g.strokeStyle = p.mode === "include" ? "#3bff7a" : "#ff3b4a";
    g.lineWidth = Math.max(1, o.width / 400);
    g.stroke();
  }
}

function startPolygon(mode) {
  state.drawing = {mode, points: []};
  $("overlay").classList.add("drawing");
  $("poly-include").classList.toggle("active", mode === "include");
  $("poly-exclude").classList.toggle("active", mode === "exclude");
  say(`Drawing an ${mode} polygon: click points, then Close polygon (Enter).`);
}

function closePolygon() {
  if (state.drawing && state.drawing.points.length >= 3) state.newPolys.push(state.drawing);
  state.drawing = null;
  $("overlay").classList.remove("drawing");
  $("poly-include").classList.remove("active");
  $("poly-exclude").classList.remove("active");
  drawOverlay();
}

async function savePolygons(clear = false) {
  closePolygon();
  const polygons = clear ? [] : [...((state.info && state.info.polygons) || []), ...state.newPolys];
  try {
    const res = await api(`/api/renders/${state.uid}/polygons`, {method: "POST", body: {frame: state.frame, polygons}});
    say(`Polygons saved for frames ${res.first}-${res.last}; ${res.dirty} frame(s) to re-render.`);
    state.newPolys = [];
    await refreshMeta();
    await goto(state.frame, true);
  } catch (e) { say(e.message, true); }
}

// -- jobs ---------------------------------------------------------------------------------------------
// the buttons that start a job: disabled while one runs (jobs run one at a time)
const JOB_BUTTONS = ["btn-analyse", "btn-rerender", "btn-export", "btn-retrain-mask"];

async function runJob(path, body, label) {
  const buttons = JOB_BUTTONS.map($);
  buttons.forEach((b) => { b.disabled = true; });
  document.body.dataset.job = "running";
  try {
    let job = await api(path, {method: "POST", body: body || {}});
    while (job.status === "running") {
      $("job").textContent = jobProgress(label, job);
      await new Promise((r) => setTimeout(r, 250));
      job = await api(`/api/jobs/${job.id}`);
    }
    $("job").textContent = "";
    if (job.status === "failed") throw new Error(job.error);
    document.body.dataset.job = "done";
    return job.result;
  } catch (e) {
    document.body.dataset.job = "failed";
    say(`${label} failed: ${e.message}`, true);
    return null;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

async function analyse() {
  const res = await runJob(`/api/renders/${state.uid}/analyse`, {}, "analysing");
  if (res) { say(`Analysed ${res.frames} frames: ${res.flagged} flagged.`); await openRender(state.uid, true); }
}

function jobProgress(label, job) {
  if (job.waiting) return `${label}: waiting for the job before it`;
  let text = `${label}: ${job.done}${job.total ? "/" + job.total : ""} frames`;
  if (job.fps) text += `, ${job.fps.toFixed(1)} frames/s`;
  if (job.eta_s !== null && job.eta_s !== undefined) text += `, about ${Math.ceil(job.eta_s)} s left`;
  return text;
}

// A render opened before it was analysed: its frames are browsable at once while the analysis
// (scores, thumbnails, mattes) runs here, with its progress; the page fills in when it is done.
async function analyseInBackground(uid) {
  const label = "analysing in the background";
  JOB_BUTTONS.forEach((b) => { $(b).disabled = true; });
  document.body.dataset.job = "running";
  try {
    let job = await api(`/api/renders/${uid}/analyse`, {method: "POST", body: {}});
    while (job.status === "running") {
      if (state.uid !== uid) return;  // another render was opened; its own analysis runs after this one
      state.analysis = job;
      $("job").textContent = jobProgress(label, job);
      say("Scores and thumbnails appear when the analysis is done; the frames can be browsed now.");
      drawTimeline();
      await new Promise((r) => setTimeout(r, 500));
      job = await api(`/api/jobs/${job.id}`);
    }
    state.analysis = null;
    $("job").textContent = "";
    if (state.uid !== uid) return;
    if (job.status === "failed") throw new Error(job.error);
    document.body.dataset.job = "done";
    say(`Analysed ${job.result.frames} frames: ${job.result.flagged} flagged.`);
    await openRender(uid, true);
  } catch (e) {
    document.body.dataset.job = "failed";
    say(`analysis failed: ${e.message}`, true);
  } finally {
    JOB_BUTTONS.forEach((b) => { $(b).disabled = false; });
  }
}

async function rerender() {
  const res = await runJob(`/api/renders/${state.uid}/rerender`, {}, "re-rendering");
  if (res) {
    say(res.frames.length ? `Re-rendered ${res.frames.length} frame(s).` : "Nothing to re-render.");
    await refreshMeta();
    drawTimeline();
    await goto(state.frame, true);
  }
}

async function retrainMask() {
  const res = await runJob(`/api/renders/${state.uid}/retrain-mask`, {}, "retraining the mask");
  if (res) {
    const n = res.segmenter.labelled_frames.length;
    say(`Segmenter retrained on ${n} frame(s) with polygons in ${Math.round(res.segmenter.seconds)} s; ` +
        `re-rendered ${res.frames.length} frame(s).`);
    await refreshMeta();
    drawTimeline();
    await goto(state.frame, true);
  }
}

async function exportVideo() {
  const res = await runJob(`/api/renders/${state.uid}/export`, {}, "exporting");
  if (res) { say(`Exported ${res.frames} frames to ${res.output} (watermarked, with content credentials).`); await refreshMeta(); }
}

// -- events -------------------------------------------------------------------------------------------
function nextFlagged(dir) {
  const list = state.flagged;
  if (!list.length) { say("No flagged frames in this render."); return; }
  const found = dir > 0 ? list.find((i) => i > state.frame) : [...list].reverse().find((i) => i < state.frame);
  goto(found !== undefined ? found : (dir > 0 ? list[0] : list[list.length - 1]));
}

function setView(v) {
  state.view = v;
  for (const r of document.querySelectorAll("input[name=view]")) r.checked = r.value === v;
  showImage();
}

document.addEventListener("keydown", (e) => {
  const tag = (e.target && e.target.tagName) || "";
  if (["INPUT", "SELECT", "TEXTAREA"].includes(tag) || !state.data || !state.data.frames) return;
  const k = e.key;
  if (k === "ArrowRight" || k === "k" || k === "K") goto(state.frame + 1);
  else if (k === "ArrowLeft" || k === "j" || k === "J") goto(state.frame - 1);
  else if (k === "n" || k === "N") nextFlagged(+1);
  else if (k === "p" || k === "P") nextFlagged(-1);
  else if (k >= "1" && k <= "4") setView(["original", "swapped", "mask", "diff"][Number(k) - 1]);
  else if (k === "+" || k === "=") zoomBy(1.25);
  else if (k === "-") zoomBy(0.8);
  else if (k === "0") { state.zoom = 0; applyZoom(); }
  else if (k === "Enter" && state.drawing) closePolygon();
  else if (k === "Escape") { state.drawing = null; closePolygon(); }
  else return;
  e.preventDefault();
});

function wire() {
  $("render-select").addEventListener("change", (e) => openRender(e.target.value));
  $("btn-analyse").addEventListener("click", analyse);
  $("btn-rerender").addEventListener("click", rerender);
  $("btn-export").addEventListener("click", exportVideo);
  $("btn-retrain-mask").addEventListener("click", retrainMask);
  $("prev").addEventListener("click", () => goto(state.frame - 1));
  $("next").addEventListener("click", () => goto(state.frame + 1));
  $("prev-flag").addEventListener("click", () => nextFlagged(-1));
  $("next-flag").addEventListener("click", () => nextFlagged(+1));
  $("frame-num").addEventListener("change", (e) => goto(parseInt(e.target.value, 10) || 0));
  for (const r of document.querySelectorAll("input[name=view]")) r.addEventListener("change", () => setView(r.value));
  $("zoom-in").addEventListener("click", () => zoomBy(1.25));
  $("zoom-out").addEventListener("click", () => zoomBy(0.8));
  $("zoom-fit").addEventListener("click", () => { state.zoom = 0; applyZoom(); });
  $("viewport").addEventListener("wheel", (e) => { if (e.ctrlKey) { e.preventDefault(); zoomBy(e.deltaY < 0 ? 1.15 : 0.87); } }, {passive: false});
  $("override-form").addEventListener("submit", applyOverride);
  $("poly-include").addEventListener("click", () => startPolygon("include"));
  $("poly-exclude").addEventListener("click", () => startPolygon("exclude"));
  $("poly-close").addEventListener("click", closePolygon);
  $("poly-save").addEventListener("click", () => savePolygons(false));
  $("poly-clear").addEventListener("click", () => savePolygons(true));
  $("overlay").addEventListener("click", (e) => {
    if (!state.drawing) return;
    const o = $("overlay"), r = o.getBoundingClientRect();
    state.drawing.points.push([(e.clientX - r.left) * o.width / r.width, (e.clientY - r.top) * o.height / r.height]);
    drawOverlay();
  });
  const tl = $("timeline"), hover = $("hover-thumb");
  tl.addEventListener("click", (e) => { if (state.data && state.data.frames) goto(frameAt(e)); });
  tl.addEventListener("mousemove", (e) => {
    if (!state.data || !state.data.analysed) return;
    const i = frameAt(e);
    spriteStyle(hover, i);
    hover.style.left = `${Math.min(e.clientX, window.innerWidth - 110)}px`;
    hover.hidden = false;
    hover.title = `frame ${i}`;
  });
  tl.addEventListener("mouseleave", () => { hover.hidden = true; });
  window.addEventListener("resize", () => { drawTimeline(); applyZoom(); });
}

async function main() {
  wire();
  try {
    state.schema = await api("/api/schema");
    await loadRenders();
  } catch (e) {
    say(e.message, true);
    markReady();
  }
}

main();
