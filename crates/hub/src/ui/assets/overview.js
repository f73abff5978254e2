// The overview: every check with its status (problems first), counts by status, a filter kept in
// the URL, updated live from the events socket. Built for thousands of checks: each check's row
// is made once and kept by name, live changes are applied at most once per animation frame and
// touch only the rows that changed, and the table holds the first 200 matching rows (200 more on
// "Show more" or when it is scrolled to the end). Counts cover every check, shown or not.
import { api, badge, connectLive, el, setBadge, setTitle, STATUS_ORDER, statusOf, when } from "./common.js";

const PAGE = 200;
const RANK = Object.fromEntries(STATUS_ORDER.map((status, index) => [status, index]));
/** The fields a newer result replaces; a result is newer when its run id is not lower. */
const RESULT_FIELDS = new Set(["status", "summary", "last_run_id", "last_run_at", "status_since"]);

/** name → { check, row, cells, stale } */
const records = new Map();
const counts = Object.fromEntries(STATUS_ORDER.map((status) => [status, 0]));
const form = document.getElementById("filter");
const tbody = document.querySelector("#checks tbody");
const empty = document.getElementById("empty");
const more = document.getElementById("more");
const shownCount = document.getElementById("shown-count");

let filter = filters();
let limit = PAGE;
/** The matching records in display order (all of them; the table shows the first `limit`). */
let shown = [];
let orderDirty = true;
let countsDirty = true;
const dirtyRows = new Set();
let scheduled = false;
let listLoaded = false;
let snapshotApplied = false;
let renderedMark = false;
let liveMark = false;

setTitle("Overview");

function filters() {
  const params = new URLSearchParams(location.search);
  return {
    name: (params.get("name") ?? "").toLowerCase(),
    status: params.get("status") ?? "",
    kind: params.get("kind") ?? "",
    label: params.get("label") ?? "",
  };
}

function matches(check) {
  if (filter.name && !check.name.toLowerCase().includes(filter.name)) return false;
  if (filter.status && statusOf(check) !== filter.status) return false;
  if (filter.kind && check.kind !== filter.kind) return false;
  if (filter.label) {
    const [key, value] = filter.label.split("=");
    if ((check.labels ?? {})[key] !== value) return false;
  }
  return true;
}

function compare(a, b) {
  const byStatus = RANK[statusOf(a.check)] - RANK[statusOf(b.check)];
  if (byStatus !== 0) return byStatus;
  return a.check.name < b.check.name ? -1 : a.check.name > b.check.name ? 1 : 0;
}

/** Applies what the API or the live connection says about a check (an older result is ignored). */
function upsert(name, fields) {
  let record = records.get(name);
  if (!record) {
    record = { check: { name, status: null, last_run_id: null }, row: null, cells: null, stale: false };
    records.set(name, record);
    counts.pending += 1;
    orderDirty = true;
    countsDirty = true;
  }
  const check = record.check;
  const before = statusOf(check);
  const newer = (fields.last_run_id ?? -1) >= (check.last_run_id ?? -1);
  let changed = false;
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined || (RESULT_FIELDS.has(key) && !newer)) continue;
    if (check[key] !== value) {
      check[key] = value;
      changed = true;
    }
  }
  const after = statusOf(check);
  if (before !== after) {
    counts[before] -= 1;
    counts[after] += 1;
    orderDirty = true;
    countsDirty = true;
  }
  if (changed && record.row) {
    if (record.row.isConnected) dirtyRows.add(record);
    else record.stale = true;
  }
  schedule();
}

function schedule() {
  if (scheduled) return;
  scheduled = true;
  // Hidden tabs get no animation frames; the title is kept live elsewhere, the rows can wait.
  if (document.hidden) setTimeout(flush, 1000);
  else requestAnimationFrame(flush);
}

function flush() {
  scheduled = false;
  if (orderDirty) {
    orderDirty = false;
    shown = [];
    for (const record of records.values()) if (matches(record.check)) shown.push(record);
    shown.sort(compare);
    placeRows();
  }
  for (const record of dirtyRows) fillRow(record);
  dirtyRows.clear();
  if (countsDirty) {
    countsDirty = false;
    renderCounts();
  }
  if (listLoaded && !renderedMark) {
    renderedMark = true;
    performance.mark("overview-rendered");
    document.body.dataset.loaded = "true";
  }
  if (listLoaded && snapshotApplied && !liveMark) {
    liveMark = true;
    performance.mark("overview-live");
    document.body.dataset.interactive = "true";
  }
}

function createRow(record) {
  const { check } = record;
  const cells = {
    badge: badge(statusOf(check), check.summary),
    kind: el("td"),
    summary: el("td", { class: "summary" }),
    time: el("td"),
  };
  record.cells = cells;
  record.row = el("tr", { "data-check": check.name },
    el("td", {}, cells.badge),
    el("td", {}, el("a", { href: `/checks/${encodeURIComponent(check.name)}`, text: check.name })),
    cells.kind, cells.summary, cells.time);
  fillRow(record);
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function fillRow(record) {
  const { check, row, cells } = record;
  const status = statusOf(check);
  setBadge(cells.badge, status, check.summary);
  if (row.dataset.status !== status) row.dataset.status = status;
  const lastRun = check.last_run_id === null || check.last_run_id === undefined ? "" : String(check.last_run_id);
  if (row.dataset.lastRun !== lastRun) row.dataset.lastRun = lastRun;
  setText(cells.kind, check.kind ?? "");
  setText(cells.summary, check.summary ?? "");
  setText(cells.time, when(check.last_run_at));
  record.stale = false;
}

/** Puts the first `limit` matching rows in order, moving only the rows that are out of place. */
function placeRows() {
  const visible = shown.length > limit ? shown.slice(0, limit) : shown;
  let cursor = tbody.firstChild;
  for (const record of visible) {
    if (!record.row) createRow(record);
    else if (record.stale) fillRow(record);
    if (record.row === cursor) cursor = cursor.nextSibling;
    else tbody.insertBefore(record.row, cursor);
  }
  while (cursor) {
    const next = cursor.nextSibling;
    tbody.removeChild(cursor);
    cursor = next;
  }
  if (listLoaded) empty.hidden = shown.length > 0;
  more.hidden = shown.length <= limit;
  setText(shownCount, `Showing ${visible.length} of ${shown.length} matching checks.`);
}

const countNodes = new Map();

function renderCounts() {
  const node = document.getElementById("counts");
  if (countNodes.size === 0) {
    node.replaceChildren(...STATUS_ORDER.map((status) => {
      const text = document.createTextNode("");
      countNodes.set(status, text);
      return el("span", { "data-status": status }, badge(status), text);
    }));
  }
  for (const status of STATUS_ORDER) {
    const text = ` ${counts[status]}`;
    const count = countNodes.get(status);
    if (count.data !== text) count.data = text;
  }
}

function showMore() {
  if (shown.length <= limit) return;
  limit += PAGE;
  placeRows();
}

document.getElementById("show-more").addEventListener("click", showMore);
// Scrolled to the end of the list: the next rows come by themselves.
if ("IntersectionObserver" in window) {
  new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting) && !more.hidden) showMore();
  }).observe(more);
}

// Filtering as you type keeps the URL in step (replaceState), so a reload or a shared link
// shows the same list; submitting the form does the same through a normal GET.
form.addEventListener("input", () => {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) if (value) params.set(key, value);
  const text = params.toString();
  history.replaceState(null, "", text ? `/?${text}` : "/");
  filter = filters();
  limit = PAGE;
  orderDirty = true;
  schedule();
});

// The live connection first, so its handshake overlaps the list's download; results are kept
// by run id, so whichever arrives first, the newer result wins.
connectLive({
  onSnapshot(snapshot) {
    for (const live of snapshot.checks ?? []) {
      upsert(live.name, {
        kind: live.kind,
        status: live.status ?? null,
        summary: live.summary ?? null,
        last_run_id: live.last_run_id ?? null,
        last_run_at: live.last_run_at ?? null,
      });
    }
    snapshotApplied = true;
    orderDirty = true;
    schedule();
  },
  onEvent(event) {
    if (event.kind !== "run_finished" || !event.check || !records.has(event.check)) return;
    upsert(event.check, {
      status: event.status,
      summary: event.summary,
      last_run_id: event.run_id,
      last_run_at: event.finished_at,
    });
  },
});

async function load() {
  let after = null;
  do {
    const page = await api(`/api/v1/checks?limit=10000${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    for (const check of page.checks) upsert(check.name, check);
    after = page.next_after;
  } while (after);
  listLoaded = true;
  orderDirty = true;
  schedule();
}

load().catch((error) => {
  empty.hidden = false;
  empty.textContent = String(error);
});

// Keeps "… ago" fresh on the rows shown.
setInterval(() => {
  for (const row of tbody.children) {
    const record = records.get(row.dataset.check);
    if (record) setText(record.cells.time, when(record.check.last_run_at));
  }
}, 15000);
