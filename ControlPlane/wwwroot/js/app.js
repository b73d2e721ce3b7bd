// The dashboard's entry point: the key, the theme, the tabs, and the panels.
import { auth, onAuthProblem } from "./api.js";
import { reload, catalog } from "./catalog.js";
import { initSpeak, resetSpeechHub } from "./speak.js";
import { initVoices } from "./voices.js";
import { initStatus, showStatus } from "./status.js";
import { initJobs, showJobs } from "./jobs.js";

const $ = id => document.getElementById(id);

function banner(text) {
  $("banner").textContent = text ?? "";
  $("banner").hidden = !text;
}

// ---- Key -------------------------------------------------------------------------------------

function initKey() {
  $("api-key").value = auth.key;
  $("key-form").addEventListener("submit", async e => {
    e.preventDefault();
    auth.key = $("api-key").value.trim();
    banner(null);
    await resetSpeechHub();
    await loadAll();
  });
  $("key-forget").addEventListener("click", async () => {
    auth.key = "";
    $("api-key").value = "";
    await resetSpeechHub();
    await loadAll();
  });
  onAuthProblem(error => {
    const detail = error.detail || error.message;
    banner(auth.key
      ? `Timbre refused this API key: ${detail}`
      : "Timbre needs an API key: type one of the keys in the server's Timbre:Auth:ApiKeys above and press Use key. This browser keeps it for next time.");
  });
}

async function loadAll() {
  await reload();
  if (catalog.error && catalog.error.status !== 401 && catalog.error.status !== 429) banner(catalog.error.message);
  else if (!catalog.error) banner(null);
}

// ---- Theme -----------------------------------------------------------------------------------

function initTheme() {
  const button = $("theme-toggle");
  const saved = localStorage.getItem("timbre.theme");
  const dark = () => document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme === "dark"
    : matchMedia("(prefers-color-scheme: dark)").matches;
  const show = () => {
    button.textContent = dark() ? "Light" : "Dark";
    button.setAttribute("aria-pressed", String(dark()));
    button.setAttribute("aria-label", dark() ? "Switch to the light theme" : "Switch to the dark theme");
  };
  if (saved) document.documentElement.dataset.theme = saved;
  show();
  button.addEventListener("click", () => {
    const next = dark() ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    localStorage.setItem("timbre.theme", next);
    show();
  });
}

// ---- Tabs (WAI-ARIA tabs pattern: arrows move between tabs, the panel follows) -----------------

function initTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const select = (tab, focus) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
    if (focus) tab.focus();
    showStatus(tab.id === "tab-status");
    showJobs(tab.id === "tab-jobs");
    history.replaceState(null, "", `#${tab.id.slice(4)}`);
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab, false));
    tab.addEventListener("keydown", e => {
      const moves = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 };
      if (e.key in moves) {
        e.preventDefault();
        select(tabs[(moves[e.key] + tabs.length) % tabs.length], true);
      }
    });
  });
  const start = tabs.find(t => `#${t.id.slice(4)}` === location.hash) ?? tabs[0];
  select(start, false);
}

initKey();
initTheme();
initSpeak();
initVoices();
initStatus();
initJobs();
initTabs();
loadAll();
