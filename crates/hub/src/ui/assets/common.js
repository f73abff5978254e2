// Shared helpers of the warden web UI: the API with the session's CSRF token, status badges,
// and the live events connection (snapshot + seq, resume with since=, jittered backoff).

export const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";

/** Calls the JSON API with the session cookie; non-GET requests carry X-CSRF-Token. */
export async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers ?? {}) };
  const method = options.method ?? "GET";
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const response = await fetch(path, { ...options, method, headers, credentials: "same-origin" });
  if (response.status === 401) {
    location.assign("/ui/sign-in?next=" + encodeURIComponent(location.pathname + location.search));
    throw new Error("signed out");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(body?.error?.message ?? response.statusText);
  return body;
}

/** Problems first. */
export const STATUS_ORDER = ["crit", "unknown", "warn", "pending", "ok"];
export const statusOf = (check) => check.status ?? "pending";
export const isProblem = (status) => status === "crit" || status === "unknown" || status === "warn";

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null) continue;
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

/** The status as text and colour; hovering shows the summary. */
export function badge(status, summary) {
  return el("span", { class: `status status-${status}`, title: summary ?? status, text: status });
}

export function setBadge(node, status, summary) {
  node.className = `status status-${status}`;
  node.textContent = status;
  node.title = summary ?? status;
}

export function when(ms) {
  if (!ms) return "—";
  const seconds = Math.round((Date.now() - ms) / 1000);
  if (seconds < 60) return `${Math.max(seconds, 0)}s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)}h ago`;
  return new Date(ms).toLocaleString();
}

export function setTitle(base, problems) {
  document.title = (problems > 0 ? `(${problems}) ` : "") + `${base} · warden`;
}

function banner(text) {
  const node = document.getElementById("banner");
  if (!node) return;
  node.textContent = text ?? "";
  node.hidden = !text;
}

/**
 * Subscribes to /api/v1/events. `onSnapshot(message)` gets the state as of its seq; `onEvent`
 * gets only events newer than everything applied so far. Reconnects with jittered exponential
 * backoff, resuming with since=; a banner says while it is disconnected.
 */
export function connectLive({ query = "", onSnapshot, onEvent }) {
  let seq = null;
  let attempt = 0;
  let socket = null;
  let closed = false;
  const open = () => {
    if (closed) return;
    const params = new URLSearchParams(query);
    if (seq !== null) params.set("since", String(seq));
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const text = params.toString();
    socket = new WebSocket(`${scheme}//${location.host}/api/v1/events${text ? "?" + text : ""}`);
    socket.onmessage = (message) => {
      let data;
      try { data = JSON.parse(message.data); } catch { return; }
      if (data.type === "snapshot") {
        attempt = 0;
        seq = data.seq;
        banner(null);
        onSnapshot?.(data);
      } else if (data.type === "resume") {
        attempt = 0;
        seq = data.seq;
        banner(null);
      } else if (data.type === "event") {
        if (seq !== null && data.seq <= seq) return;
        seq = data.seq;
        onEvent?.(data);
      }
    };
    socket.onclose = () => {
      if (closed) return;
      banner("Disconnected from the hub; reconnecting…");
      const delay = Math.min(30000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
      attempt += 1;
      setTimeout(open, delay);
    };
  };
  open();
  return { close: () => { closed = true; socket?.close(); } };
}
