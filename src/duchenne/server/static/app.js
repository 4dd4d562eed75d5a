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
    faceTable: $("face-table"), faceTableWrap: $("face-table-wrap"), viewToggle: $("view-toggle"),
    viewCards: $("view-cards"), viewTable: $("view-table"), videoNote: $("video-note"),
    videoCancel: $("video-cancel"),
  };
  let photoUrl = null;
  let videoUrl = null;
  let videoAnnotated = false; // videoUrl is the server's preview, boxes and numbers drawn on it
  let webcamStream = null;
  let pollTimer = null;
  let shown = 0; // the input on show (photo, video or webcam); answers for older ones are dropped
  let job = null; // the unfinished video job on show: { id (null while uploading), upload, name }

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

  function analyzeQuery(withBlendshapes = false, format = null) {
    const params = new URLSearchParams();
    const maxFaces = parseInt(el.maxFaces.value, 10);
    if (maxFaces > 0) params.set("max_faces", String(maxFaces));
    if (withBlendshapes && el.blendshapes && el.blendshapes.checked) {
      params.set("stages", "detect,landmarks,geometry,blendshapes,smile");
    }
    if (format) params.set("format", format);
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
    const mine = leaveInput();
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
      if (mine !== shown) return; // another input was chosen meanwhile: it is on show now
      // A file the server reads but this browser cannot show (TIFF in Chromium, for
      // example): show the server's drawing of it (format=jpeg, same size) instead.
      const rendered = !el.photo.naturalWidth;
      if (rendered && !(await showRendered(form, name, mine))) return;
      el.photoResult.hidden = false;
      showFaces(result);
      const n = result.faces.length;
      say((n ? `Found ${n} face${n > 1 ? "s" : ""} in ${name}.` : `No face found in ${name}.`) +
        (rendered ? " This browser cannot display the file itself: showing the server's drawing of it." : ""));
    } catch (e) {
      if (mine !== shown) return;
      el.photoResult.hidden = true; // not the previous photo's faces under this file's name
      say(`Could not analyse ${name}: ${e.message}`, true);
    }
  }

  // False when another input was chosen while the drawing was on its way (nothing shown).
  async function showRendered(form, name, mine) {
    const response = await fetch(`/v1/analyze${analyzeQuery(false, "jpeg")}`, { method: "POST", body: form, headers: headers() });
    if (!response.ok) throw new Error(`the server could not draw it (HTTP ${response.status})`);
    const drawing = await response.blob();
    if (mine !== shown) return false;
    if (photoUrl) URL.revokeObjectURL(photoUrl);
    photoUrl = URL.createObjectURL(drawing);
    const loaded = new Promise((resolve, reject) => { el.photo.onload = resolve; el.photo.onerror = reject; });
    el.photo.src = photoUrl;
    el.photo.alt = `The analysed image, as drawn by the server: ${name}`;
    try {
      await loaded;
    } catch (e) {
      throw new Error("this browser cannot display the image");
    }
    return mine === shown;
  }

  // Faces arrive in reading order (rows top to bottom, left to right) and are numbered
  // #0, #1 ... as in every duchenne output (JSON id, CSV face, drawings, enhance --face).
  // The photo carries only the numbers (sized from each face, inside the photo); the
  // details are in one card per face, or a sortable table when there are many faces.
  const TABLE_FROM = 7;
  let view = "auto";
  let lastResult = null;

  function showFaces(result, source = el.photo) {
    lastResult = result;
    const { width, height } = result.image;
    el.overlay.setAttribute("viewBox", `0 0 ${width} ${height}`);
    el.overlay.replaceChildren();
    result.faces.forEach((face) => el.overlay.appendChild(faceMark(face, width, height)));
    el.overlay.setAttribute("aria-label", `${result.faces.length} detected face(s), numbered in reading order`);
    const thumbs = result.faces.map((face) => thumbnail(source, face, width, height));
    const table = view === "table" || (view === "auto" && result.faces.length >= TABLE_FROM);
    el.viewCards.setAttribute("aria-pressed", String(!table));
    el.viewTable.setAttribute("aria-pressed", String(table));
    el.viewToggle.hidden = result.faces.length < 2;
    el.faces.replaceChildren();
    el.faceTable.replaceChildren();
    el.faces.hidden = table;
    el.faceTableWrap.hidden = !table;
    if (table) faceTable(result.faces, thumbs);
    else result.faces.forEach((face, i) => el.faces.appendChild(faceCard(face, thumbs[i])));
    const threshold = result.image.smile_threshold;
    el.caption.textContent = `${width}×${height} pixels · ${result.faces.length} face(s), numbered left to right, top to bottom` +
      (threshold !== undefined && threshold !== null ? ` · smiling = P(smile) ≥ ${threshold}` : "") +
      (result.image.models ? ` · models: ${Object.values(result.image.models).join(", ")}` : "");
  }

  const faceId = (face, i) => (face.id !== undefined ? face.id : i);

  // The box and its number: the number sits inside the box's top-left corner (so it never
  // leaves the photo) at a size taken from the face (it scales with the photo on screen).
  function faceMark(face, width, height) {
    const id = faceId(face);
    const cls = face.smiling === true ? "smiling" : "neutral";
    const x1 = Math.max(0, face.box.x1), y1 = Math.max(0, face.box.y1);
    const x2 = Math.min(width, face.box.x2), y2 = Math.min(height, face.box.y2);
    const g = svg("g", { class: `face ${cls}`, "data-face": id });
    svg("title", {}, g).textContent = `#${id}` + (face.smile_score !== undefined ? `: smile ${fmt(face.smile_score)}/10` : "");
    svg("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1, class: `face-box ${cls}` }, g);
    const size = Math.max(0.3 * (x2 - x1), 0.012 * Math.max(width, height), 8);
    const text = `#${id}`;
    const w = Math.min(size * (0.62 * text.length + 0.5), width), h = size * 1.3;
    const tx = Math.min(x1, width - w), ty = Math.min(y1, height - h);
    svg("rect", { x: tx, y: ty, width: w, height: h, rx: size * 0.2, class: `tag ${cls}` }, g);
    const label = svg("text", { x: tx + w / 2, y: ty + h * 0.78, "font-size": size, "text-anchor": "middle", class: "tag-text" }, g);
    label.textContent = text;
    g.addEventListener("mouseenter", () => highlight(id, false));
    g.addEventListener("mouseleave", () => highlight(null, false));
    g.addEventListener("click", () => highlight(id, true));
    return g;
  }

  // A small picture of the face (box grown by 20 %) for its card or table row, turned
  // upright when the face was found in a turned photo (face.rotation: degrees
  // counter-clockwise that make it upright), so an upside-down face is not shown upside down.
  function thumbnail(source, face, width, height) {
    const box = face.box;
    const canvas = document.createElement("canvas");
    canvas.className = "thumb";
    canvas.width = canvas.height = 96;
    const bw = box.x2 - box.x1, bh = box.y2 - box.y1;
    const side = 1.2 * Math.max(bw, bh);
    const sx = Math.max(0, (box.x1 + box.x2) / 2 - side / 2), sy = Math.max(0, (box.y1 + box.y2) / 2 - side / 2);
    const sw = Math.min(side, width - sx), sh = Math.min(side, height - sy);
    const scale = (source.naturalWidth || source.videoWidth || width) / width;
    try {
      const ctx = canvas.getContext("2d");
      if (face.rotation) { // about the centre; the canvas turns clockwise for positive angles
        ctx.translate(48, 48);
        ctx.rotate((-face.rotation * Math.PI) / 180);
        ctx.translate(-48, -48);
      }
      ctx.drawImage(source, sx * scale, sy * scale, sw * scale, sh * scale, 0, 0, 96, 96 * (sh / sw || 1));
    } catch (e) { /* a frame not ready yet: the thumbnail stays blank */ }
    return canvas;
  }

  // Hovering or tapping a face on the photo highlights its card or row (scrolled into
  // view on a tap), and hovering or focusing a card highlights its face on the photo.
  function highlight(id, scroll) {
    for (const node of document.querySelectorAll("[data-face].active")) node.classList.remove("active");
    if (id === null) return;
    for (const node of document.querySelectorAll(`[data-face="${id}"]`)) node.classList.add("active");
    if (scroll) {
      const target = document.querySelector(`#faces [data-face="${id}"], #face-table [data-face="${id}"]`);
      if (target) target.scrollIntoView({ block: "nearest", behavior: "smooth" });
    }
  }

  function linkToPhoto(node, id) {
    node.setAttribute("data-face", id);
    node.tabIndex = 0;
    node.addEventListener("mouseenter", () => highlight(id, false));
    node.addEventListener("mouseleave", () => highlight(null, false));
    node.addEventListener("focus", () => highlight(id, false));
    node.addEventListener("click", () => highlight(id, false));
  }

  function faceCard(face, thumb) {
    const id = faceId(face);
    const li = html("li", { className: "face-card" });
    linkToPhoto(li, id);
    thumb.setAttribute("role", "img");
    thumb.setAttribute("aria-label", `Face #${id}`);
    li.appendChild(thumb);
    const body = html("div", { className: "card-body" }, null, li);
    const h = html("h4", {}, null, body);
    html("span", {}, `#${id}`, h);
    const smiling = face.smiling === true;
    if (face.smile_score !== undefined) {
      html("span", { className: `score ${smiling ? "smiling" : "neutral"}` }, `${fmt(face.smile_score)}/10`, h);
      html("span", {}, smiling ? "smiling" : "not smiling", h);
    } else {
      html("span", { className: "score none" }, "no smile score", h);
    }
    const facts = [];
    if (face.smile !== undefined) facts.push(`smile probability ${pct(face.smile)}`);
    if (face.top_emotion) facts.push(`mostly ${face.top_emotion}`);
    if (face.au) facts.push(`AU6 ${fmt(face.au.au6, 2)} · AU12 ${fmt(face.au.au12, 2)}`);
    facts.push(`face detector ${pct(face.score)}`);
    if (face.rotation) facts.push(face.rotation === 180 ? "found upside down" : "found lying sideways");
    if (face.smile === undefined) facts.push("smile score needs a smile model");
    html("p", { className: "facts" }, facts.join(" · "), body);
    if (face.emotions) {
      const dl = html("dl", { className: "bars", "aria-label": `Emotions of face #${id}` }, null, body);
      for (const name of EMOTIONS) {
        const value = face.emotions[name] ?? 0;
        html("dt", {}, name, dl);
        const dd = html("dd", {}, null, dl);
        const bar = html("span", { className: "bar", "aria-hidden": "true" }, null, dd);
        html("span", {}, null, bar).style.width = pct(value);
        html("span", { className: "bar-value" }, pct(value), dd);
      }
    }
    // per-face extras (the blendshape bars) go below the emotions
    if (face.blendshapes) body.appendChild(blendshapeBars(face.blendshapes, id));
    return li;
  }

  // The compact view for many faces: one row each, sortable by any column.
  const COLUMNS = [
    ["#", (f) => faceId(f)],
    ["face", null],
    ["smile /10", (f) => f.smile_score],
    ["P(smile)", (f) => f.smile],
    ["emotion", (f) => f.top_emotion],
    ["AU6", (f) => (f.au ? f.au.au6 : undefined)],
    ["AU12", (f) => (f.au ? f.au.au12 : undefined)],
  ];
  let sortBy = { column: 0, descending: false };

  function faceTable(faces, thumbs) {
    const order = faces.map((f, i) => i);
    const key = COLUMNS[sortBy.column][1];
    if (key) {
      order.sort((a, b) => {
        const va = key(faces[a]), vb = key(faces[b]);
        const cmp = va === vb ? 0 : va === undefined ? 1 : vb === undefined ? -1 : va < vb ? -1 : 1;
        return sortBy.descending ? -cmp : cmp;
      });
    }
    const thead = html("thead", {}, null, el.faceTable);
    const tr = html("tr", {}, null, thead);
    COLUMNS.forEach(([name, getter], c) => {
      const th = html("th", { scope: "col" }, null, tr);
      if (!getter) { th.textContent = name; return; }
      const sorted = sortBy.column === c;
      if (sorted) th.setAttribute("aria-sort", sortBy.descending ? "descending" : "ascending");
      const button = html("button", { type: "button", className: "sort" }, `${name}${sorted ? (sortBy.descending ? " ▼" : " ▲") : ""}`, th);
      button.addEventListener("click", () => {
        sortBy = { column: c, descending: sorted ? !sortBy.descending : c >= 2 };
        el.faceTable.replaceChildren();
        faceTable(faces, thumbs);
      });
    });
    const tbody = html("tbody", {}, null, el.faceTable);
    for (const i of order) {
      const f = faces[i];
      const row = html("tr", {}, null, tbody);
      linkToPhoto(row, faceId(f));
      html("th", { scope: "row" }, `#${faceId(f)}`, row);
      const cell = html("td", {}, null, row);
      thumbs[i].setAttribute("role", "img");
      thumbs[i].setAttribute("aria-label", `Face #${faceId(f)}`);
      cell.appendChild(thumbs[i]);
      const smiling = f.smiling === true;
      html("td", { className: `num ${f.smile_score === undefined ? "" : smiling ? "smiling" : "neutral"}` }, f.smile_score === undefined ? "–" : fmt(f.smile_score), row);
      html("td", { className: "num" }, f.smile === undefined ? "–" : pct(f.smile), row);
      html("td", {}, f.top_emotion || "–", row);
      html("td", { className: "num" }, f.au ? fmt(f.au.au6, 2) : "–", row);
      html("td", { className: "num" }, f.au ? fmt(f.au.au12, 2) : "–", row);
    }
  }

  function setView(name) {
    view = name;
    if (lastResult) showFaces(lastResult, el.photo.hidden ? el.webcam : el.photo);
  }

  // The strongest coefficients as bars; all 52 behind a disclosure (compact per face).
  function blendshapeBars(shapes, id) {
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
    bars(names.slice(0, 6), box, `Strongest blendshapes of face #${id}`);
    const more = html("details", {}, null, box);
    html("summary", {}, `all ${Object.keys(shapes).length} coefficients`, more);
    bars(Object.keys(shapes), more, `All blendshapes of face #${id}`);
    return box;
  }

  // ------------------------------------------------------------------ video

  async function analyzeVideo(file) {
    stopWebcam();
    const mine = leaveInput();
    el.photoResult.hidden = true;
    el.videoResult.hidden = false;
    el.tracks.replaceChildren();
    el.downloads.hidden = true;
    el.videoProgress.removeAttribute("value");
    if (videoUrl) URL.revokeObjectURL(videoUrl);
    videoUrl = URL.createObjectURL(file);
    videoAnnotated = false;
    el.videoNote.hidden = true;
    el.videoLocal.hidden = false;
    el.videoLocal.onerror = () => {
      el.videoNote.hidden = false;
      el.videoNote.textContent = "This browser cannot play this file's codec; a playable preview with the analysis drawn on it appears here when the analysis is done.";
    };
    el.videoLocal.src = videoUrl;
    el.videoStatus.textContent = `Uploading ${file.name}…`;
    say(`Uploading ${file.name}…`);
    const upload = new AbortController();
    job = { id: null, upload, name: file.name };
    el.videoCancel.hidden = false;
    try {
      const every = Math.max(1, parseInt(el.every.value, 10) || 1);
      const form = new FormData();
      form.append("file", file, file.name);
      const created = await api(`/v1/videos?every=${every}`, { method: "POST", body: form, signal: upload.signal });
      if (mine !== shown) { // left while the answer was on its way: nobody waits for it
        deleteJob(created.id);
        return;
      }
      job = { id: created.id, upload: null, name: file.name };
      say(`Analysing ${file.name}…`);
      poll(created.id, file.name, mine);
    } catch (e) {
      if (mine !== shown) return; // cancelled, or left for another input
      jobEnded();
      el.videoStatus.textContent = "Upload refused";
      videoStopped();
      el.videoLocal.hidden = true; // the server found no video in it: nothing to play
      say(`Could not analyse ${file.name}: ${e.message}`, true);
    }
  }

  // Another input replaces the one on show: the answers still on their way for the old one
  // are dropped (a slow photo drew its faces over the next photo; a video's end took the
  // message back), and its unfinished video job is cancelled on the server, where it held
  // one of the few job places (DUCHENNE_MAX_JOBS) until it ended. Returns the new input's
  // number, which its own answers check.
  function leaveInput() {
    clearTimeout(pollTimer);
    shown += 1;
    if (job) {
      if (job.upload) job.upload.abort();
      if (job.id) deleteJob(job.id);
    }
    jobEnded();
    return shown;
  }

  // keepalive: the DELETE still goes out when it is sent as the page goes away (pagehide).
  function deleteJob(id) {
    fetch(`/v1/videos/${encodeURIComponent(id)}`, { method: "DELETE", headers: headers(), keepalive: true }).catch(() => {});
  }

  // The job on show finished (or was refused): there is nothing left to cancel.
  function jobEnded() {
    job = null;
    el.videoCancel.hidden = true;
  }

  function cancelVideo() {
    const name = job ? job.name : "the video";
    leaveInput();
    el.videoStatus.textContent = "Cancelled";
    videoStopped();
    say(`Cancelled ${name}.`);
    el.fileInput.focus(); // the button that had the focus is gone
  }

  function poll(id, name, mine) {
    const tick = async () => {
      try {
        const status = await api(`/v1/videos/${encodeURIComponent(id)}`);
        if (mine !== shown) return;
        if (status.progress !== null && status.progress !== undefined) el.videoProgress.value = status.progress;
        const total = status.frames_total ? ` of ${status.frames_total}` : "";
        el.videoStatus.textContent = `${status.status}: ${status.frames_done}${total} frames`;
        if (status.status === "done") {
          jobEnded();
          el.videoProgress.value = 1;
          say(`Finished ${name}.`);
          showVideo(status, mine);
          return;
        }
        if (status.status === "failed" || status.status === "cancelled") {
          jobEnded();
          videoStopped();
          say(`Video ${status.status}: ${status.error ? status.error.message : ""}`, true);
          return;
        }
        pollTimer = setTimeout(tick, 700);
      } catch (e) {
        if (mine !== shown) return;
        jobEnded();
        videoStopped();
        say(`Lost the job: ${e.message}`, true);
      }
    };
    tick();
  }

  // No analysis to wait for any more: the progress bar stops moving and the note does not
  // promise a preview that will never come.
  function videoStopped() {
    if (!el.videoProgress.hasAttribute("value")) el.videoProgress.value = 0;
    el.videoLocal.onerror = null;
    el.videoNote.hidden = true;
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

  // The server's preview (the analysed frames with boxes and numbers, H.264 MP4 or WebM)
  // plays in any browser whatever the upload's codec; it replaces the local file.
  async function usePreview(job, mine) {
    if (!job.preview_url) return;
    try {
      const response = await fetch(job.preview_url, { headers: headers() });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const preview = await response.blob();
      if (mine !== shown) return;
      if (videoUrl) URL.revokeObjectURL(videoUrl);
      videoUrl = URL.createObjectURL(preview);
      videoAnnotated = true;
      el.videoLocal.onerror = null;
      el.videoLocal.src = videoUrl;
      el.videoNote.hidden = false;
      el.videoNote.textContent = "Showing the analysed frames with each face's number drawn on them.";
    } catch (e) {
      if (mine === shown) say(`Preview unavailable: ${e.message}`, true);
    }
  }

  async function showVideo(job, mine) {
    const result = job.result || {};
    await usePreview(job, mine);
    let rows = [];
    try {
      rows = (await api(job.frames_url)).rows || [];
    } catch (e) {
      if (mine === shown) say(`Per-frame table unavailable: ${e.message}`, true);
    }
    if (mine !== shown) return;
    const { metric, label, byFace } = series(rows);
    const tracks = result.tracks || [];
    el.tracks.replaceChildren();
    if (!tracks.length) html("p", {}, "No face was found in this video.", el.tracks);
    if (result.complete === false) html("p", { className: "message error" }, `The video was cut short: ${result.error || "decoding stopped"}; results cover the part before.`, el.tracks);
    const seconds = job.video.seconds || (result.time_range ? result.time_range[1] : 0);
    for (const track of tracks) {
      const best = rows.find((r) => r.face === track.track_id && r.frame === track.best_frame);
      trackPanel(track, byFace.get(track.track_id) || [], metric, label, seconds, best, result.sampling);
    }
    el.downloads.hidden = false;
    el.downloadJson.onclick = (ev) => download(ev, `/v1/videos/${job.id}`, `${job.id}_smiles.json`);
    el.downloadCsv.onclick = (ev) => download(ev, `${job.frames_url}?format=csv`, `${job.id}.csv`);
  }

  // The panel goes on the page first: its chart is drawn for the width it gets there.
  function trackPanel(track, points, metric, label, seconds, bestRow, sampling) {
    const panel = html("article", { className: "track" }, null, el.tracks);
    html("h3", {}, `Face #${track.track_id}`, panel);
    const episodes = track.episodes || [];
    const facts = [`seen ${fmt(track.first_time)}–${fmt(track.last_time)} s`];
    if (track.mean_smile_score !== null && track.mean_smile_score !== undefined) facts.push(`mean smile ${fmt(track.mean_smile_score)}/10`);
    if (track.peak_smile_score !== null && track.peak_smile_score !== undefined) facts.push(`peak ${fmt(track.peak_smile_score)}/10`);
    facts.push(`${episodes.length} smile episode${episodes.length === 1 ? "" : "s"}`);
    if (track.duchenne_marker !== null && track.duchenne_marker !== undefined) facts.push(track.duchenne_marker ? "Duchenne marker seen" : "no Duchenne marker");
    else if (episodes.some((ep) => ep.onset)) facts.push("Duchenne marker not measurable"); // null with phases: no face at rest before the smile
    if (sampling) facts.push(`analysed ${sampling}`);
    html("p", { className: "summary" }, facts.join(" · "), panel);
    const body = html("div", { className: "track-body" }, null, panel);
    chart(body, points, episodes, track.best_time, seconds, track.track_id, metric, label);
    if (track.best_time !== null && track.best_time !== undefined) body.appendChild(bestFrame(track.best_time, bestRow, track.track_id));
    return panel;
  }

  // Fixed value axes by metric ([min, max, decimals]): the smile score always on 1-10 (a
  // neutral face, 1.0 all along, sits at the bottom), probabilities on 0-1; the landmark
  // signals on their own range.
  const AXES = { smile_score: [1, 10, 0], smile: [0, 1, 1] };

  // Drawn into `parent` with one unit per screen pixel (up to 600 units wide), so its 11 px
  // text stays 11 px on a phone (a fixed 600-unit drawing shrank it to 5 px there, and
  // one at least 300 units wide to 8.4 px in the 242 px a 320 px phone leaves it).
  function chart(parent, points, episodes, bestT, seconds, id, metric, label) {
    const root = svg("svg", { class: "chart", role: "img",
      "aria-label": `${label} over time for face #${id}; shaded: ${episodes.length} smile episode(s)` }, parent);
    const W = Math.round(Math.min(600, Math.max(160, root.getBoundingClientRect().width || 600)));
    const H = 180, L = 34, B = 22, T = 20, R = 8;
    const tMax = Math.max(seconds || 0, ...points.map((p) => p[0]), 0.001);
    const ys = points.map((p) => p[1]);
    const axis = AXES[metric];
    const yMin = axis ? axis[0] : Math.min(0, ...ys);
    const yMax = axis ? axis[1] : Math.max(1, ...ys);
    const digits = axis ? axis[2] : 1;
    const x = (t) => L + ((W - L - R) * t) / tMax;
    const y = (v) => T + (H - T - B) * (1 - (v - yMin) / (yMax - yMin || 1));
    root.setAttribute("viewBox", `0 0 ${W} ${H}`);
    for (const ep of episodes) {
      const rect = svg("rect", { x: x(ep.start_time), y: T, width: Math.max(2, x(ep.end_time) - x(ep.start_time)), height: H - T - B, class: "episode" }, root);
      svg("title", {}, rect).textContent = `smile ${fmt(ep.start_time, 2)}–${fmt(ep.end_time, 2)} s`;
    }
    svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }, root);
    svg("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }, root);
    svg("text", { x: 2, y: T + 10, class: "y-max" }, root).textContent = fmt(yMax, digits);
    svg("text", { x: 2, y: H - B, class: "y-min" }, root).textContent = fmt(yMin, digits);
    svg("text", { x: W - R, y: H - 6, "text-anchor": "end" }, root).textContent = `${fmt(tMax)} s`;
    svg("text", { x: L, y: H - 6 }, root).textContent = "0 s";
    svg("text", { x: W - R, y: T - 6, "text-anchor": "end" }, root).textContent = label; // above the plot
    if (points.length) {
      const d = points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
      svg("path", { d, class: "line" }, root);
    }
    if (bestT !== null && bestT !== undefined) svg("line", { x1: x(bestT), y1: T, x2: x(bestT), y2: H - B, class: "best" }, root);
    return root;
  }

  // Cut from the video on show: the server's preview already carries every face's box and
  // number (a box drawn here doubled it), so only a frame of the uploaded file itself (no
  // preview came) gets this face's box.
  function bestFrame(t, row, id) {
    const annotated = videoAnnotated;
    const box = html("figure", { className: "best-frame" });
    const canvas = html("canvas", { role: "img", "aria-label": `Smiliest frame of face #${id}, at ${fmt(t)} s` }, null, box);
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
      if (!annotated && row && row["box.x1"] !== undefined) {
        const [x1, y1, x2, y2] = [row["box.x1"], row["box.y1"], row["box.x2"], row["box.y2"]];
        ctx.strokeStyle = "#1e8a4c";
        ctx.lineWidth = 3;
        ctx.strokeRect(x1 * scale, y1 * scale, (x2 - x1) * scale, (y2 - y1) * scale);
      }
    }, { once: true });
    return box;
  }

  // Fetched (not a plain link) so the API key goes along; the saved file takes the name
  // the server gives it after the upload (party.mp4 -> party_smiles.json, party.csv).
  async function download(ev, path, fallback) {
    ev.preventDefault();
    try {
      const response = await fetch(path, { headers: headers() });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const name = dispositionName(response) || fallback;
      const url = URL.createObjectURL(await response.blob());
      const a = html("a", { href: url, download: name });
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (e) {
      say(`Download failed: ${e.message}`, true);
    }
  }

  // The file name in a Content-Disposition header (filename*=utf-8''... for a non-ASCII
  // one, as the server writes it), or null.
  function dispositionName(response) {
    const header = response.headers.get("content-disposition") || "";
    const encoded = /filename\*=utf-8''([^;]+)/i.exec(header);
    if (encoded) {
      try { return decodeURIComponent(encoded[1]); } catch (e) { return null; }
    }
    const plain = /filename="([^"]+)"/i.exec(header);
    return plain ? plain[1] : null;
  }

  // ------------------------------------------------------------------ webcam

  const WEBCAM_ON = "Webcam on: each frame is sent to the server for analysis.";

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
    leaveInput();
    el.videoResult.hidden = true;
    el.photoResult.hidden = false;
    el.photo.hidden = true;
    el.webcam.hidden = false;
    el.webcam.srcObject = webcamStream;
    await el.webcam.play();
    el.webcamButton.textContent = "Stop webcam";
    el.webcamButton.setAttribute("aria-pressed", "true");
    say(WEBCAM_ON);
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

  // The options the webcam's frames use. They can change while it runs, so each frame
  // checks them as the start does (optionValid): a value its field does not allow is shown
  // once, with its reason, and no frame leaves until it is fixed; the webcam stays on.
  // (Only the start checked them: "Most faces" 5000 typed meanwhile went out with every
  // frame and came back refused, -3 or 1.5 were quietly taken for "all" or 1.)
  const WEBCAM_OPTIONS = [el.maxFaces];

  async function webcamLoop() {
    const canvas = document.createElement("canvas");
    let reported = null; // the invalid option and value last shown, not repeated each frame
    while (webcamStream) {
      const w = el.webcam.videoWidth, h = el.webcam.videoHeight;
      if (!w || !h) { await new Promise((r) => setTimeout(r, 100)); continue; }
      const invalid = WEBCAM_OPTIONS.find((input) => !input.checkValidity());
      if (invalid) {
        const what = `${invalid.id}=${invalid.value}`;
        if (what !== reported) optionValid(invalid);
        reported = what;
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      if (reported) say(WEBCAM_ON);
      reported = null;
      canvas.width = w;
      canvas.height = h;
      canvas.getContext("2d").drawImage(el.webcam, 0, 0, w, h);
      const blob = await new Promise((r) => canvas.toBlob(r, "image/jpeg", 0.8));
      try {
        const result = await api(`/v1/analyze${analyzeQuery()}`, { method: "POST", body: blob, headers: { "Content-Type": "image/jpeg" } });
        if (webcamStream) showFaces(result, el.webcam);
      } catch (e) {
        say(`Webcam frame refused: ${e.message}`, true);
        await new Promise((r) => setTimeout(r, e.status === 503 || e.status === 429 ? 1000 : 300));
      }
    }
  }

  // ------------------------------------------------------------------ inputs

  // The option an input uses (photos: most faces; videos: every n-th frame), as its
  // field allows it (a whole number within min and max), checked before anything is
  // sent: a value the browser finds invalid is shown in the form, with its reason.
  // "Most faces" 5000 came back from the server as a 422 naming a query parameter, -3
  // or 1.5 were quietly taken for "all" or 1, and "every n-th frame" 5000 was refused
  // only after the whole video had been uploaded.
  function optionValid(input) {
    if (input.checkValidity()) return true;
    input.closest("details").open = true;
    input.reportValidity();
    const label = document.querySelector(`label[for="${input.id}"]`).textContent;
    say(`${label}: ${input.validationMessage}`, true);
    return false;
  }

  function handleFile(file) {
    if (!file) return;
    const video = (file.type || "").startsWith("video/") || /\.(mp4|mov|m4v|avi|webm|mkv)$/i.test(file.name);
    if (!optionValid(video ? el.every : el.maxFaces)) return;
    if (video) analyzeVideo(file);
    else analyzePhoto(file, file.name);
  }

  el.fileInput.addEventListener("change", () => { handleFile(el.fileInput.files[0]); el.fileInput.value = ""; });
  for (const name of ["dragenter", "dragover"]) {
    el.dropzone.addEventListener(name, (ev) => { ev.preventDefault(); el.dropzone.classList.add("dragging"); });
  }
  for (const name of ["dragleave", "drop"]) {
    el.dropzone.addEventListener(name, (ev) => { ev.preventDefault(); el.dropzone.classList.remove("dragging"); });
  }
  // A file dropped anywhere on the page is taken as if dropped on the drop zone (whose
  // drops bubble here): the browser would otherwise open the file in place of the
  // dashboard. Dragged text is left to the text fields.
  const carriesFiles = (ev) => Array.from(ev.dataTransfer?.types || []).includes("Files");
  window.addEventListener("dragover", (ev) => {
    if (!carriesFiles(ev)) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = "copy";
  });
  window.addEventListener("drop", (ev) => {
    if (!carriesFiles(ev)) return;
    ev.preventDefault();
    handleFile(ev.dataTransfer.files[0]);
  });
  el.webcamButton.addEventListener("click", () => {
    if (webcamStream) stopWebcam();
    else if (WEBCAM_OPTIONS.every(optionValid)) startWebcam();
  });
  el.demoButton.addEventListener("click", async () => {
    if (!optionValid(el.maxFaces)) return;
    try {
      const response = await fetch("/demo.jpg");
      analyzePhoto(await response.blob(), "astronaut.jpg");
    } catch (e) {
      say(`Demo photo unavailable: ${e.message}`, true);
    }
  });
  $("options-form").addEventListener("submit", (ev) => ev.preventDefault());
  el.videoCancel.addEventListener("click", cancelVideo);
  // Closing, reloading or leaving the page cancels the unfinished video job as "Cancel
  // analysis" does: nobody is left to read its result, and it held one of the few job
  // places (DUCHENNE_MAX_JOBS) until its end, so the next user waited for it. pagehide, not
  // unload or beforeunload: it fires on phones too and keeps the page fit for the
  // back/forward cache (back there, the page says "Cancelled"). The DELETE is a keepalive
  // fetch, which outlives the page and, unlike sendBeacon (POST only, no headers), carries
  // the method and the API key. A finished job is not on show as `job`: it is kept. A
  // video still uploading has no id to cancel: the page's end aborts its upload, and the
  // server makes no job for a client gone before the answer with its id.
  window.addEventListener("pagehide", () => { if (job) cancelVideo(); });
  el.viewCards.addEventListener("click", () => setView("cards"));
  el.viewTable.addEventListener("click", () => setView("table"));
  el.apiKey.value = sessionStorage.getItem("duchenne-key") || "";
  el.apiKey.addEventListener("change", () => {
    sessionStorage.setItem("duchenne-key", el.apiKey.value.trim());
    checkHealth();
  });
  checkHealth();
})();
