// The Status panel: engines with their availability, and live figures read from /metrics.
import { api } from "./api.js";
import { el, whileShown } from "./ui.js";
import { catalog, subscribe } from "./catalog.js";
import { drawSparkline } from "./charts.js";

const $ = id => document.getElementById(id);
const WINDOW_MS = 5 * 60 * 1000;
const POINTS = 60;
const scrapes = [];      // { at, metrics } of the last five minutes
const series = { inflight: [], queue: [], ttfa: [], rtf: [] };

/** Prometheus text format → [{ name, labels, value }]. */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: m[3] === "+Inf" ? Infinity : Number(m[3]) });
  }
  return out;
}

function sum(metrics, name, filter = () => true) {
  return metrics.filter(s => s.name === name && filter(s.labels)).reduce((a, s) => a + s.value, 0);
}

/** Cumulative bucket counts of a histogram summed over its series: Map(le → count). */
function buckets(metrics, name) {
  const map = new Map();
  for (const s of metrics) {
    if (s.name !== `${name}_bucket`) continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    map.set(le, (map.get(le) ?? 0) + s.value);
  }
  return map;
}

/** The q-quantile of the observations between two scrapes, interpolated within buckets as Prometheus does. */
export function quantile(q, now, before) {
  const les = [...now.keys()].sort((a, b) => a - b);
  const counts = les.map(le => (now.get(le) ?? 0) - (before?.get(le) ?? 0));
  const total = counts[counts.length - 1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  for (let i = 0; i < les.length; i++) {
    if (counts[i] >= rank) {
      if (les[i] === Infinity) return les[i - 1] ?? null;
      const lower = i === 0 ? 0 : les[i - 1];
      const below = i === 0 ? 0 : counts[i - 1];
      const inBucket = counts[i] - below;
      return inBucket <= 0 ? les[i] : lower + ((les[i] - lower) * (rank - below)) / inBucket;
    }
  }
  return null;
}

function push(list, value) {
  list.push(value);
  if (list.length > POINTS) list.shift();
}

async function scrape() {
  let text;
  try {
    text = await api("/metrics");
  } catch (e) {
    $("status-window").textContent = `Could not read /metrics: ${e.message}`;
    return;
  }
  const metrics = parseMetrics(text);
  const at = Date.now();
  scrapes.push({ at, metrics });
  while (scrapes.length > 1 && at - scrapes[0].at > WINDOW_MS) scrapes.shift();
  const oldest = scrapes[0].metrics === metrics ? null : scrapes[0].metrics;

  const inflight = sum(metrics, "timbre_streams_in_flight");
  const queue = sum(metrics, "timbre_queue_depth");
  const ttfaNow = buckets(metrics, "timbre_time_to_first_audio_seconds");
  const ttfaThen = oldest ? buckets(oldest, "timbre_time_to_first_audio_seconds") : null;
  const rtfNow = buckets(metrics, "timbre_real_time_factor");
  const rtfThen = oldest ? buckets(oldest, "timbre_real_time_factor") : null;
  // Over the window when it holds requests; else everything since the server started.
  const recent = (now, then, q) => quantile(q, now, then) ?? quantile(q, now, null);
  const t50 = recent(ttfaNow, ttfaThen, 0.5), t95 = recent(ttfaNow, ttfaThen, 0.95);
  const r50 = recent(rtfNow, rtfThen, 0.5), r95 = recent(rtfNow, rtfThen, 0.95);
  const ms = v => (v === null ? "—" : `${Math.round(v * 1000)}`);
  const fx = v => (v === null ? "—" : v.toFixed(3));

  $("stat-inflight").textContent = String(inflight);
  $("stat-queue").textContent = String(queue);
  $("stat-ttfa").textContent = t50 === null ? "—" : `${ms(t50)} / ${ms(t95)} ms`;
  $("stat-rtf").textContent = r50 === null ? "—" : `${fx(r50)} / ${fx(r95)}`;
  const outcome = o => sum(metrics, "timbre_streams_total", l => l.outcome === o);
  $("stat-streams").textContent = `${outcome("completed")} done · ${outcome("cancelled")} stopped · ${outcome("failed") + outcome("timeout")} failed`;
  push(series.inflight, inflight);
  push(series.queue, queue);
  push(series.ttfa, t50);
  push(series.rtf, r50);
  drawSparkline($("spark-inflight"), series.inflight);
  drawSparkline($("spark-queue"), series.queue);
  drawSparkline($("spark-ttfa"), series.ttfa);
  drawSparkline($("spark-rtf"), series.rtf);
  $("status-window").textContent = `Percentiles over the last ${Math.max(1, Math.round((at - scrapes[0].at) / 60000))} min (or since start when nothing ran), from /metrics; updated ${new Date(at).toLocaleTimeString()}.`;
}

function renderEngines() {
  $("engine-table").tBodies[0].replaceChildren(...catalog.engines.map(e => el("tr", { "data-engine": e.name },
    el("th", { scope: "row" }, `${e.title ?? e.name}${e.default ? " (default)" : ""}`, el("br"), el("span", { class: "hint" }, e.gpu ? "GPU" : "CPU")),
    el("td", {}, e.available
      ? el("span", { class: "yes" }, e.loaded ? "yes, loaded" : "yes")
      : [el("span", { class: "no" }, "no"), el("br"), el("span", { class: "hint" }, e.reason ?? "")]),
    el("td", {}, e.model ?? "", el("br"), el("span", { class: "hint" }, e.mode ?? "")),
    el("td", {}, (e.languages ?? []).join(", ")),
    el("td", {}, (e.capabilities ?? []).join(", ")),
    el("td", {}, e.license ?? ""))));
}

/** Scrapes every two seconds while the panel is shown. */
export const showStatus = whileShown(() => scrape(), 2000);

export function initStatus() {
  subscribe(renderEngines);
}
