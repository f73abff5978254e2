// The overview: every check with its status (problems first), counts by status, a filter kept in
// the URL, updated live from the events socket.
import { api, badge, connectLive, el, isProblem, setTitle, STATUS_ORDER, statusOf, when } from "./common.js";

const checks = new Map(); // name -> check (API view, then live fields)
const form = document.getElementById("filter");
const tbody = document.querySelector("#checks tbody");

function filters() {
  const params = new URLSearchParams(location.search);
  return {
    name: (params.get("name") ?? "").toLowerCase(),
    status: params.get("status") ?? "",
    kind: params.get("kind") ?? "",
    label: params.get("label") ?? "",
  };
}

function matches(check, filter) {
  if (filter.name && !check.name.toLowerCase().includes(filter.name)) return false;
  if (filter.status && statusOf(check) !== filter.status) return false;
  if (filter.kind && check.kind !== filter.kind) return false;
  if (filter.label) {
    const [key, value] = filter.label.split("=");
    if ((check.labels ?? {})[key] !== value) return false;
  }
  return true;
}

function render() {
  const all = [...checks.values()];
  const counts = Object.fromEntries(STATUS_ORDER.map((status) => [status, 0]));
  for (const check of all) counts[statusOf(check)] += 1;
  const countsNode = document.getElementById("counts");
  countsNode.replaceChildren(
    ...STATUS_ORDER.map((status) =>
      el("span", { "data-status": status }, badge(status), ` ${counts[status]}`)),
  );
  const problems = all.filter((check) => isProblem(statusOf(check))).length;
  setTitle("Overview", problems);
  const filter = filters();
  const shown = all
    .filter((check) => matches(check, filter))
    .sort((a, b) =>
      STATUS_ORDER.indexOf(statusOf(a)) - STATUS_ORDER.indexOf(statusOf(b)) || a.name.localeCompare(b.name));
  tbody.replaceChildren(
    ...shown.map((check) =>
      el("tr", { "data-check": check.name, "data-status": statusOf(check) },
        el("td", {}, badge(statusOf(check), check.summary)),
        el("td", {}, el("a", { href: `/checks/${encodeURIComponent(check.name)}`, text: check.name })),
        el("td", { text: check.kind }),
        el("td", { class: "summary", text: check.summary ?? "" }),
        el("td", { text: when(check.last_run_at) }))),
  );
  document.getElementById("empty").hidden = shown.length > 0;
}

// Filtering as you type keeps the URL in step (replaceState), so a reload or a shared link
// shows the same list; submitting the form does the same through a normal GET.
form.addEventListener("input", () => {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) if (value) params.set(key, value);
  const text = params.toString();
  history.replaceState(null, "", text ? `/?${text}` : "/");
  render();
});

async function load() {
  const page = await api("/api/v1/checks?limit=10000");
  for (const check of page.checks) checks.set(check.name, check);
  render();
  document.body.dataset.loaded = "true";
  connectLive({
    query: "kinds=run_finished",
    onSnapshot(snapshot) {
      for (const live of snapshot.checks ?? []) {
        const check = checks.get(live.name) ?? { name: live.name, kind: live.kind };
        Object.assign(check, {
          status: live.status ?? null,
          summary: live.summary ?? null,
          last_run_id: live.last_run_id ?? null,
          last_run_at: live.last_run_at ?? null,
        });
        checks.set(live.name, check);
      }
      render();
    },
    onEvent(event) {
      if (event.kind !== "run_finished" || !event.check) return;
      const check = checks.get(event.check);
      if (!check) return;
      Object.assign(check, {
        status: event.status,
        summary: event.summary,
        last_run_id: event.run_id,
        last_run_at: event.finished_at,
      });
      render();
    },
  });
}

load().catch((error) => { document.getElementById("empty").textContent = String(error); });
setInterval(render, 15000); // keeps "… ago" fresh
