// Talking to Timbre: the API key kept in this browser, JSON calls that turn problem details into
// readable errors, and SignalR hub connections that send the same key.

const KEY_STORAGE = "timbre.apiKey";

export const auth = {
  get key() { return localStorage.getItem(KEY_STORAGE) ?? ""; },
  set key(value) {
    if (value) localStorage.setItem(KEY_STORAGE, value);
    else localStorage.removeItem(KEY_STORAGE);
  },
};

/** A failed call: Status 0 means the server did not answer at all. */
export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
    this.detail = detail;
  }
}

const authListeners = new Set();

/** Called with an ApiError whenever the server refuses the key (401) or too many wrong keys (429 from the key check). */
export function onAuthProblem(listener) { authListeners.add(listener); }

function authHeaders() {
  const key = auth.key;
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function problemOf(response) {
  let title = response.statusText;
  let detail = "";
  try {
    const body = await response.json();
    title = body.title ?? body.error?.type ?? title;
    detail = body.detail ?? body.error?.message ?? "";
    if (body.errors && typeof body.errors === "object") {
      detail += " " + Object.values(body.errors).flat().join(" ");
    }
  } catch { /* not JSON: keep the status text */ }
  return new ApiError(response.status, title, detail.trim());
}

/**
 * Calls the API. `json` sends a JSON body, `form` a FormData; the answer is parsed by its content type
 * (JSON, text or a Blob). Throws ApiError with the server's own explanation.
 */
export async function api(path, { method = "GET", json, form, signal } = {}) {
  const headers = authHeaders();
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, signal, cache: "no-store" });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "Timbre did not answer", "The server did not answer: is Timbre still running, and is this the right address?");
  }
  if (!response.ok) {
    const error = await problemOf(response);
    if (response.status === 401 || (response.status === 429 && /API key/.test(error.detail))) {
      for (const listener of authListeners) listener(error);
    }
    throw error;
  }
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") ?? "";
  if (type.includes("json")) return response.json();
  if (type.startsWith("text/")) return response.text();
  return response.blob();
}

/**
 * A SignalR connection to one of Timbre's hubs. Browsers cannot put headers on a WebSocket, so the key goes
 * as access_token (Timbre accepts it on /hubs and keeps it out of its logs); negotiation sends it as Bearer.
 */
export function hubConnection(path) {
  return new signalR.HubConnectionBuilder()
    .withUrl(path, { accessTokenFactory: () => auth.key })
    .withAutomaticReconnect([0, 1000, 3000, 10000])
    // Hub failures reach the page as errors it shows; the console gets warnings only.
    .configureLogging({
      log(level, message) {
        if (level >= signalR.LogLevel.Warning) console.warn(`signalr: ${message}`);
      },
    })
    .build();
}

/** The reason a hub refused, without SignalR's wrapping ("An unexpected error occurred invoking ..." / "HubException: ..."). */
export function hubMessage(error) {
  const text = String(error?.message ?? error ?? "");
  const match = text.match(/HubException: (.*)$/s);
  if (match) return match[1];
  if (/Status code '401'|Unauthorized/.test(text)) return "The API key is missing or wrong: type the key from Timbre:Auth:ApiKeys above.";
  return text.replace(/^Error: /, "");
}

/** A random id that works outside secure contexts too (crypto.randomUUID does not). */
export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, b => b.toString(16).padStart(2, "0")).join("");
}
