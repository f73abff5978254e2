// A run's page: its status and output; while the run is going, the output tails live.
import { api, connectLive, el, setBadge, setTitle } from "./common.js";

const runId = Number(document.body.dataset.run);
const output = document.getElementById("output");
const seen = new Set();

function addLine(stream, line, key) {
  if (seen.has(key)) return;
  seen.add(key);
  output.append(el("span", { class: stream }, `${line}\n`));
}

async function load() {
  const run = await api(`/api/v1/runs/${runId}`);
  const status = run.status ?? (run.finished_at ? "unknown" : "pending");
  setBadge(document.getElementById("run-status"), status, run.summary);
  setTitle(`Run ${runId}`, 0);
  document.getElementById("run-summary").textContent = run.summary ?? "";
  document.getElementById("run-state").textContent = run.state;
  const link = document.getElementById("run-check");
  if (run.check) {
    link.textContent = run.check;
    link.href = `/checks/${encodeURIComponent(run.check)}`;
  }
  const stored = await api(`/api/v1/runs/${runId}/output`);
  for (const line of stored.lines) addLine(line.stream, line.line, `s${line.seq}`);
  return run;
}

load().then((run) => {
  document.body.dataset.loaded = "true";
  if (run.finished_at) return;
  const live = connectLive({
    query: "kinds=output_line,run_finished",
    onEvent(event) {
      if (event.run_id !== runId) return;
      if (event.kind === "output_line") addLine(event.stream, event.line, `l${event.line_no}`);
      if (event.kind === "run_finished") { live.close(); load(); }
    },
  });
}).catch((error) => { document.getElementById("run-summary").textContent = String(error); });
