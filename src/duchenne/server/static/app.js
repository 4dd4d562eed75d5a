// duchenne dashboard: plain JavaScript, no build step, no third-party code.
// Photos go to POST /v1/analyze; videos to POST /v1/videos and are polled; the webcam
// sends one frame at a time (the next frame leaves when the previous answer arrived).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const EMOTIONS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"];
  const el = {
    health: $("health"), message: $("message"), fileInput: $("file-input"), dropzone: $("dropzone"),
    webcamButton: $("webcam-button"), demoButton: $("demo-button"), maxFaces: $("opt-max-faces"),
    blendshapes: $("opt-blendshapes"),
    every: $("opt-every"), apiKey: $("opt-key"), photoResult: $("photo-result"), photo: $("photo"),
    webcam: $("webcam"), overlay: $("overlay"), stage: $("stage"), caption: $("photo-caption"),
    faces: $("faces"), videoResult: $("video-result"), videoStatus: $("video-status"),
    videoProgress: $("video-progress"), videoLocal: $("video-local"), tracks: $("tracks"),
    downloads: $("downloads"), downloadJson: $("download-json"), downloadCsv: $("download-csv"),
  };
  let photoUrl = null;
  let videoUrl = null;
  let webcamStream = null;
  let pollTimer = null;

  // ------------------------------------------------------------------ helpers

  function say(text, isError = false) {
    el.message.textContent = text;
    el.message.classList.toggle("error", isError);
  }

  function headers(extra = {}) {
    const key = el.apiKey.value.trim();
    return key ? { ...extra, "X-API-Key": key } : extra;
  }

  async function api(path, options = {}) {
    const response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
    const type = response.headers.get("content-type") || "";
    const body = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) {
      const err = (body && body.error) || {};
      const error = new Error(err.message || `HTTP ${response.status}`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function analyzeQuery(withBlendshapes = false) {
    const params = new URLSearchParams();
    const maxFaces = parseInt(el.maxFaces.value, 10);
    if (maxFaces > 0) params.set("max_faces", String(maxFaces));
    if (withBlendshapes && el.blendshapes && el.blendshapes.checked) {
      params.set("stages", "detect,landmarks,geometry,blendshapes,smile");
    }
    const text = params.toString();
    return text ? `?${text}` : "";
  }

  const pct = (v) => `${Math.round(v * 100)}%`;
  const fmt = (v, digits = 1) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));

  function svg(name, attrs = {}, parent = null) {
    const node = document.createElementNS(SVG_NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function html(tag, attrs = {}, text = null, parent = null) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "className") node.className = v; else node.setAttribute(k, String(v));
    }
    if (text !== null) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  // ------------------------------------------------------------------ health

  async function checkHealth() {
    try {
      const h = await api("/healthz");
      let models = "";
      try {
        const m = await api("/v1/models");
        models = m.smile_available ? `smile model ${m.active.smile}` : "no smile model installed (faces and geometry only)";
      } catch (e) {
        models = e.status === 401 ? "enter the API key under Options" : "";
      }
      el.health.textContent = `Service ${h.status}, version ${h.version}${models ? ` · ${models}` : ""}`;
      el.health.classList.remove("bad");
    } catch (e) {
      el.health.textContent = `Service unreachable (${e.message})`;
      el.health.classList.add("bad");
    }
  }

  // ------------------------------------------------------------------ photos

  async function analyzePhoto(blob, name) {
    stopWebcam();
    el.videoResult.hidden = true;
    say(`Analysing ${name}…`);
    if (photoUrl) URL.revokeObjectURL(photoUrl);
    photoUrl = URL.createObjectURL(blob);
    el.webcam.hidden = true;
    el.photo.hidden = false;
    const loaded = new Promise((resolve) => { el.photo.onload = resolve; el.photo.onerror = resolve; });
    el.photo.src = photoUrl;
    el.photo.alt = `The analysed image: ${name}`;
    try {
      const form = new FormData();
      form.append("file", blob, name);
      const result = await api(`/v1/analyze${analyzeQuery(true)}`, { method: "POST", body: form });
      await loaded;
      el.photoResult.hidden = false;
      showFaces(result);
      const n = result.faces.length;
      say(n ? `Found ${n} face${n > 1 ? "s" : ""} in ${name}.` : `No face found in ${name}.`);
    } catch (e) {
      say(`Could not analyse ${name}: ${e.message}`, true);
    }
  }

  function showFaces(result) {
    const { width, height } = result.image;
    el.overlay.setAttribute("viewBox", `0 0 ${width} ${height}`);
    el.overlay.replaceChildren();
    el.stage.querySelectorAll(".badge").forEach((b) => b.remove());
    el.faces.replaceChildren();
    result.faces.forEach((face, i) => {
      const smiling = face.smiling === true;
      const cls = smiling ? "smiling" : "neutral";
      const { x1, y1, x2, y2 } = face.box;
      const rect = svg("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1, class: `face-box ${cls}` }, el.overlay);
      svg("title", {}, rect).textContent = `Face ${i + 1}`;
      const badge = html("span", { className: `badge ${cls}`, "aria-hidden": "true" }, badgeText(face, i), el.stage);
      badge.style.left = `${(100 * Math.max(0, x1)) / width}%`;
      badge.style.top = `${(100 * Math.max(0, y1)) / height}%`;
      el.faces.appendChild(faceCard(face, i));
    });
    el.overlay.setAttribute("aria-label", `${result.faces.length} detected face(s)`);
    el.caption.textContent = `${width}×${height} pixels · ${result.faces.length} face(s)` +
      (result.image.models ? ` · models: ${Object.values(result.image.models).join(", ")}` : "");
  }

  function badgeText(face, i) {
    if (face.smile_score !== undefined && face.smile_score !== null) return `#${i + 1} ${fmt(face.smile_score)}/10`;
    return `#${i + 1}`;
  }

  function faceCard(face, i) {
    const li = html("li", { className: "face-card" });
    const h = html("h4", {}, null, li);
    html("span", {}, `Face ${i + 1}`, h);
    const smiling = face.smiling === true;
    if (face.smile_score !== undefined) {
      html("span", { className: `score ${smiling ? "smiling" : "neutral"}` }, `${fmt(face.smile_score)}/10`, h);
      html("span", {}, smiling ? "smiling" : "not smiling", h);
    } else {
      html("span", { className: "score none" }, "no smile score", h);
    }
    const facts = [`detector ${pct(face.score)}`];
    if (face.smile !== undefined) facts.push(`smile probability ${pct(face.smile)}`);
    if (face.top_emotion) facts.push(`mostly ${face.top_emotion}`);
    if (face.geometry && face.geometry.lip_corner_elevation !== undefined) {
      facts.push(`lip-corner lift ${fmt(face.geometry.lip_corner_elevation, 2)}`);
    }
    if (face.smile === undefined) facts.push("smile score needs a smile model");
    html("p", { className: "facts" }, facts.join(" · "), li);
    if (face.emotions) {
      const dl = html("dl", { className: "bars", "aria-label": `Emotions of face ${i + 1}` }, null, li);
      for (const name of EMOTIONS) {
        const value = face.emotions[name] ?? 0;
        html("dt", {}, name, dl);
        const dd = html("dd", {}, null, dl);
        const bar = html("span", { className: "bar", "aria-hidden": "true" }, null, dd);
        html("span", {}, null, bar).style.width = pct(value);
        html("span", { className: "bar-value" }, pct(value), dd);
      }
    }
    if (face.blendshapes) li.appendChild(blendshapeBars(face.blendshapes, i));
    return li;
  }

  // The strongest coefficients as bars; all 52 behind a disclosure (compact per face).
  function blendshapeBars(shapes, i) {
    const names = Object.keys(shapes).filter((n) => n !== "_neutral");
    names.sort((a, b) => shapes[b] - shapes[a]);
    const box = html("div", { className: "blendshapes" });
    html("p", { className: "facts" }, "MediaPipe blendshapes (strongest)", box);
    const bars = (list, parent, label) => {
      const dl = html("dl", { className: "bars compact", "aria-label": label }, null, parent);
      for (const name of list) {
        html("dt", {}, name, dl);
        const dd = html("dd", {}, null, dl);
        const bar = html("span", { className: "bar", "aria-hidden": "true" }, null, dd);
        html("span", {}, null, bar).style.width = pct(shapes[name]);
        html("span", { className: "bar-value" }, fmt(shapes[name], 2), dd);
      }
    };
    bars(names.slice(0, 6), box, `Strongest blendshapes of face ${i + 1}`);
    const more = html("details", {}, null, box);
    html("summary", {}, `all ${Object.keys(shapes).length} coefficients`, more);
    bars(Object.keys(shapes), more, `All blendshapes of face ${i + 1}`);
    return box;
  }

  // ------------------------------------------------------------------ video

  async function analyzeVideo(file) {
    stopWebcam();
    el.photoResult.hidden = true;
    el.videoResult.hidden = false;
    el.tracks.replaceChildren();
    el.downloads.hidden = true;
    el.videoProgress.removeAttribute("value");
    if (videoUrl) URL.revokeObjectURL(videoUrl);
    videoUrl = URL.createObjectURL(file);
    el.videoLocal.src = videoUrl;
    el.videoStatus.textContent = `Uploading ${file.name}…`;
    say(`Uploading ${file.name}…`);
    try {
      const every = Math.max(1, parseInt(el.every.value, 10) || 1);
      const form = new FormData();
      form.append("file", file, file.name);
      const job = await api(`/v1/videos?every=${every}`, { method: "POST", body: form });
      say(`Analysing ${file.name}…`);
      poll(job.id, file.name);
    } catch (e) {
      el.videoStatus.textContent = "Upload refused";
      say(`Could not analyse ${file.name}: ${e.message}`, true);
    }
  }

  function poll(id, name) {
    clearTimeout(pollTimer);
    const tick = async () => {
      try {
        const job = await api(`/v1/videos/${encodeURIComponent(id)}`);
        if (job.progress !== null && job.progress !== undefined) el.videoProgress.value = job.progress;
        const total = job.frames_total ? ` of ${job.frames_total}` : "";
        el.videoStatus.textContent = `${job.status}: ${job.frames_done}${total} frames`;
        if (job.status === "done") {
          el.videoProgress.value = 1;
          say(`Finished ${name}.`);
          showVideo(job);
          return;
        }
        if (job.status === "failed" || job.status === "cancelled") {
          say(`Video ${job.status}: ${job.error ? job.error.message : ""}`, true);
          return;
        }
        pollTimer = setTimeout(tick, 700);
      } catch (e) {
        say(`Lost the job: ${e.message}`, true);
      }
    };
    tick();
  }

  // A finished job has result.tracks (one per face: episodes, best frame) and a per-frame
  // table at job.frames_url (rows: time, frame, face, box.*, smile_score, dynamics.d_lip...).
  // What the timeline plots: the smile score when a smile model ran, else a landmark signal.
  const METRICS = [
    ["smile_score", "smile score (1–10)"],
    ["smile", "smile probability"],
    ["dynamics.d_lip", "lip-corner pull (D_lip)"],
    ["geometry.lip_corner_elevation", "lip-corner elevation"],
  ];

  function series(rows) {
    const byFace = new Map();
    const has = (key) => rows.some((r) => r[key] !== undefined && r[key] !== null);
    const [metric, label] = METRICS.find(([key]) => has(key)) || METRICS[0];
    for (const row of rows) {
      const y = row[metric];
      if (y === undefined || y === null || !Number.isFinite(Number(y))) continue;
      if (!byFace.has(row.face)) byFace.set(row.face, []);
      byFace.get(row.face).push([Number(row.time), Number(y)]);
    }
    return { metric, label, byFace };
  }

  async function showVideo(job) {
    const result = job.result || {};
    let rows = [];
    try {
      rows = (await api(job.frames_url)).rows || [];
    } catch (e) {
      say(`Per-frame table unavailable: ${e.message}`, true);
    }
    const { label, byFace } = series(rows);
    const tracks = result.tracks || [];
    el.tracks.replaceChildren();
    if (!tracks.length) html("p", {}, "No face was found in this video.", el.tracks);
    if (result.complete === false) html("p", { className: "message error" }, `The video was cut short: ${result.error || "decoding stopped"}; results cover the part before.`, el.tracks);
    const seconds = job.video.seconds || (result.time_range ? result.time_range[1] : 0);
    for (const track of tracks) {
      const best = rows.find((r) => r.face === track.track_id && r.frame === track.best_frame);
      el.tracks.appendChild(trackPanel(track, byFace.get(track.track_id) || [], label, seconds, best));
    }
    el.downloads.hidden = false;
    el.downloadJson.onclick = (ev) => download(ev, `/v1/videos/${job.id}`, `${job.id}.json`);
    el.downloadCsv.onclick = (ev) => download(ev, `${job.frames_url}?format=csv`, `${job.id}.csv`);
  }

  function trackPanel(track, points, label, seconds, bestRow) {
    const panel = html("article", { className: "track" });
    html("h3", {}, `Face ${track.track_id + 1}`, panel);
    const episodes = track.episodes || [];
    const facts = [`seen ${fmt(track.first_time)}–${fmt(track.last_time)} s`];
    if (track.mean_smile_score !== null && track.mean_smile_score !== undefined) facts.push(`mean smile ${fmt(track.mean_smile_score)}/10`);
    if (track.peak_smile_score !== null && track.peak_smile_score !== undefined) facts.push(`peak ${fmt(track.peak_smile_score)}/10`);
    facts.push(`${episodes.length} smile episode${episodes.length === 1 ? "" : "s"}`);
    if (track.duchenne_marker !== null && track.duchenne_marker !== undefined) facts.push(track.duchenne_marker ? "Duchenne marker seen" : "no Duchenne marker");
    html("p", { className: "summary" }, facts.join(" · "), panel);
    const body = html("div", { className: "track-body" }, null, panel);
    body.appendChild(chart(points, episodes, track.best_time, seconds, track.track_id, label));
    if (track.best_time !== null && track.best_time !== undefined) body.appendChild(bestFrame(track.best_time, bestRow, track.track_id));
    return panel;
  }

  function chart(points, episodes, bestT, seconds, id, label) {
    const W = 600, H = 180, L = 34, B = 22, T = 8, R = 8;
    const tMax = Math.max(seconds || 0, ...points.map((p) => p[0]), 0.001);
    const ys = points.map((p) => p[1]);
    const scoreScale = ys.length && Math.max(...ys) > 1.5;
    const yMin = scoreScale ? 1 : Math.min(0, ...ys);
    const yMax = scoreScale ? 10 : Math.max(1, ...ys);
    const x = (t) => L + ((W - L - R) * t) / tMax;
    const y = (v) => T + (H - T - B) * (1 - (v - yMin) / (yMax - yMin || 1));
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img",
      "aria-label": `${label} over time for face ${id + 1}; shaded: ${episodes.length} smile episode(s)` });
    for (const ep of episodes) {
      const rect = svg("rect", { x: x(ep.start_time), y: T, width: Math.max(2, x(ep.end_time) - x(ep.start_time)), height: H - T - B, class: "episode" }, root);
      svg("title", {}, rect).textContent = `smile ${fmt(ep.start_time, 2)}–${fmt(ep.end_time, 2)} s`;
    }
    svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }, root);
    svg("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }, root);
    svg("text", { x: 2, y: T + 10 }, root).textContent = fmt(yMax, scoreScale ? 0 : 1);
    svg("text", { x: 2, y: H - B }, root).textContent = fmt(yMin, scoreScale ? 0 : 1);
    svg("text", { x: W - R - 40, y: H - 6 }, root).textContent = `${fmt(tMax)} s`;
    svg("text", { x: L, y: H - 6 }, root).textContent = "0 s";
    svg("text", { x: W - R, y: T + 10, "text-anchor": "end" }, root).textContent = label;
    if (points.length) {
      const d = points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
      svg("path", { d, class: "line" }, root);
    }
    if (bestT !== null && bestT !== undefined) svg("line", { x1: x(bestT), y1: T, x2: x(bestT), y2: H - B, class: "best" }, root);
    return root;
  }

  function bestFrame(t, row, id) {
    const box = html("figure", { className: "best-frame" });
    const canvas = html("canvas", { role: "img", "aria-label": `Smiliest frame of face ${id + 1}, at ${fmt(t)} s` }, null, box);
    html("p", {}, `Smiliest frame, at ${fmt(t, 2)} s`, box);
    const video = document.createElement("video");
    video.muted = true;
    video.preload = "auto";
    video.src = videoUrl;
    video.addEventListener("loadeddata", () => { video.currentTime = Math.max(0, t); }, { once: true });
    video.addEventListener("seeked", () => {
      const scale = Math.min(1, 480 / (video.videoWidth || 480));
      canvas.width = Math.round(video.videoWidth * scale);
      canvas.height = Math.round(video.videoHeight * scale);
      const ctx = canvas.getContext("2d");
      ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
      if (row && row["box.x1"] !== undefined) {
        const [x1, y1, x2, y2] = [row["box.x1"], row["box.y1"], row["box.x2"], row["box.y2"]];
        ctx.strokeStyle = "#1e8a4c";
        ctx.lineWidth = 3;
        ctx.strokeRect(x1 * scale, y1 * scale, (x2 - x1) * scale, (y2 - y1) * scale);
      }
    }, { once: true });
    return box;
  }

  async function download(ev, path, name) {
    ev.preventDefault();
    try {
      const response = await fetch(path, { headers: headers() });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const url = URL.createObjectURL(await response.blob());
      const a = html("a", { href: url, download: name });
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (e) {
      say(`Download failed: ${e.message}`, true);
    }
  }

  // ------------------------------------------------------------------ webcam

  async function startWebcam() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      say("This browser cannot use a camera here (it needs https or localhost).", true);
      return;
    }
    try {
      webcamStream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, facingMode: "user" }, audio: false });
    } catch (e) {
      say(`Camera not available: ${e.message}`, true);
      return;
    }
    el.videoResult.hidden = true;
    el.photoResult.hidden = false;
    el.photo.hidden = true;
    el.webcam.hidden = false;
    el.webcam.srcObject = webcamStream;
    await el.webcam.play();
    el.webcamButton.textContent = "Stop webcam";
    el.webcamButton.setAttribute("aria-pressed", "true");
    say("Webcam on: each frame is sent to the server for analysis.");
    webcamLoop();
  }

  function stopWebcam() {
    if (!webcamStream) return;
    webcamStream.getTracks().forEach((t) => t.stop());
    webcamStream = null;
    el.webcam.srcObject = null;
    el.webcamButton.textContent = "Start webcam";
    el.webcamButton.setAttribute("aria-pressed", "false");
  }

  async function webcamLoop() {
    const canvas = document.createElement("canvas");
    while (webcamStream) {
      const w = el.webcam.videoWidth, h = el.webcam.videoHeight;
      if (!w || !h) { await new Promise((r) => setTimeout(r, 100)); continue; }
      canvas.width = w;
      canvas.height = h;
      canvas.getContext("2d").drawImage(el.webcam, 0, 0, w, h);
      const blob = await new Promise((r) => canvas.toBlob(r, "image/jpeg", 0.8));
      try {
        const result = await api(`/v1/analyze${analyzeQuery()}`, { method: "POST", body: blob, headers: { "Content-Type": "image/jpeg" } });
        if (webcamStream) showFaces(result);
      } catch (e) {
        say(`Webcam frame refused: ${e.message}`, true);
        await new Promise((r) => setTimeout(r, e.status === 503 || e.status === 429 ? 1000 : 300));
      }
    }
  }

  // ------------------------------------------------------------------ inputs

  function handleFile(file) {
    if (!file) return;
    if ((file.type || "").startsWith("video/") || /\.(mp4|mov|m4v|avi|webm|mkv)$/i.test(file.name)) analyzeVideo(file);
    else analyzePhoto(file, file.name);
  }

  el.fileInput.addEventListener("change", () => { handleFile(el.fileInput.files[0]); el.fileInput.value = ""; });
  for (const name of ["dragenter", "dragover"]) {
    el.dropzone.addEventListener(name, (ev) => { ev.preventDefault(); el.dropzone.classList.add("dragging"); });
  }
  for (const name of ["dragleave", "drop"]) {
    el.dropzone.addEventListener(name, (ev) => { ev.preventDefault(); el.dropzone.classList.remove("dragging"); });
  }
  el.dropzone.addEventListener("drop", (ev) => handleFile(ev.dataTransfer.files[0]));
  el.webcamButton.addEventListener("click", () => (webcamStream ? stopWebcam() : startWebcam()));
  el.demoButton.addEventListener("click", async () => {
    try {
      const response = await fetch("/demo.jpg");
      analyzePhoto(await response.blob(), "astronaut.jpg");
    } catch (e) {
      say(`Demo photo unavailable: ${e.message}`, true);
    }
  });
  $("options-form").addEventListener("submit", (ev) => ev.preventDefault());
  el.apiKey.value = sessionStorage.getItem("duchenne-key") || "";
  el.apiKey.addEventListener("change", () => {
    sessionStorage.setItem("duchenne-key", el.apiKey.value.trim());
    checkHealth();
  });
  checkHealth();
})();
