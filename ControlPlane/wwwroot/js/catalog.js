// What the server offers — engines and voices — loaded once and reloaded after changes; panels subscribe.
import { api } from "./api.js";

const listeners = new Set();

export const catalog = {
  engines: [],
  voices: [],
  loaded: false,
  error: null,
};

export function subscribe(listener) {
  listeners.add(listener);
  if (catalog.loaded) listener(catalog);
}

export async function reload() {
  try {
    const [engines, voices] = await Promise.all([api("/v1/engines"), api("/v1/voices")]);
    catalog.engines = engines;
    catalog.voices = voices;
    catalog.error = null;
  } catch (e) {
    catalog.error = e;
  }
  catalog.loaded = true;
  for (const listener of listeners) listener(catalog);
  return catalog;
}

/** Every language some engine speaks, in first-seen order. */
export function allLanguages() {
  const seen = new Set();
  for (const engine of catalog.engines) for (const language of engine.languages ?? []) seen.add(language);
  return [...seen];
}
