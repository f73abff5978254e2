// A check's page: status, summary, uptime, a response-time chart over a chosen range, recent
// runs, and Run now (disabled with a spinner until that run's result is recorded).
import { api, badge, el, setBadge, setTitle, statusOf, when } from "./common.js";

const name = document.body.dataset.check;
const path = encodeURIComponent(name);
let range = "1h";

async function loadCheck() {
  const check = await api(`/api/v1/checks/${path}`);
  const status = statusOf(check);
  setBadge(document.getElementById("check-status"), status, check.summary);
  setTitle(name, status === "crit" || status === "warn" || status === "unknown" ? 1 : 0);
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
  if (check.heartbeat) {
    document.getElementById("heartbeat").hidden = false;
    document.getElementById("ping-url").textContent = check.heartbeat.ping_url;
    document.getElementById("heartbeat-state").textContent =
      `${check.heartbeat.state}; last ping ${when(check.heartbeat.last_ping_at)}; ${check.heartbeat.pings} pings`;
    const button = document.getElementById("run-now");
    if (button) button.hidden = true;
  }
}

async function loadUptime() {
  const uptime = await api(`/api/v1/checks/${path}/uptime`);
  document.getElementById("check-uptime").textContent = uptime.uptime_percent === null
    ? "no runs yet"
    : `${uptime.uptime_percent.toFixed(2)} % of ${uptime.runs} runs`;
}

async function loadRuns() {
  const page = await api(`/api/v1/runs?check=${path}&limit=20`);
  document.querySelector("#runs tbody").replaceChildren(
    ...page.runs.map((run) => {
      const status = run.status ?? (run.state === "completed" ? "unknown" : "pending");
      const duration = run.started_at && run.finished_at ? `${run.finished_at - run.started_at} ms` : "—";
      return el("tr", { "data-run": String(run.id) },
        el("td", {}, el("a", { href: `/runs/${run.id}`, text: `#${run.id}` })),
        el("td", {}, badge(status, run.summary)),
        el("td", { class: "summary", text: run.summary ?? run.state }),
        el("td", { text: when(run.finished_at) }),
        el("td", { text: duration }));
    }),
  );
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
    await Promise.all([loadCheck(), loadRuns(), loadUptime()]);
  } catch (error) {
    state.textContent = `run failed: ${error.message}`;
  } finally {
    runButton.disabled = false;
  }
});

Promise.all([loadCheck(), loadUptime(), loadRuns(), loadChart()])
  .then(() => { document.body.dataset.loaded = "true"; })
  .catch((error) => { document.getElementById("check-summary").textContent = String(error); });
