// The Speak panel: streams speech over /hubs/speech and plays it as it arrives.
import { hubConnection, hubMessage, randomId } from "./api.js";
import { el } from "./ui.js";
import { catalog, subscribe } from "./catalog.js";
import { StreamPlayer, decodeChunk, wavBlob } from "./player.js";
import { drawWaveform, drawSpectrogram } from "./charts.js";

const $ = id => document.getElementById(id);
const HISTORY_LENGTH = 8;

const player = new StreamPlayer();
let connection = null;
let current = null;      // the stream in progress: { requestId, subscription, ... }
let last = null;         // the finished (or stopped) stream's audio, for download
const history = [];

/** What tests and curious people can read from the page: the player's counters and the last stream's. */
window.timbre ??= {};
Object.defineProperties(window.timbre, {
  player: { get: () => player.stats },
  stream: { get: () => current ?? last },
});

async function hub() {
  if (connection && connection.state === signalR.HubConnectionState.Connected) return connection;
  if (!connection) {
    connection = hubConnection("/hubs/speech");
    connection.onclose(() => { connection = null; });
  }
  if (connection.state === signalR.HubConnectionState.Disconnected) await connection.start();
  return connection;
}

/** Called when the key changes: the next stream connects with the new one. */
export async function resetSpeechHub() {
  const old = connection;
  connection = null;
  if (old) await old.stop().catch(() => {});
}

function engineOf(name) {
  return catalog.engines.find(e => e.name === name);
}

function fillPickers() {
  const engineSelect = $("speak-engine");
  const chosen = engineSelect.value;
  engineSelect.replaceChildren(...catalog.engines.map(e =>
    el("option", { value: e.name, disabled: !e.available, selected: e.name === chosen || (!chosen && e.default) },
      `${e.title ?? e.name}${e.available ? "" : " (unavailable)"}`)));
  followEngine();
}

/** The voice and language pickers, speed and instructions follow what the chosen engine can do. */
function followEngine() {
  const engine = engineOf($("speak-engine").value);
  const voiceSelect = $("speak-voice");
  const previousVoice = voiceSelect.value;
  const caps = engine?.capabilities ?? [];
  let options;
  if (engine && !caps.includes("clone") && (engine.speakers ?? []).length > 0) {
    options = engine.speakers.map(s => el("option", { value: s }, s));
  } else if (engine && engine.mode?.includes("design")) {
    options = [el("option", { value: "" }, "described by the instructions")];
  } else {
    options = catalog.voices.map(v => el("option", { value: v.id }, v.name));
    if (options.length === 0) options = [el("option", { value: "" }, catalog.error ? "—" : "no voices yet: enrol one under Voices")];
  }
  voiceSelect.replaceChildren(...options);
  if ([...voiceSelect.options].some(o => o.value === previousVoice)) voiceSelect.value = previousVoice;

  const languageSelect = $("speak-language");
  const previousLanguage = languageSelect.value;
  languageSelect.replaceChildren(el("option", { value: "" }, "automatic"),
    ...(engine?.languages ?? []).map(l => el("option", { value: l }, l)));
  if ([...languageSelect.options].some(o => o.value === previousLanguage)) languageSelect.value = previousLanguage;

  $("speak-instructions-field").hidden = !caps.includes("instructions");
  updateButtons();
}

function updateButtons() {
  const streaming = current !== null;
  const text = $("speak-text").value.trim();
  $("speak-button").disabled = streaming || text.length === 0;
  $("stop-button").disabled = !streaming && !player.playing;
  $("download-button").disabled = !last || last.ints.length === 0;
  $("speak-count").textContent = $("speak-text").value.length;
}

function status(text, kind = "") {
  const node = $("speak-status");
  node.textContent = text;
  node.className = `status ${kind}`;
}

function request() {
  const engine = engineOf($("speak-engine").value);
  const speed = Number($("speak-speed").value);
  return {
    text: $("speak-text").value,
    voice: $("speak-voice").value || null,
    engine: engine?.name ?? null,
    language: $("speak-language").value || null,
    speed: Math.abs(speed - 1) < 1e-6 ? null : speed,
    instructions: $("speak-instructions-field").hidden ? null : ($("speak-instructions").value.trim() || null),
    requestId: randomId(),
  };
}

function speak() {
  // Inside the click, before any await: browsers start audio only from a user gesture.
  player.unlock();
  const body = request();
  if (!body.text.trim()) return;
  const stream = {
    requestId: body.requestId,
    request: body,
    started: performance.now(),
    firstAudio: null,
    finished: null,
    rate: 24000,
    ints: [],
    floats: [],
    samples: 0,
    chunks: 0,
    final: false,
    stopped: false,
    error: null,
    subscription: null,
  };
  current = stream;
  player.begin();
  ["ttfa", "rtf", "audio-seconds", "chunk-count"].forEach(id => { $(id).textContent = "…"; });
  status("Connecting…");
  updateButtons();
  animate();
  start(stream);
}

async function start(stream) {
  let hubConnection;
  try {
    hubConnection = await hub();
  } catch (e) {
    fail(stream, hubMessage(e));
    return;
  }
  if (current !== stream) return; // stopped while connecting
  status("Speaking…");
  stream.subscription = hubConnection.stream("StreamSpeech", stream.request).subscribe({
    next: chunk => receive(stream, chunk),
    complete: () => finish(stream),
    error: e => (stream.stopped ? finish(stream) : fail(stream, hubMessage(e))),
  });
}

function receive(stream, chunk) {
  if (stream.stopped) return;
  stream.chunks++;
  if (chunk.isFinal) {
    stream.final = true;
    return;
  }
  const { ints, floats } = decodeChunk(chunk.pcm);
  if (ints.length === 0) return;
  stream.rate = chunk.sampleRate;
  stream.ints.push(ints);
  stream.floats.push(floats);
  stream.samples += ints.length;
  if (stream.firstAudio === null) {
    stream.firstAudio = performance.now();
    $("ttfa").textContent = `${Math.round(stream.firstAudio - stream.started)} ms`;
  }
  player.push(floats, chunk.sampleRate);
  $("audio-seconds").textContent = `${(stream.samples / stream.rate).toFixed(1)} s`;
  $("chunk-count").textContent = String(stream.chunks);
}

function finish(stream) {
  if (stream.finished !== null) return;
  stream.finished = performance.now();
  player.end();
  const seconds = stream.samples / stream.rate;
  if (seconds > 0 && stream.firstAudio !== null) {
    $("rtf").textContent = ((stream.finished - stream.started) / 1000 / seconds).toFixed(3);
  } else {
    $("rtf").textContent = "—";
  }
  if (stream.firstAudio === null) $("ttfa").textContent = "—";
  $("chunk-count").textContent = String(stream.chunks);
  status(stream.stopped ? "Stopped." : `Done: ${seconds.toFixed(1)} s of speech.`, stream.stopped ? "" : "ok");
  keep(stream);
}

function fail(stream, message) {
  stream.error = message;
  stream.finished = performance.now();
  player.end();
  ["ttfa", "rtf", "audio-seconds", "chunk-count"].forEach(id => { if ($(id).textContent === "…") $(id).textContent = "—"; });
  status(message, "error");
  keep(stream);
}

/** The stream is over: its audio becomes the downloadable result, the spectrogram and a history entry. */
function keep(stream) {
  if (current === stream) current = null;
  if (stream.samples > 0) {
    last = stream;
    const all = new Float32Array(stream.samples);
    let offset = 0;
    for (const part of stream.floats) { all.set(part, offset); offset += part.length; }
    drawSpectrogram($("spectrogram"), all, stream.rate);
    remember(stream);
  }
  updateButtons();
}

function remember(stream) {
  const voice = catalog.voices.find(v => v.id === stream.request.voice)?.name ?? stream.request.voice ?? "";
  history.unshift({
    text: stream.request.text,
    voice,
    engine: stream.request.engine,
    ttfa: stream.firstAudio === null ? null : Math.round(stream.firstAudio - stream.started),
    seconds: stream.samples / stream.rate,
    stopped: stream.stopped,
    stream,
  });
  history.length = Math.min(history.length, HISTORY_LENGTH);
  renderHistory();
}

function renderHistory() {
  $("history-empty").hidden = history.length > 0;
  $("history").replaceChildren(...history.map((h, i) => el("li", {},
    el("span", { class: "text", title: h.text }, h.text),
    el("span", { class: "meta" }, `${h.voice} · ${h.engine} · ${h.seconds.toFixed(1)} s${h.ttfa === null ? "" : ` · first audio ${h.ttfa} ms`}${h.stopped ? " · stopped" : ""}`),
    el("button", { type: "button", class: "small", onclick: () => replay(h.stream), "aria-label": `Play again: ${h.text.slice(0, 40)}` }, "Play"),
    " ",
    el("button", { type: "button", class: "small", onclick: () => download(h.stream), "aria-label": `Download WAV ${i + 1}` }, "WAV"))));
}

function replay(stream) {
  player.unlock();
  player.begin();
  for (const part of stream.floats) player.push(part, stream.rate);
  player.end();
  animate();
  updateButtons();
}

function download(stream) {
  const url = URL.createObjectURL(wavBlob(stream.ints, stream.rate));
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  const link = el("a", { href: url, download: `timbre-${stamp}.wav` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30000);
}

async function stop() {
  player.silence();
  const stream = current;
  if (stream) {
    stream.stopped = true;
    // Cancel on the server by request id (frees the engine at once), then drop the subscription.
    try {
      if (connection?.state === signalR.HubConnectionState.Connected) await connection.invoke("CancelSpeech", stream.requestId);
    } catch { /* the stream may have ended meanwhile */ }
    stream.subscription?.dispose();
    finish(stream);
  }
  updateButtons();
}

let animating = false;
const scratch = new Float32Array(2048);
function animate() {
  if (animating) return;
  animating = true;
  const canvas = $("waveform");
  const frame = () => {
    player.level(scratch);
    drawWaveform(canvas, scratch);
    if (player.playing || current) {
      requestAnimationFrame(frame);
    } else {
      animating = false;
      updateButtons();
    }
  };
  requestAnimationFrame(frame);
  // requestAnimationFrame pauses in background tabs; keep measuring the level meanwhile.
  const timer = setInterval(() => {
    if (!animating) clearInterval(timer);
    else player.level(scratch);
  }, 100);
}

export function initSpeak() {
  $("speak-engine").addEventListener("change", followEngine);
  $("speak-text").addEventListener("input", updateButtons);
  $("speak-speed").addEventListener("input", () => { $("speak-speed-value").textContent = `${Number($("speak-speed").value).toFixed(2)}×`; });
  $("speak-button").addEventListener("click", speak);
  $("speak-text").addEventListener("keydown", e => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && !$("speak-button").disabled) speak();
  });
  $("stop-button").addEventListener("click", stop);
  $("download-button").addEventListener("click", () => last && download(last));
  player.onIdle = updateButtons;
  subscribe(() => fillPickers());
  drawWaveform($("waveform"), null);
  updateButtons();
}
