// The Fine-tuning panel: datasets and jobs with progress, a job's live log and loss curve over
// /hubs/jobs, its evaluation, and the voice's versions to activate.
import { api, hubConnection, hubMessage } from "./api.js";
import { el, whileShown, confirmDialog } from "./ui.js";
import { catalog, reload, subscribe } from "./catalog.js";
import { drawLineChart } from "./charts.js";

const $ = id => document.getElementById(id);
let jobs = [];
let datasets = [];
let selected = null;      // job id shown in detail
let follow = null;        // { jobId, subscription, connection }
let losses = [];

function fraction(job) {
  if (job.status === "succeeded") return 1;
  const p = job.progress;
  return p && typeof p.fraction === "number" ? p.fraction : null;
}

function describe(job) {
  const r = job.result;
  if (job.status === "succeeded" && r?.version !== undefined) {
    return `version ${r.version} of ${r.voice ?? job.voice}${r.activated ? ", now active" : ", kept but not active (not better than zero-shot)"}`;
  }
  if (job.status === "succeeded" && job.kind === "prepare") return "ready to train on";
  const p = job.progress ?? {};
  const stage = job.stage ?? p.stage ?? "";
  const parts = [stage];
  if (p.epoch !== undefined && p.epochs !== undefined) parts.push(`epoch ${p.epoch}/${p.epochs}`);
  if (p.loss !== undefined) parts.push(`loss ${p.loss}`);
  if (p.eta_s !== undefined && job.status === "running") parts.push(`about ${Math.ceil(p.eta_s / 60)} min left`);
  if (job.error) parts.push(job.error);
  return parts.filter(Boolean).join(" · ");
}

function renderJobs() {
  $("jobs-empty").hidden = jobs.length > 0;
  $("job-list").replaceChildren(...jobs.map(job => {
    const f = fraction(job);
    return el("li", { class: "job", "data-job": job.id },
      el("div", { class: "row spread" },
        el("button", { type: "button", class: "open", onclick: () => open(job.id), "aria-label": `Show job ${job.id}` },
          job.kind === "prepare" ? `Prepare ${datasetName(job.dataset)}` : `${job.engine} → ${job.voice ?? job.voiceId ?? "?"}`),
        el("span", { class: `badge ${job.status}` }, job.status)),
      el("progress", { max: 1, value: f ?? undefined, "aria-label": `Progress of job ${job.id}` }),
      el("span", { class: "meta" }, describe(job)));
  }));
  const select = $("job-dataset");
  const chosen = select.value;
  const ready = datasets.filter(d => d.status === "ready");
  select.replaceChildren(...(ready.length ? ready.map(d => el("option", { value: d.id }, `${d.name} (${d.id})`)) : [el("option", { value: "" }, "no prepared dataset yet")]));
  if ([...select.options].some(o => o.value === chosen)) select.value = chosen;
}

function datasetName(id) {
  return datasets.find(d => d.id === id)?.name ?? id;
}

async function refresh() {
  try {
    let tuning;
    [tuning, datasets] = await Promise.all([api("/v1/finetune/jobs"), api("/v1/datasets")]);
    // Preparation jobs are listed with their datasets; the panel shows both kinds, newest first.
    jobs = [...tuning, ...datasets.map(d => d.job).filter(Boolean)].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  } catch (e) {
    $("jobs-empty").hidden = false;
    $("jobs-empty").textContent = `Could not list jobs: ${e.message}`;
    return;
  }
  renderJobs();
  if (selected) renderDetail(jobs.find(j => j.id === selected));
}

function renderDetail(job) {
  if (!job) return;
  $("job-detail").hidden = false;
  $("job-title").textContent = job.kind === "prepare" ? `Preparing ${datasetName(job.dataset)}` : `Fine-tuning ${job.voice ?? ""} on ${job.engine}`;
  const f = fraction(job);
  if (f === null) $("job-progress").removeAttribute("value");
  else $("job-progress").value = f;
  $("job-progress-text").textContent = `${job.status}${f === null ? "" : ` · ${Math.round(f * 100)} %`}`;
  $("job-cancel").hidden = !["queued", "running"].includes(job.status);
  const evaluation = job.result?.evaluation;
  if (evaluation) renderEvaluation(evaluation);
  else $("evaluation-wrap").replaceChildren(el("p", { class: "hint" }, "The evaluation appears when the job has compared the new version with the zero-shot clone."));
  if (job.voiceId && job.kind !== "prepare") versions(job.voiceId);
  else $("versions-wrap").replaceChildren();
  drawLoss();
}

function renderEvaluation(e) {
  // Each row with a fixed number of decimals, so that 25 % reads "25.0" beside "15.6".
  const rows = [
    ["Distance to the speaker (dB, lower is closer)", "distance_db", 3],
    ["Similarity (higher is closer)", "similarity", 3],
    ["Word error rate (%)", "wer_pct", 1],
    ["Pitch distance (cents)", "f0_distance_cents", 1],
    ["Pace distance", "pace_distance", 3],
  ];
  const cell = (v, digits) => el("td", { class: "num" }, typeof v === "number" ? v.toFixed(digits) : "—");
  $("evaluation-wrap").replaceChildren(
    el("table", { "data-testid": "evaluation" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, `On ${e.clips} held-out sentences`), el("th", { scope: "col", class: "num" }, "Zero-shot"), el("th", { scope: "col", class: "num" }, "Fine-tuned"))),
      el("tbody", {}, rows.map(([label, key, digits]) => el("tr", {}, el("th", { scope: "row" }, label),
        cell(e.zero_shot?.[key], digits), cell(e.candidate?.[key], digits))))),
    el("p", { class: e.better ? "ok-note" : "warning" }, verdict(e)));
}

/** Why a version was or was not activated, in words. */
function verdict(e) {
  if (e.better) return "The fine-tuned version is closer to the speaker without losing intelligibility.";
  const closer = e.candidate?.distance_db < e.zero_shot?.distance_db;
  const reason = closer
    ? `it sounds closer to the speaker but is harder to understand (word errors ${e.zero_shot.wer_pct} % → ${e.candidate.wer_pct} %)`
    : "it is no closer to the speaker than the zero-shot clone";
  return `Not activated: ${reason}. It was kept; activate it below if you prefer it.`;
}

async function versions(voiceId) {
  let answer;
  try {
    answer = await api(`/v1/voices/${encodeURIComponent(voiceId)}/versions`);
  } catch (e) {
    $("versions-wrap").replaceChildren(el("p", { class: "hint" }, e.message));
    return;
  }
  $("versions-wrap").replaceChildren(el("table", { "data-testid": "versions" },
    el("thead", {}, el("tr", {}, ["Version", "Engine", "Made", "Evaluated", ""].map(h => el("th", { scope: "col" }, h)))),
    el("tbody", {}, answer.versions.map(v => el("tr", {},
      el("th", { scope: "row" }, String(v.number)),
      el("td", {}, v.engine),
      el("td", {}, new Date(v.createdAt).toLocaleString()),
      el("td", {}, v.better === null || v.better === undefined ? "—" : v.better ? "better than zero-shot" : "not better"),
      el("td", {}, v.active ? el("span", { class: "badge succeeded" }, "active")
        : el("button", { type: "button", class: "small", onclick: () => activate(voiceId, v), "data-testid": "activate-version" }, "Activate")))))));
}

async function activate(voiceId, v) {
  const force = v.better === false;
  if (force && !await confirmDialog(`Activate version ${v.number}?`, "It evaluated worse than the zero-shot clone. Speech will use it anyway.", "Activate")) return;
  try {
    await api(`/v1/voices/${encodeURIComponent(voiceId)}/versions/${v.number}/activate`, { method: "POST" });
  } catch (e) {
    $("job-result").textContent = e.message;
  }
  await versions(voiceId);
  await reload();
}

function drawLoss() {
  const train = losses.filter(l => l.loss !== undefined).map(l => [l.epoch, l.loss]);
  const held = losses.filter(l => l.eval_loss !== undefined).map(l => [l.epoch, l.eval_loss]);
  drawLineChart($("loss-chart"), [{ label: "training", points: train, colour: "--accent" }, { label: "held-out", points: held, colour: "--warn" }], "epoch");
}

function log(line) {
  const pre = $("job-log");
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.append(line + "\n");
  if (atEnd) pre.scrollTop = pre.scrollHeight;
}

function eventLine(e) {
  // Event times are Unix seconds.
  const time = typeof e.time === "number" ? new Date(e.time * 1000).toLocaleTimeString() : "";
  const what = e.message ?? (e.type === "status" ? e.status : "");
  const figures = ["epoch", "loss", "eval_loss", "step", "steps"].filter(k => e[k] !== undefined).map(k => `${k}=${e[k]}`).join(" ");
  return `${time} ${e.type}${e.stage ? ` [${e.stage}]` : ""} ${what} ${figures}`.replace(/\s+/g, " ").trim();
}

async function open(jobId) {
  selected = jobId;
  losses = [];
  $("job-log").textContent = "";
  if (follow) {
    follow.subscription?.dispose();
    await follow.connection.stop().catch(() => {});
  }
  renderDetail(jobs.find(j => j.id === jobId));
  const connection = hubConnection("/hubs/jobs");
  follow = { jobId, connection, subscription: null };
  try {
    await connection.start();
  } catch (e) {
    log(`Could not follow the job: ${hubMessage(e)}`);
    return;
  }
  follow.subscription = connection.stream("Events", jobId, 0).subscribe({
    next: raw => {
      const e = JSON.parse(raw);
      log(eventLine(e));
      if (e.type === "progress" && e.epoch !== undefined && (e.loss !== undefined || e.eval_loss !== undefined)) {
        losses.push(e);
        drawLoss();
      }
      if (e.type === "status" || e.type === "result") refresh();
    },
    complete: () => { log("— end of job —"); refresh(); },
    error: e => log(`Following stopped: ${hubMessage(e)}`),
  });
  $("job-detail").scrollIntoView({ block: "nearest" });
}

async function cancel() {
  if (!selected) return;
  if (!await confirmDialog("Cancel this job?", "The job stops now; a checkpoint already written is kept, and the voice keeps the version it speaks with.", "Cancel job")) return;
  try {
    await api(`/v1/finetune/jobs/${encodeURIComponent(selected)}`, { method: "DELETE" });
  } catch (e) {
    log(e.message);
  }
  refresh();
}

async function uploadDataset(event) {
  event.preventDefault();
  const files = $("dataset-files").files;
  const status = $("dataset-result");
  if (!files.length) { status.textContent = "Choose the recordings (and their NAME.txt transcripts) first."; return; }
  const form = new FormData();
  if ($("dataset-name").value.trim()) form.append("name", $("dataset-name").value.trim());
  for (const f of files) form.append("files", f, f.name);
  status.textContent = "Uploading…";
  try {
    const d = await api("/v1/datasets", { method: "POST", form });
    status.textContent = `Dataset ${d.name} uploaded; preparing it now.`;
    $("dataset-files").value = "";
  } catch (e) {
    status.textContent = e.message;
  }
  refresh();
}

async function startJob(event) {
  event.preventDefault();
  const status = $("job-result");
  const body = { dataset: $("job-dataset").value || null, engine: $("job-engine").value, voice: $("job-voice").value.trim() || null };
  const options = $("job-options").value.trim();
  if (options) {
    try {
      body.options = JSON.parse(options);
    } catch {
      status.textContent = 'Trainer options must be JSON, for example {"max_iterations": 20}.';
      $("job-options").focus();
      return;
    }
  }
  try {
    const job = await api("/v1/finetune/jobs", { method: "POST", json: body });
    status.textContent = `Job ${job.id} queued.`;
    await refresh();
    open(job.id);
  } catch (e) {
    status.textContent = e.message;
  }
}

/** Lists jobs every three seconds while the panel is shown. */
export const showJobs = whileShown(() => refresh(), 3000);

export function initJobs() {
  $("job-cancel").addEventListener("click", cancel);
  $("dataset-form").addEventListener("submit", uploadDataset);
  $("job-form").addEventListener("submit", startJob);
  const engines = () => {
    const select = $("job-engine");
    const chosen = select.value;
    select.replaceChildren(...catalog.engines.map(e => el("option", { value: e.name, disabled: !e.available }, e.name)));
    if ([...select.options].some(o => o.value === chosen)) select.value = chosen;
  };
  subscribe(engines);
}
