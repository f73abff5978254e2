// The incidents page: open incidents first, then past ones a page at a time (newest first), each
// with its check, times and timeline (opened, notified, acknowledged by whom with the note,
// resolved; every event on demand). Operators and admins acknowledge an open incident with a
// note. Live: an incident event re-reads that incident, so a new one appears without a reload.
import { api, at, badge, connectLive, el, setOpenIncidents, setTitle, when } from "./common.js";

const PAGE = 50;
const canAck = document.body.dataset.canAck === "true";
const openList = document.getElementById("open-incidents");
const pastList = document.getElementById("past-incidents");
const moreButton = document.getElementById("more-incidents");

/** id → { view, node } */
const incidents = new Map();
/** Where the next page of past incidents starts (null: no more). */
let nextBefore = null;

setTitle("Incidents");

/** How far an incident has come; a view that has come less far is older and is ignored. */
function progress(view) {
  return (view.notified_at ? 1 : 0) + (view.acknowledged_at ? 2 : 0) + (view.resolved_at ? 4 : 0);
}

function duration(ms) {
  const seconds = Math.round(ms / 1000);
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${Math.round(seconds / 3600)}h`;
}

function timelineEntries(view) {
  const entries = [{ at: view.opened_at, kind: "opened", text: `opened: ${view.status ?? ""} ${view.summary}`.trim() }];
  if (view.held) entries.push({ at: view.opened_at, kind: "held", text: "notifications held (maintenance or silence)" });
  if (view.notified_at) entries.push({ at: view.notified_at, kind: "notified", text: "notified" });
  if (view.acknowledged_at) {
    const note = view.ack_note ? `: “${view.ack_note}”` : "";
    entries.push({ at: view.acknowledged_at, kind: "acknowledged", text: `acknowledged by ${view.acknowledged_by ?? "?"}${note}` });
  }
  if (view.resolved_at) {
    const summary = [view.resolved_status, view.resolved_summary].filter(Boolean).join(" ");
    entries.push({
      at: view.resolved_at,
      kind: "resolved",
      text: `resolved after ${duration(view.resolved_at - view.opened_at)}${summary ? `: ${summary}` : ""}`,
    });
  }
  return entries.sort((a, b) => a.at - b.at);
}

function render(view) {
  const open = !view.resolved_at;
  const subject = view.check
    ? el("a", { class: "incident-check", href: `/checks/${encodeURIComponent(view.check)}`, text: view.check })
    : el("span", { class: "incident-check", text: view.subject });
  const times = open
    ? `opened ${at(view.opened_at)} (${when(view.opened_at)})`
    : `opened ${at(view.opened_at)}, resolved ${at(view.resolved_at)}`;
  const node = el("article", { class: "incident", "data-incident": String(view.id), "data-state": view.state },
    el("header", {},
      badge(open ? (view.status ?? "crit") : "ok", view.summary),
      el("strong", { text: ` #${view.id} ` }),
      subject,
      el("span", { class: "incident-meta", text: ` · rule ${view.rule} · ${view.severity} · ` }),
      el("span", { class: "incident-state", text: view.state })),
    el("p", { class: "incident-times summary", text: times }),
    el("ol", { class: "timeline" },
      ...timelineEntries(view).map((entry) => el("li", { "data-kind": entry.kind },
        el("time", { datetime: new Date(entry.at).toISOString(), text: at(entry.at) }), ` ${entry.text}`))));
  const details = el("details", { class: "all-events" }, el("summary", { text: "All events" }));
  details.addEventListener("toggle", () => {
    if (details.open && !details.dataset.loaded) loadEvents(view.id, details);
  });
  node.append(details);
  if (open && canAck && !view.acknowledged_at) node.append(ackForm(view));
  return node;
}

async function loadEvents(id, details) {
  try {
    const full = await api(`/api/v1/incidents/${id}`);
    details.dataset.loaded = "true";
    details.append(el("ol", { class: "events" },
      ...(full.timeline ?? []).map((entry) => el("li", { "data-kind": entry.kind },
        el("time", { text: at(entry.at) }),
        ` ${entry.kind}${entry.notifier ? ` (${entry.notifier})` : ""}${entry.detail ? `: ${entry.detail}` : ""}`))));
  } catch (error) {
    details.append(el("p", { class: "error", text: String(error) }));
  }
}

function ackForm(view) {
  const note = el("input", {
    class: "ack-note", name: "note", maxlength: "2000", placeholder: "note (optional)",
    "aria-label": `note for incident ${view.id}`,
  });
  const button = el("button", { type: "submit", class: "ack-button", text: "Acknowledge" });
  const error = el("span", { class: "ack-error error", role: "alert" });
  const form = el("form", { class: "ack" }, note, button, error);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    error.textContent = "";
    try {
      const acknowledged = await api(`/api/v1/incidents/${view.id}/ack`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ note: note.value }),
      });
      upsert(acknowledged);
    } catch (failure) {
      error.textContent = failure.message;
      button.disabled = false;
    }
  });
  return form;
}

/** Shows the incident in its list (open or past), newest first, unless what is shown is newer. */
function upsert(view) {
  const known = incidents.get(view.id);
  if (known && progress(known.view) > progress(view)) return;
  // Keep a note being typed: an open, unacknowledged incident that changed only in notification.
  const typing = known?.node.querySelector(".ack-note");
  if (known && typing && typing.value && !view.acknowledged_at && !view.resolved_at) {
    known.view = view;
    return;
  }
  const node = render(view);
  const list = view.resolved_at ? pastList : openList;
  const wasFocused = known && known.node.contains(document.activeElement);
  known?.node.remove();
  incidents.set(view.id, { view, node });
  let before = null;
  for (const child of list.children) {
    if (Number(child.dataset.incident) < view.id) {
      before = child;
      break;
    }
  }
  list.insertBefore(node, before);
  if (wasFocused) node.querySelector("button, a")?.focus();
  counts();
}

function counts() {
  const open = openList.children.length;
  document.getElementById("open-count").textContent = String(open);
  document.getElementById("no-open").hidden = open > 0;
  document.getElementById("no-past").hidden = pastList.children.length > 0 || nextBefore !== null;
  setOpenIncidents(open);
}

async function loadOpen() {
  const seen = new Set();
  let before = null;
  do {
    const page = await api(`/api/v1/incidents?open=true&limit=1000${before ? `&before=${before}` : ""}`);
    for (const view of page.incidents) {
      seen.add(view.id);
      upsert(view);
    }
    before = page.next_before;
  } while (before);
  // Shown as open but no longer open: resolved meanwhile (missed while disconnected).
  const gone = [...incidents.values()].filter(({ view }) => !view.resolved_at && !seen.has(view.id));
  await Promise.all(gone.map(({ view }) => refreshIncident(view.id)));
}

async function loadPast() {
  moreButton.disabled = true;
  try {
    const page = await api(`/api/v1/incidents?limit=${PAGE}${nextBefore ? `&before=${nextBefore}` : ""}`);
    for (const view of page.incidents) if (view.resolved_at) upsert(view);
    nextBefore = page.next_before;
  } finally {
    moreButton.disabled = false;
    moreButton.hidden = nextBefore === null;
    counts();
  }
}

async function refreshIncident(id) {
  try {
    upsert(await api(`/api/v1/incidents/${id}`));
  } catch {
    // Gone or unreachable: the next reconnection reloads the list.
  }
}

/** Incident id → a pending re-read (events about one incident in a row cost one request). */
const pending = new Map();
function refreshSoon(id) {
  if (pending.has(id)) return;
  pending.set(id, setTimeout(() => {
    pending.delete(id);
    refreshIncident(id);
  }, 100));
}

moreButton.addEventListener("click", () => { loadPast().catch(() => {}); });

connectLive({
  kinds: ["notification_sent", "notification_failed"],
  onSnapshot(_snapshot, { first }) {
    // A reconnection the replay ring could not cover: read the open ones again.
    if (!first) loadOpen().catch(() => {});
  },
  onEvent(event) {
    if (event.incident_id) refreshSoon(event.incident_id);
  },
});

Promise.all([loadOpen(), loadPast()])
  .then(() => { document.body.dataset.loaded = "true"; })
  .catch((error) => {
    openList.replaceChildren(el("p", { class: "error", text: String(error) }));
  });
