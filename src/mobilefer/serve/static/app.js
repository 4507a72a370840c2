// mobilefer live demo: webcam frames -> WebSocket -> faces drawn over the video.
// One frame is in flight at a time: the next is sent only when the last result is back.
"use strict";

let COLORS = {};  // one colour per label, from the server (mobilefer.labels.PALETTE)
const HISTORY_SECONDS = 30;
const $ = (id) => document.getElementById(id);
let labels = [];
const history = new Map();  // track id -> [{t, scores}]

// ---------------------------------------------------------------- tabs
document.querySelectorAll("nav button").forEach((b) => b.addEventListener("click", () => {
  document.querySelectorAll("nav button, .tab").forEach((e) => e.classList.remove("active"));
  b.classList.add("active");
  $(b.dataset.tab).classList.add("active");
  if (b.dataset.tab === "timeline") drawTimeline();
}));

function showError(box, message) {
  box.textContent = message;
  box.hidden = !message;
}

// An element with a class and children (strings become text, never markup: names and labels
// come from uploads and model files).
function el(tag, className = "", ...children) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  e.append(...children);
  return e;
}

// ---------------------------------------------------------------- live
async function startLive() {
  const info = await (await fetch("/api/info")).json();
  labels = info.labels;
  COLORS = info.palette || {};
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480}, audio: false});
  } catch (e) {
    showError($("live-error"), "No webcam: " + e.message + ". The Photos tab still works.");
    $("status").textContent = "no webcam";
    return;
  }
  const video = $("video");
  video.srcObject = stream;
  await video.play();
  const grab = document.createElement("canvas");
  const proto = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(proto + location.host + "/ws/live");
  ws.binaryType = "arraybuffer";
  let sentAt = 0, frames = 0, started = performance.now();

  function send() {
    if (ws.readyState !== WebSocket.OPEN || !video.videoWidth) return setTimeout(send, 50);
    grab.width = video.videoWidth;
    grab.height = video.videoHeight;
    grab.getContext("2d").drawImage(video, 0, 0);
    grab.toBlob((blob) => { sentAt = performance.now(); ws.send(blob); }, "image/jpeg", 0.8);
  }
  ws.onopen = () => { $("status").textContent = "live · " + info.detector; send(); };
  ws.onclose = () => { $("status").textContent = "disconnected"; };
  $("live-report").onclick = () => ws.readyState === WebSocket.OPEN && ws.send("report");
  $("live-calibrate").onclick = () => ws.readyState === WebSocket.OPEN && ws.send("calibrate");
  ws.onmessage = (event) => {
    const reply = JSON.parse(event.data);
    showCalibration(reply);
    if (reply.frame === undefined && reply.calibration) return;  // the answer to "calibrate"
    if (reply.report !== undefined || (reply.error && reply.frame === undefined)) {
      if (reply.error) return showError($("live-error"), reply.error);
      const a = document.createElement("a");
      a.href = URL.createObjectURL(new Blob([reply.report], {type: "text/html"}));
      a.download = "mobilefer_session_report.html";
      a.click();
      return;
    }
    const latency = performance.now() - sentAt;
    frames += 1;
    $("fps").textContent = (frames / ((performance.now() - started) / 1000)).toFixed(1);
    $("latency").textContent = latency.toFixed(0);
    if (reply.error && reply.calibration !== "failed") showError($("live-error"), reply.error);
    else {
      showError($("live-error"), "");
      drawFaces(reply);
      remember(reply.faces);
    }
    send();
  };
}

function drawFaces(reply) {
  const canvas = $("overlay");
  canvas.width = reply.width;
  canvas.height = reply.height;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  g.lineWidth = Math.max(2, canvas.width / 240);
  g.font = `${Math.max(14, canvas.width / 32)}px system-ui, sans-serif`;
  $("facecount").textContent = reply.faces.length;
  for (const f of reply.faces) {
    const [x, y, w, h] = f.box;
    const color = f.label ? COLORS[f.label] || "#00ff00" : "#a0a0a0";  // gray: turned away
    g.strokeStyle = color;
    g.strokeRect(x, y, w, h);
    const text = describe(f);
    const tw = g.measureText(text).width + 8, th = parseInt(g.font) + 6;
    g.fillStyle = color;
    g.fillRect(x, Math.max(0, y - th), tw, th);
    g.fillStyle = "#000";
    g.fillText(text, x + 4, Math.max(th - 6, y - 6));
  }
  $("face-list").replaceChildren(...reply.faces.map((f) => {
    const li = document.createElement("li");
    li.dataset.label = f.label;
    li.textContent = `face ${f.track_id}: ${describe(f)}${presentUnits(f)}`;
    return li;
  }));
  drawBars(reply.faces.find((f) => f.scores));
}

// where the session's calibration stands: collecting the neutral face, on, or failed
function showCalibration(reply) {
  const state = $("calibration");
  if (reply.calibration === "collecting") {
    state.textContent = "calibrating… hold a neutral face";
    state.dataset.state = "collecting";
  } else if (reply.calibration === "on") {
    state.textContent = `calibrated on ${reply.calibrated_frames} frames: bars and timeline ` +
      "show this face against its own neutral";
    state.dataset.state = "on";
  } else if (reply.calibration === "failed") {
    state.textContent = "not calibrated: " + reply.error;
    state.dataset.state = "failed";
  }
}

// with --mesh, the action units a face shows (0.5 and above), e.g. " · AU6 AU12"
function presentUnits(f) {
  if (!f.action_units) return "";
  const on = Object.entries(f.action_units).filter(([, v]) => v >= 0.5).map(([k]) => k);
  return on.length ? ` · ${on.join(" ")}` : " · no unit present";
}

// a face's label and score, or that it was turned beyond --max-yaw (not scored)
function describe(f) {
  return f.label ? `${f.label} ${(100 * f.score).toFixed(0)}%` : "turned away";
}

function drawBars(face) {
  const bars = $("bars");
  bars.className = "bars";
  bars.replaceChildren(...labels.map((name) => {
    const p = face ? face.scores[name] : 0;
    const fill = el("span", "fill");
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    fill.style.background = COLORS[name] || "#0a84ff";
    return el("div", "bar", el("span", "", name), el("span", "", fill),
      el("span", "", `${(100 * p).toFixed(0)}%`));
  }));
}

// ---------------------------------------------------------------- timeline
function remember(faces) {
  const now = performance.now() / 1000;
  for (const f of faces) {
    if (!f.scores) continue;  // turned away: not scored
    if (!history.has(f.track_id)) history.set(f.track_id, []);
    history.get(f.track_id).push({t: now, scores: f.scores});
  }
  for (const [id, points] of history) {
    while (points.length && points[0].t < now - HISTORY_SECONDS) points.shift();
    if (!points.length) history.delete(id);
  }
  if ($("timeline").classList.contains("active")) drawTimeline();
}

function drawTimeline() {
  const charts = $("charts");
  const now = performance.now() / 1000;
  charts.replaceChildren(...[...history].map(([id, points]) => {
    const box = document.createElement("div");
    box.className = "chart";
    const canvas = document.createElement("canvas");
    canvas.width = 800;
    canvas.height = 180;
    const g = canvas.getContext("2d");
    for (const name of labels) {
      g.strokeStyle = COLORS[name] || "#888";
      g.lineWidth = 2;
      g.beginPath();
      points.forEach((p, i) => {
        const x = canvas.width * (1 - (now - p.t) / HISTORY_SECONDS);
        const y = canvas.height * (1 - p.scores[name]);
        i ? g.lineTo(x, y) : g.moveTo(x, y);
      });
      g.stroke();
    }
    const legend = el("div", "legend", el("strong", "", `face ${id}`), " ",
      ...labels.map((n) => {
        const key = el("span", "", `■ ${n}`);
        key.style.color = COLORS[n] || "#888";
        return key;
      }));
    box.append(legend, canvas);
    return box;
  }));
  if (!history.size) charts.textContent = "No face tracked yet.";
}

// ---------------------------------------------------------------- photos
async function upload(file) {
  const response = await fetch("/api/photo?name=" + encodeURIComponent(file.name), {
    method: "POST", body: file, headers: {"Content-Type": file.type || "application/octet-stream"},
  });
  let reply;
  try { reply = await response.json(); } catch { reply = {error: `${file.name}: server error ${response.status}`}; }
  if (!response.ok || reply.error) {
    showError($("photo-error"), reply.error || `${file.name}: failed (${response.status})`);
    return;
  }
  const item = document.createElement("div");
  item.className = "result";
  const img = document.createElement("img");
  img.src = reply.annotated;
  img.alt = reply.name;
  const { annotated, ...data } = reply;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], {type: "application/json"}));
  link.download = reply.name.replace(/\.[^.]*$/, "") + ".json";
  link.textContent = "download JSON";
  const faces = reply.faces.filter((f) => f.label);
  const summary = el("div", "", el("strong", "", reply.name), el("br"),
    `${faces.length} face(s): ` +
    (faces.map((f) => `${f.label} ${(100 * f.score).toFixed(0)}%`).join(", ") || "none"),
    el("br"), link);
  item.append(img, summary);
  $("results").prepend(item);
}

async function uploadAll(files) {
  showError($("photo-error"), "");
  for (const file of files) await upload(file);
}

$("files").addEventListener("change", (e) => uploadAll(e.target.files));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); uploadAll(e.dataTransfer.files); });

startLive();

// ---------------------------------------------------------------- clips
$("clip-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  showError($("clip-error"), "");
  $("clip-report").hidden = true;
  $("clip-download").hidden = true;
  const started = performance.now();
  const tick = setInterval(() => {
    $("clip-status").textContent = `analysing ${file.name}… ${((performance.now() - started) / 1000).toFixed(0)} s`;
  }, 500);
  try {
    let query = "/api/clip?name=" + encodeURIComponent(file.name);
    const events = $("clip-events").files[0];
    if (events) query += "&events=" + encodeURIComponent(await events.text());
    const baseline = $("clip-baseline").value.trim();
    if (baseline) query += "&baseline=" + encodeURIComponent(baseline);
    const response = await fetch(query, {
      method: "POST", body: file, headers: {"content-type": file.type || "application/octet-stream"},
    });
    const reply = await response.json().catch(() => ({}));
    if (!response.ok || reply.error) {
      showError($("clip-error"), reply.error || `${file.name}: failed (${response.status})`);
      $("clip-status").textContent = "";
      return;
    }
    $("clip-status").textContent = `${reply.name}: ${reply.frames} frames, ${reply.tracks} face track(s)`;
    const url = URL.createObjectURL(new Blob([reply.html], {type: "text/html"}));
    // The report is shown in a sandboxed frame of its own origin-less page (/report-frame),
    // which writes the HTML it is sent: its scripts (plotly) never run in this page's origin.
    const frame = $("clip-report");
    frame.onload = () => frame.contentWindow.postMessage(reply.html, "*");
    frame.src = "/report-frame";
    frame.hidden = false;
    $("clip-download").href = url;
    $("clip-download").download = file.name.replace(/\.[^.]*$/, "") + "_report.html";
    $("clip-download").hidden = false;
  } finally {
    clearInterval(tick);
  }
});
