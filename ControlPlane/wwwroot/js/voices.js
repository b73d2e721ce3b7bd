// The Voices panel: the library with its enrolment reports, and enrolment by recording or by files.
import { api } from "./api.js";
import { el, formatSeconds, confirmDialog } from "./ui.js";
import { catalog, subscribe, reload, allLanguages } from "./catalog.js";

const $ = id => document.getElementById(id);

// Phonetically balanced sentences (the Harvard sentences, IEEE 1969): every common English sound,
// in about fifteen to twenty seconds of reading.
const SCRIPTS = [
  "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. It's easy to tell the depth of a well. These days a chicken leg is a rare dish. Rice is often served in round bowls. The juice of lemons makes fine punch.",
  "The boy was there when the sun rose. A rod is used to catch pink salmon. The source of the huge river is the clear spring. Kick the ball straight and follow through. Help the woman get back to her feet. A pot of tea helps to pass the evening.",
  "The stale smell of old beer lingers. It takes heat to bring out the odor. A cold dip restores health and zest. A salt pickle tastes fine with ham. Tacos al pastor are my favorite. A zestful food is the hot-cross bun.",
];
let script = 0;

// Plain words for the enrolment report's figures.
function sampleNotes(s) {
  const notes = [];
  if (s.snrDb !== undefined) notes.push(s.snrDb >= 30 ? "clean" : s.snrDb >= 20 ? "some background noise" : "noisy");
  if (s.clippingPercent > 0.1) notes.push("distorted (clipping)");
  if (s.speechRatio !== undefined && s.speechRatio < 0.5) notes.push("much silence");
  return notes.join(", ");
}

function renderVoices() {
  const list = $("voice-list");
  $("voice-empty").hidden = catalog.voices.length > 0 || !!catalog.error;
  list.replaceChildren(...catalog.voices.map(voiceItem));
  const names = $("job-voice-names");
  if (names) names.replaceChildren(...catalog.voices.map(v => el("option", { value: v.name })));
}

function voiceItem(v) {
  const quality = v.quality ?? {};
  const reportSamples = quality.samples ?? [];
  const warnings = v.warnings ?? [];
  const table = el("table", {},
    el("thead", {}, el("tr", {},
      el("th", { scope: "col" }, "Sample"), el("th", { scope: "col", class: "num" }, "Length"),
      el("th", { scope: "col", class: "num" }, "Speech"), el("th", { scope: "col", class: "num" }, "SNR"),
      el("th", { scope: "col" }, "Sounds"), el("th", { scope: "col" }, "Transcript"))),
    el("tbody", {}, v.samples.map((s, i) => {
      const r = reportSamples[i] ?? {};
      return el("tr", {},
        el("td", {}, el("button", { type: "button", class: "small", onclick: () => play(v, i), "aria-label": `Play sample ${i + 1} of ${v.name}` }, "▶"), " ", s.fileName),
        el("td", { class: "num" }, `${s.durationSeconds.toFixed(1)} s`),
        el("td", { class: "num" }, r.speechSeconds === undefined ? "—" : `${r.speechSeconds.toFixed(1)} s`),
        el("td", { class: "num" }, r.snrDb === undefined ? "—" : `${Math.round(r.snrDb)} dB`),
        el("td", {}, sampleNotes(r) || "—"),
        el("td", {}, s.transcript ? `${s.transcript}${s.transcriptSource && s.transcriptSource !== "user" ? ` (heard by ${s.transcriptSource})` : ""}` : "—"));
    })));
  return el("li", { class: "voice", "data-voice": v.id },
    el("header", {},
      el("span", { class: "name" }, v.name),
      el("span", { class: "meta" }, `${v.totalSeconds.toFixed(1)} s in ${v.samples.length} sample${v.samples.length === 1 ? "" : "s"}${v.language ? ` · ${v.language}` : ""} · enrolled ${new Date(v.createdAt).toLocaleString()}`)),
    warnings.length
      ? el("ul", { class: "warnings", "aria-label": `Warnings for ${v.name}` }, warnings.map(w => el("li", {}, w)))
      : el("p", { class: "ok-note" }, "Good recording: no problems found."),
    el("div", { class: "buttons" },
      el("button", { type: "button", onclick: () => play(v), "data-testid": "voice-play" }, "Play reference"),
      el("button", { type: "button", class: "danger", onclick: () => remove(v), "data-testid": "voice-delete" }, "Delete…")),
    el("details", {}, el("summary", {}, "Enrolment report"), el("div", { class: "table-wrap" }, table),
      quality.speechSeconds !== undefined ? el("p", { class: "hint" }, `${quality.speechSeconds.toFixed(1)} s of speech in all${quality.recogniser ? `; transcripts not given were heard by ${quality.recogniser}` : ""}.`) : null));
}

let playing = null;
async function play(voice, sample) {
  try {
    const blob = await api(`/v1/voices/${encodeURIComponent(voice.id)}/audio${sample === undefined ? "" : `?sample=${sample}`}`);
    if (playing) { playing.pause(); URL.revokeObjectURL(playing.src); }
    playing = new Audio(URL.createObjectURL(blob));
    await playing.play();
  } catch (e) {
    $("enrol-result").textContent = `Could not play ${voice.name}: ${e.message}`;
  }
}

async function remove(v) {
  if (!await confirmDialog(`Delete ${v.name}?`, `The voice ${v.name}, its recordings and any fine-tuned versions are removed from this server. This cannot be undone.`)) return;
  try {
    await api(`/v1/voices/${encodeURIComponent(v.id)}`, { method: "DELETE" });
    result(`Deleted ${v.name}.`, "ok");
  } catch (e) {
    result(e.message, "error");
  }
  await reload();
}

function result(text, kind = "") {
  $("enrol-result").textContent = text;
  $("enrol-result").className = `status ${kind}`;
}

// ---- Recording -------------------------------------------------------------------------------

const MAX_SECONDS = 60;
const recording = { blob: null, seconds: 0, recorder: null, stream: null, context: null, timer: null, started: 0 };

/** Why this page cannot record, or null when it can. */
function recordingBlocked() {
  if (!window.isSecureContext) {
    return `Recording needs a secure page: browsers allow the microphone only over HTTPS or on localhost, and this page is ${location.origin}. `
      + "Serve Timbre over HTTPS (ops/make-cert makes a certificate for this machine's name), or reach it through an SSH tunnel "
      + "(ssh -L 5075:127.0.0.1:5075 this-machine, then open http://127.0.0.1:5075/). Uploading files works here.";
  }
  if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === "undefined") {
    return "This browser cannot record audio (no getUserMedia or MediaRecorder). Upload recordings instead.";
  }
  return null;
}

function showScript() {
  $("enrol-script").textContent = SCRIPTS[script];
}

async function toggleRecording() {
  if (recording.recorder?.state === "recording") {
    stopRecording();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 } });
  } catch (e) {
    $("record-note").textContent = e.name === "NotAllowedError"
      ? "The browser was not allowed to use the microphone: allow it in the address bar's site settings and try again."
      : e.name === "NotFoundError" ? "No microphone was found. Plug one in, or upload recordings instead." : `The microphone could not start: ${e.message}`;
    $("record-note").className = "hint error-text";
    return;
  }
  const chunks = [];
  const recorder = new MediaRecorder(stream);
  recorder.ondataavailable = e => { if (e.data.size) chunks.push(e.data); };
  recorder.onstop = () => {
    recording.blob = new Blob(chunks, { type: recorder.mimeType || "audio/webm" });
    recording.seconds = (performance.now() - recording.started) / 1000;
    const preview = $("enrol-preview");
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(recording.blob);
    preview.hidden = false;
    $("enrol-retake").hidden = false;
    $("enrol-read-whole-label").hidden = false;
    const note = recording.seconds < 3
      ? "That is under 3 seconds: re-take and read the whole script."
      : `Recorded ${recording.seconds.toFixed(1)} s. Listen back; re-take if it is noisy or you stumbled.`;
    $("record-note").textContent = note;
    $("record-note").className = recording.seconds < 3 ? "hint warning" : "hint";
  };
  // Level meter: the microphone's RMS in dBFS, ten times a second.
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  context.createMediaStreamSource(stream).connect(analyser);
  const scratch = new Float32Array(analyser.fftSize);
  let loud = 0;
  recording.timer = setInterval(() => {
    analyser.getFloatTimeDomainData(scratch);
    let sum = 0, peak = 0;
    for (const v of scratch) { sum += v * v; peak = Math.max(peak, Math.abs(v)); }
    const db = Math.max(-60, 20 * Math.log10(Math.sqrt(sum / scratch.length) + 1e-9));
    $("enrol-level").value = db;
    if (peak > 0.99) loud++;
    const elapsed = (performance.now() - recording.started) / 1000;
    $("enrol-timer").textContent = formatSeconds(elapsed);
    $("record-note").textContent = loud > 3 ? "Too loud: the recording distorts. Move back from the microphone." : `Recording… read the script, then press Stop (at most ${MAX_SECONDS} s).`;
    if (elapsed >= MAX_SECONDS) stopRecording();
  }, 100);
  Object.assign(recording, { recorder, stream, context, blob: null, started: performance.now() });
  recorder.start(250);
  $("enrol-record").textContent = "Stop recording";
  $("enrol-record").setAttribute("aria-pressed", "true");
  $("enrol-retake").hidden = true;
  $("enrol-preview").hidden = true;
}

function stopRecording() {
  clearInterval(recording.timer);
  recording.recorder?.stop();
  recording.stream?.getTracks().forEach(t => t.stop());
  recording.context?.close();
  $("enrol-level").value = -60;
  $("enrol-record").textContent = "Start recording";
  $("enrol-record").setAttribute("aria-pressed", "false");
}

function retake() {
  recording.blob = null;
  $("enrol-preview").hidden = true;
  $("enrol-retake").hidden = true;
  $("enrol-read-whole-label").hidden = true;
  $("enrol-timer").textContent = "0:00";
  $("record-note").textContent = "";
  toggleRecording();
}

// ---- Files -----------------------------------------------------------------------------------

let files = [];

function addFiles(list) {
  for (const f of list) if (!files.some(x => x.file.name === f.name && x.file.size === f.size)) files.push({ file: f, transcript: "" });
  renderFiles();
}

function renderFiles() {
  $("enrol-file-list").replaceChildren(...files.map((f, i) => el("li", {},
    el("span", {}, `${f.file.name} (${(f.file.size / 1024 / 1024).toFixed(1)} MB)`),
    el("button", { type: "button", class: "small quiet", onclick: () => { files.splice(i, 1); renderFiles(); }, "aria-label": `Remove ${f.file.name}` }, "Remove"),
    el("input", { type: "text", value: f.transcript, placeholder: "Transcript (optional: what is said in this file)", "aria-label": `Transcript of ${f.file.name}`, "data-testid": "enrol-transcript",
      oninput: e => { f.transcript = e.target.value; } }))));
}

async function submit(event) {
  event.preventDefault();
  const name = $("enrol-name").value.trim();
  if (!name) {
    result("Give the voice a name first.", "error");
    $("enrol-name").focus();
    return;
  }
  if (!recording.blob && files.length === 0) {
    result("Record the script or add at least one recording first.", "error");
    return;
  }
  if (recording.recorder?.state === "recording") stopRecording();
  const form = new FormData();
  form.append("name", name);
  if ($("enrol-language").value) form.append("language", $("enrol-language").value);
  // Transcripts go in file order; one per file.
  if (recording.blob) {
    const extension = recording.blob.type.includes("ogg") ? "ogg" : recording.blob.type.includes("mp4") ? "m4a" : "webm";
    form.append("files", recording.blob, `recording.${extension}`);
  }
  for (const f of files) form.append("files", f.file, f.file.name);
  if (recording.blob) form.append("transcripts", $("enrol-read-whole").checked ? SCRIPTS[script] : "");
  for (const f of files) form.append("transcripts", f.transcript.trim());
  $("enrol-submit").disabled = true;
  result("Uploading and analysing… this takes a few seconds per recording.");
  try {
    const voice = await api("/v1/voices", { method: "POST", form });
    const warnings = voice.warnings?.length ? ` Check: ${voice.warnings.join(" ")}` : "";
    result(`Enrolled ${voice.name}: ${voice.totalSeconds.toFixed(1)} s of audio.${warnings}`, warnings ? "" : "ok");
    files = [];
    renderFiles();
    recording.blob = null;
    $("enrol-preview").hidden = true;
    $("enrol-retake").hidden = true;
    $("enrol-read-whole-label").hidden = true;
    $("enrol-name").value = "";
    await reload();
  } catch (e) {
    result(e.message, "error");
  } finally {
    $("enrol-submit").disabled = false;
  }
}

export function initVoices() {
  subscribe(() => {
    renderVoices();
    const select = $("enrol-language");
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "" }, "detect / English"), ...allLanguages().map(l => el("option", { value: l }, l)));
    select.value = chosen;
  });
  showScript();
  $("script-next").addEventListener("click", () => { script = (script + 1) % SCRIPTS.length; showScript(); });
  const blocked = recordingBlocked();
  if (blocked) {
    $("record-unavailable").textContent = blocked;
    $("record-unavailable").hidden = false;
    $("enrol-record").disabled = true;
  }
  $("enrol-record").addEventListener("click", toggleRecording);
  $("enrol-retake").addEventListener("click", retake);
  $("enrol-files").addEventListener("change", e => { addFiles(e.target.files); e.target.value = ""; });
  const drop = $("enrol-drop");
  drop.addEventListener("dragover", e => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", e => { e.preventDefault(); drop.classList.remove("over"); addFiles(e.dataTransfer.files); });
  $("enrol-form").addEventListener("submit", submit);
}
