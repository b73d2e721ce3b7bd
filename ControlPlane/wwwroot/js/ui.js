// Page helpers shared by the panels: building elements, a poller that runs only while its panel is
// shown, the confirmation dialog, and time formatting.

const $ = id => document.getElementById(id);

/** Small DOM helper: el("td", { class: "num" }, "12") */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/**
 * Runs <task> now and every <ms> while its panel is shown: the returned show(visible) starts or stops it,
 * so a hidden panel costs the server nothing.
 */
export function whileShown(task, ms) {
  let timer = null;
  return visible => {
    clearInterval(timer);
    timer = null;
    if (visible) {
      task();
      timer = setInterval(task, ms);
    }
  };
}

export function formatSeconds(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** Asks in the page's modal dialog; resolves true only when the person confirms. */
export function confirmDialog(title, text, ok = "Delete") {
  const dialog = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = ok;
  return new Promise(resolve => {
    const done = value => {
      $("confirm-ok").onclick = $("confirm-cancel").onclick = dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(value);
    };
    $("confirm-ok").onclick = () => done(true);
    $("confirm-cancel").onclick = () => done(false);
    dialog.onclose = () => done(false);
    dialog.showModal();
  });
}
