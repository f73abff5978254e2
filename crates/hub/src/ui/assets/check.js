// A check's page: status, summary, uptime, a response-time chart over a chosen range, recent
// runs, and Run now (disabled with a spinner until that run's result is recorded). A heartbeat
// check shows its ping URLs (to the roles the API shows them to) and its last pings instead of
// runs. Live: a new result of this check refreshes the page.
import { api, at, badge, connectLive, el, setBadge, setTitle, when } from "./common.js";

const name = document.body.dataset.check;
const path = encodeURIComponent(name);
let range = "1h";
let heartbeat = false;

setTitle(name);

async function loadCheck() {
  const check = await api(`/api/v1/checks/${path}`);
  const status = check.status ?? "pending";
  setBadge(document.getElementById("check-status"), status, check.summary);
  document.getElementById("check-summary").textContent = check.summary ?? "no result yet";
  document.getElementById("check-kind").textContent = check.kind;
  document.getElementById("check-schedule").textContent = check.schedule;
  document.getElementById("check-labels").textContent =
    Object.entries(check.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(", ") || "—";
  const links = (check.links ?? []).filter((link) => /^https?:\/\//.test(link.url));
  const linkList = document.getElementById("check-links");
  linkList.replaceChildren(...links.flatMap((link, index) => [
    ...(index > 0 ? [", "] : []),
    el("a", { href: link.url, rel: "noopener noreferrer", target: "_blank", text: link.name }),
  ]));
  if (links.length === 0) linkList.textContent = "—";
  heartbeat = check.kind === "heartbeat";
  if (heartbeat) showHeartbeat(check);
}

/** The ping URLs (operators and admins only: the API leaves them out for viewers) and state. */
function showHeartbeat(check) {
  document.getElementById("heartbeat").hidden = false;
  document.getElementById("recent-runs").hidden = true;
  document.getElementById("run-now")?.setAttribute("hidden", "");
  const info = check.heartbeat;
  document.getElementById("ping-urls").hidden = !info;
  document.getElementById("ping-url-hidden").hidden = Boolean(info);
  const state = document.getElementById("heartbeat-state");
  if (!info) {
    state.textContent = check.summary ?? "no ping yet";
    return;
  }
  state.textContent = `${info.state}; last ping ${when(info.last_ping_at)}; ${info.pings} pings`;
  const url = document.getElementById("ping-url");
  if (url.textContent !== info.ping_url) {
    url.textContent = info.ping_url;
    const variant = (suffix, what) => el("li", {}, el("code", { text: `${info.ping_url}${suffix}` }), ` ${what}`);
    document.getElementById("ping-variants").replaceChildren(
      variant("/start", "the job started"),
      variant("/fail", "the job failed"),
      variant("/log", "a message, no state change"),
      variant("/<exit code>", "the job's exit status (0 is success)"),
      el("li", {}, "e.g. ", el("code", { text: `curl -fsS -m 10 --retry 5 ${info.ping_url}` })),
    );
  }
}

async function loadUptime() {
  const uptime = await api(`/api/v1/checks/${path}/uptime`);
  document.getElementById("check-uptime").textContent = uptime.uptime_percent === null
    ? "no runs yet"
    : `${uptime.uptime_percent.toFixed(2)} % of ${uptime.runs} runs`;
}

function duration(run) {
  return run.started_at && run.finished_at ? `${run.finished_at - run.started_at} ms` : "—";
}

function runStatus(run) {
  return run.status ?? (run.state === "completed" ? "unknown" : "pending");
}

async function loadRuns() {
  const page = await api(`/api/v1/runs?check=${path}&limit=20`);
  if (heartbeat) return showPings(page.runs.slice(0, 10));
  document.querySelector("#runs tbody").replaceChildren(
    ...page.runs.map((run) => el("tr", { "data-run": String(run.id) },
      el("td", {}, el("a", { href: `/runs/${run.id}`, text: `#${run.id}` })),
      el("td", {}, badge(runStatus(run), run.summary)),
      el("td", { class: "summary", text: run.summary ?? run.state }),
      el("td", { text: when(run.finished_at) }),
      el("td", { text: duration(run) }))),
  );
}

/** What a ping run was: success, start, fail, log, exit N, or late/down from the monitor. */
function pingKind(run) {
  const result = run.result ?? {};
  if (result.overdue) return run.status === "crit" ? "down (no ping)" : "late (no ping)";
  if (result.exit_code !== null && result.exit_code !== undefined) return `exit ${result.exit_code}`;
  return result.ping ?? run.kind;
}

const EXCERPT = 200;
/** Run id → body excerpt (a ping's body never changes once stored). */
const excerpts = new Map();

async function excerptOf(run) {
  if (excerpts.has(run.id)) return excerpts.get(run.id);
  if (!run.result?.body_bytes) return "";
  const output = await api(`/api/v1/runs/${run.id}/output`);
  const text = output.lines.map((line) => line.line).join("\n");
  const excerpt = text.length > EXCERPT ? `${text.slice(0, EXCERPT)}…` : text;
  excerpts.set(run.id, excerpt);
  return excerpt;
}

async function showPings(runs) {
  const bodies = await Promise.all(runs.map((run) => excerptOf(run).catch(() => "")));
  document.querySelector("#pings tbody").replaceChildren(
    ...runs.map((run, index) => el("tr", { "data-run": String(run.id) },
      el("td", {}, el("a", { href: `/runs/${run.id}`, text: `#${run.id}` })),
      el("td", { class: "ping-kind", text: pingKind(run) }),
      el("td", {}, badge(runStatus(run), run.summary)),
      el("td", { title: when(run.started_at ?? run.enqueued_at), text: at(run.started_at ?? run.enqueued_at) }),
      el("td", {}, el("code", { class: "ping-body", text: bodies[index] || "—" })))),
  );
  document.getElementById("pings-empty").hidden = runs.length > 0;
}

const SVG = "http://www.w3.org/2000/svg";

async function loadChart() {
  const chart = document.getElementById("chart");
  let points;
  try {
    const series = await api(`/api/v1/series/${path}.response_time?since=${range}&points=200`);
    points = series.points;
  } catch {
    points = [];
  }
  if (points.length === 0) {
    chart.replaceChildren(el("p", { class: "summary", text: "No response-time samples in this range." }));
    return;
  }
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs) || 1];
  const y1 = Math.max(...ys) || 1;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 1000 160");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `response time over ${range}, max ${(y1 * 1000).toFixed(1)} ms`);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("class", "line");
  line.setAttribute("points", points
    .map(([x, y]) => `${((x - x0) / Math.max(x1 - x0, 1)) * 1000},${150 - (y / y1) * 140}`)
    .join(" "));
  svg.append(line);
  chart.replaceChildren(svg, el("p", { class: "summary", text: `max ${(y1 * 1000).toFixed(1)} ms` }));
}

for (const button of document.querySelectorAll("#ranges button")) {
  button.addEventListener("click", () => {
    range = button.dataset.range;
    for (const other of document.querySelectorAll("#ranges button")) other.classList.toggle("active", other === button);
    loadChart();
  });
}

const runButton = document.getElementById("run-now");
runButton?.addEventListener("click", async () => {
  const state = document.getElementById("run-state");
  runButton.disabled = true;
  state.replaceChildren(el("span", { class: "spinner", "aria-hidden": "true" }), " running…");
  try {
    const { run_id } = await api(`/api/v1/checks/${path}/run`, { method: "POST" });
    runButton.dataset.runId = String(run_id);
    let run;
    for (;;) {
      run = await api(`/api/v1/runs/${run_id}?wait_ms=20000`);
      if (run.finished_at || ["completed", "dead", "cancelled"].includes(run.state)) break;
    }
    state.replaceChildren(`run #${run_id}: `, badge(run.status ?? run.state, run.summary), ` ${run.summary ?? ""}`);
    state.dataset.finishedRun = String(run_id);
    await refresh();
  } catch (error) {
    state.textContent = `run failed: ${error.message}`;
  } finally {
    runButton.disabled = false;
  }
});

const refresh = () => Promise.all([loadCheck().then(loadRuns), loadUptime()]);

// A result of this check (or a reconnection that may have missed some): refresh, at most once a
// second however fast results come.
let refreshTimer = 0;
let refreshing = false;
function refreshSoon() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(async () => {
    if (refreshing) {
      refreshTimer = 0;
      refreshSoon();
      return;
    }
    refreshing = true;
    try {
      await refresh();
    } catch {
      // The next result tries again.
    } finally {
      refreshing = false;
      refreshTimer = 0;
    }
  }, 1000);
}

connectLive({
  onSnapshot(_snapshot, { first }) {
    if (!first) refreshSoon();
  },
  onEvent(event) {
    if (event.kind === "run_finished" && event.check === name) refreshSoon();
  },
});

Promise.all([loadCheck().then(loadRuns), loadUptime(), loadChart()])
  .then(() => { document.body.dataset.loaded = "true"; })
  .catch((error) => { document.getElementById("check-summary").textContent = String(error); });
