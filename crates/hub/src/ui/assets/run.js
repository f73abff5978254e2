// A run's page: its status and output; while the run is going, the output tails live.
// The live connection comes first and every (re)connection's snapshot re-reads the stored
// output, so a line printed between reading and subscribing is never missed; lines are keyed by
// their number (stored `seq` and live `line_no` are the same count) and shown in order. Once the
// run is over the page stops following output lines but stays live (title, header).
import { api, connectLive, el, setBadge, setTitle } from "./common.js";

const runId = Number(document.body.dataset.run);
setTitle(`Run ${runId}`);
const output = document.getElementById("output");
/** Line number → its element, and the highest number shown. */
const shown = new Map();
let highest = -1;

function addLine(number, stream, line) {
  if (shown.has(number)) return;
  const node = el("span", { class: stream, "data-line": String(number) }, `${line}\n`);
  shown.set(number, node);
  if (number > highest) {
    highest = number;
    output.append(node);
    return;
  }
  // Out of order (stored lines arriving after live ones): before the first later line.
  const later = [...shown.keys()].filter((n) => n > number).sort((a, b) => a - b)[0];
  output.insertBefore(node, shown.get(later) ?? null);
}

async function showRun() {
  const run = await api(`/api/v1/runs/${runId}`);
  const status = run.status ?? (run.finished_at ? "unknown" : "pending");
  setBadge(document.getElementById("run-status"), status, run.summary);
  document.getElementById("run-summary").textContent = run.summary ?? "";
  document.getElementById("run-state").textContent = run.state;
  const link = document.getElementById("run-check");
  if (run.check) {
    link.textContent = run.check;
    link.href = `/checks/${encodeURIComponent(run.check)}`;
  }
  return run;
}

async function showStored() {
  const stored = await api(`/api/v1/runs/${runId}/output`);
  for (const line of stored.lines) addLine(line.seq, line.stream, line.line);
}

let live = null;
let finished = false;

async function refresh() {
  const run = await showRun();
  await showStored();
  if (run.finished_at && live) {
    finished = true;
    live.setKinds([]);
  }
  document.body.dataset.loaded = "true";
}

live = connectLive({
  kinds: ["output_line"],
  // After every (re)connection without resume: what was stored meanwhile.
  onSnapshot() {
    if (!finished) refresh().catch(showError);
  },
  onEvent(event) {
    if (event.run_id !== runId) return;
    if (event.kind === "output_line") addLine(event.line_no, event.stream, event.line);
    if (event.kind === "run_finished") refresh().catch(showError);
  },
});

function showError(error) {
  document.getElementById("run-summary").textContent = String(error);
}
