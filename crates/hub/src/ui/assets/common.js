// Shared helpers of the warden web UI: the API with the session's CSRF token, status badges, the
// page title with the live problem count, the header's open-incident count, opt-in browser
// notifications, and the one live events connection per page (snapshot + seq, resume with
// since=, jittered backoff).

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
  const className = `status status-${status}`;
  if (node.className !== className) node.className = className;
  if (node.textContent !== status) node.textContent = status;
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

/** An absolute time, for timelines. */
export function at(ms) {
  return ms ? new Date(ms).toLocaleString() : "—";
}

// ---------------------------------------------------------------------------------------------
// The title: "(N) Page · warden", N the checks in a problem state (crit, unknown, warn) as the
// live connection reports them, on every page.

let titleBase = document.title.replace(/ · warden$/, "");
/** Check name → status, from the live snapshot and run_finished events. */
const liveStatuses = new Map();
let problems = 0;

function renderTitle() {
  const title = (problems > 0 ? `(${problems}) ` : "") + `${titleBase} · warden`;
  if (document.title !== title) document.title = title;
}

/** Sets the page's name in the title; the problem count is kept live by the connection. */
export function setTitle(base) {
  titleBase = base;
  renderTitle();
}

/** Records a check's status; returns its previous one (undefined when it was not known). */
function trackStatus(name, status) {
  const before = liveStatuses.get(name);
  if (before === status) return before;
  if (isProblem(before)) problems -= 1;
  if (isProblem(status)) problems += 1;
  liveStatuses.set(name, status);
  return before;
}

// ---------------------------------------------------------------------------------------------
// The header's open-incident count.

let incidentCountTimer = 0;

/** Shows `count` open incidents in the header. */
export function setOpenIncidents(count) {
  const node = document.getElementById("nav-open-incidents");
  if (!node) return;
  node.textContent = String(count);
  node.classList.toggle("count-open", count > 0);
}

/** Re-reads the open incidents (coalesced: many events in a row cost one request). */
function refreshIncidentCount() {
  if (incidentCountTimer || !document.getElementById("nav-open-incidents")) return;
  incidentCountTimer = setTimeout(async () => {
    incidentCountTimer = 0;
    try {
      let count = 0;
      let before = null;
      do {
        const page = await api(`/api/v1/incidents?open=true&limit=1000${before ? `&before=${before}` : ""}`);
        count += page.incidents.length;
        before = page.next_before;
      } while (before);
      setOpenIncidents(count);
    } catch {
      // The next event or reconnection tries again.
    }
  }, 250);
}

// ---------------------------------------------------------------------------------------------
// Browser notifications, opt-in: the header's "Notify me" asks for permission and remembers the
// choice in localStorage. A burst of changes gives a few notifications and one summary.

const NOTIFY_KEY = "warden.notify";
const NOTIFY_BURST = 3; // notifications per window, then one summary
const NOTIFY_WINDOW_MS = 10_000;
let notifyWindowStart = 0;
let notifyShown = 0;
let notifySuppressed = 0;
let notifySummaryTimer = 0;

function storedChoice() {
  try {
    return localStorage.getItem(NOTIFY_KEY);
  } catch {
    return null;
  }
}

function storeChoice(value) {
  try {
    localStorage.setItem(NOTIFY_KEY, value);
  } catch {
    // Storage disabled: the choice lasts as long as the page.
  }
}

let notifyChoice = storedChoice();

export function notificationsOn() {
  return notifyChoice === "on" && "Notification" in window && Notification.permission === "granted";
}

function showNotification(title, body, tag, url) {
  try {
    const notification = new Notification(title, { body, tag });
    if (url) {
      notification.onclick = () => {
        window.focus();
        location.assign(url);
      };
    }
  } catch {
    // Some browsers only allow notifications from a service worker: nothing to do.
  }
}

/** Shows a notification when the user opted in, at most a few per window (then a summary). */
export function notify(title, body, { tag, url } = {}) {
  if (!notificationsOn()) return;
  const now = Date.now();
  if (now - notifyWindowStart > NOTIFY_WINDOW_MS) {
    notifyWindowStart = now;
    notifyShown = 0;
  }
  if (notifyShown < NOTIFY_BURST) {
    notifyShown += 1;
    showNotification(title, body, tag, url);
    return;
  }
  notifySuppressed += 1;
  if (!notifySummaryTimer) {
    notifySummaryTimer = setTimeout(() => {
      const count = notifySuppressed;
      notifySuppressed = 0;
      notifySummaryTimer = 0;
      if (count > 0) showNotification("warden", `${count} more changes`, "warden-summary", "/");
    }, NOTIFY_WINDOW_MS);
  }
}

function setUpNotifyToggle() {
  const button = document.getElementById("notify-toggle");
  if (!button || !("Notification" in window)) return;
  const render = () => {
    const on = notificationsOn();
    button.setAttribute("aria-pressed", String(on));
    button.textContent = on ? "Notifying" : "Notify me";
    button.title = Notification.permission === "denied"
      ? "Notifications are blocked for this site in the browser's settings"
      : on ? "Click to stop notifications" : "Notify me when a check changes state or an incident opens";
  };
  button.addEventListener("click", async () => {
    if (notificationsOn()) {
      notifyChoice = "off";
      storeChoice("off");
      render();
      return;
    }
    let permission = Notification.permission;
    if (permission === "default") permission = await Notification.requestPermission();
    notifyChoice = permission === "granted" ? "on" : "off";
    storeChoice(notifyChoice);
    render();
  });
  // Another tab changed the choice.
  window.addEventListener("storage", (event) => {
    if (event.key !== NOTIFY_KEY) return;
    notifyChoice = event.newValue;
    render();
  });
  button.hidden = false;
  render();
}

setUpNotifyToggle();

// ---------------------------------------------------------------------------------------------
// The live connection.

function banner(text) {
  const node = document.getElementById("banner");
  if (!node) return;
  node.textContent = text ?? "";
  node.hidden = !text;
}

/** What every page follows: check results (title, notifications) and incidents (header count). */
const BASE_KINDS = ["run_finished", "incident_opened", "incident_acknowledged", "incident_resolved"];

let started = false;

/**
 * Subscribes to /api/v1/events, once per page. `onSnapshot(message, { first })` gets the state
 * as of its seq; `onEvent` gets only events newer than everything applied so far, in order.
 * `kinds` adds event kinds to the ones every page follows. Reconnects with jittered exponential
 * backoff, resuming with since=; a banner says while it is disconnected.
 *
 * The applied sequence number is on `document.body.dataset.seq` (it never goes backwards), and
 * `window.__wardenLive` lets tests drop the socket as a network failure would (`drop()`), hold
 * the page disconnected, and `reconnect()`.
 */
export function connectLive({ kinds = [], onSnapshot, onEvent } = {}) {
  if (started) throw new Error("connectLive: one connection per page");
  started = true;
  const kindsOf = (extra) => [...new Set([...BASE_KINDS, ...extra])].join(",");
  let wanted = kindsOf(kinds);
  let seq = null;
  let attempt = 0;
  let socket = null;
  let closed = false;
  let held = false; // test hook: stay disconnected until reconnect()
  let snapshots = 0;
  let retry = 0;
  const applied = (value) => {
    seq = value;
    document.body.dataset.seq = String(value);
  };
  const connected = (value) => {
    document.body.dataset.live = value ? "connected" : "disconnected";
  };
  const open = () => {
    retry = 0;
    if (closed || held) return;
    const params = new URLSearchParams({ kinds: wanted });
    if (seq !== null) params.set("since", String(seq));
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const current = new WebSocket(`${scheme}//${location.host}/api/v1/events?${params}`);
    socket = current;
    current.onmessage = (message) => {
      if (socket !== current) return;
      let data;
      try { data = JSON.parse(message.data); } catch { return; }
      if (data.type === "snapshot") {
        attempt = 0;
        banner(null);
        connected(true);
        const first = snapshots === 0;
        snapshots += 1;
        applySnapshot(data, first);
        onSnapshot?.(data, { first });
        applied(data.seq);
        document.body.dataset.liveStart = "snapshot";
      } else if (data.type === "resume") {
        attempt = 0;
        banner(null);
        connected(true);
        applied(data.seq);
        document.body.dataset.liveStart = "resume";
      } else if (data.type === "event") {
        if (seq !== null && data.seq <= seq) return;
        applyEvent(data);
        onEvent?.(data);
        applied(data.seq);
      }
    };
    current.onclose = () => {
      if (socket !== current || closed) return;
      connected(false);
      banner("Disconnected from the hub; reconnecting…");
      if (held) return;
      const delay = Math.min(30000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
      attempt += 1;
      retry = setTimeout(open, delay);
    };
  };
  const hook = {
    /** Closes the socket as a failed network would and stays disconnected until reconnect(). */
    drop() {
      held = true;
      clearTimeout(retry);
      socket?.close(4999, "dropped by the page");
    },
    reconnect() {
      held = false;
      if (!socket || socket.readyState === WebSocket.CLOSED) {
        clearTimeout(retry);
        open();
      }
    },
    get seq() { return seq; },
  };
  /** Follows `extra` kinds (besides the ones every page follows) from the next event on. */
  const setKinds = (extra) => {
    const next = kindsOf(extra);
    if (next === wanted) return;
    wanted = next;
    if (closed || held || !socket || socket.readyState !== WebSocket.OPEN) return;
    const old = socket;
    open(); // resumes after `seq` with the new filter; the old socket's close is ignored
    old.close();
  };
  window.__wardenLive = hook;
  open();
  return { close: () => { closed = true; socket?.close(); }, setKinds, ...hook };
}

function applySnapshot(snapshot, first) {
  const before = first ? null : new Map(liveStatuses);
  liveStatuses.clear();
  problems = 0;
  for (const check of snapshot.checks ?? []) trackStatus(check.name, statusOf(check));
  renderTitle();
  if (first && document.getElementById("nav-open-incidents")?.textContent === "") refreshIncidentCount();
  if (!first) {
    // Missed while disconnected (the ring no longer had it): what changed, and the incidents.
    refreshIncidentCount();
    for (const [name, status] of liveStatuses) {
      const was = before.get(name);
      if (was !== undefined && was !== status) notifyCheck(name, was, status, "");
    }
  }
}

function notifyCheck(name, was, status, summary) {
  notify(`${name}: ${status.toUpperCase()}`, `was ${was}${summary ? `: ${summary}` : ""}`, {
    tag: `check:${name}`,
    url: `/checks/${encodeURIComponent(name)}`,
  });
}

function applyEvent(event) {
  if (event.kind === "run_finished" && event.check) {
    const was = trackStatus(event.check, event.status);
    renderTitle();
    if (was !== undefined && was !== event.status) notifyCheck(event.check, was, event.status, event.summary);
  } else if (event.kind === "incident_opened") {
    refreshIncidentCount();
    notify(`Incident: ${event.check ?? event.subject} ${String(event.status).toUpperCase()}`,
      `${event.rule}: ${event.summary}`, { tag: `incident:${event.incident_id}`, url: "/incidents" });
  } else if (event.kind === "incident_resolved") {
    refreshIncidentCount();
  }
}
