// The inspector page: the daemon's feed (server-sent events on /events) drawn as it comes, no reloads.
// Every text is set as text, never as HTML: event fields are the game's, and may hold anything.
"use strict";

const MAX_ROWS = 300;
const rows = new Map(); // event pk -> {item, verdicts: {provider: {cls, text}}, tr}
const configs = new Map(); // topic -> publication
const categories = new Set();
const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  const { dataset, ...rest } = props || {};
  Object.assign(node, rest);
  Object.assign(node.dataset, dataset || {});
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

function clock(ms) {
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function eventName(item) {
  const f = item.fields || {};
  return f.event_id || f.name || f.ad_action || f.severity || item.id;
}

function earlyWord(text) {
  return text.startsWith("invalid") ? { cls: "invalid", text } : { cls: "queued", text };
}

function drawVerdicts(entry) {
  const spans = Object.entries(entry.verdicts).map(([provider, v]) =>
    el("span", { className: "verdict " + v.cls, title: v.text, dataset: { provider } }, `${provider}: ${v.text}`));
  entry.tr.lastChild.replaceChildren(...(spans.length ? spans : ["no provider takes it"]));
}

function showFields(value, tr) {
  $("fields").textContent = JSON.stringify(value, null, 2);
  document.querySelectorAll("#events tr.chosen").forEach((r) => r.classList.remove("chosen"));
  if (tr) tr.classList.add("chosen");
}

function fieldView(entry) {
  const { item } = entry;
  const verdicts = Object.fromEntries(Object.entries(entry.verdicts).map(([p, v]) => [p, v.text]));
  return { id: item.id, category: item.category, user_id: item.user_id, device_id: item.device_id,
    session_id: item.session_id, ts: item.ts, fields: item.fields, verdicts };
}

function onStored(item) {
  if (rows.has(item.pk) || $("pause").checked) return;
  if (!categories.has(item.category)) {
    categories.add(item.category);
    $("filter-category").append(el("option", { value: item.category }, item.category));
  }
  const verdicts = {};
  for (const [provider, text] of Object.entries(item.verdicts)) verdicts[provider] = earlyWord(text);
  const tr = el("tr", { dataset: { pk: item.pk, category: item.category } },
    el("td", { className: "when" }, clock(item.at)), el("td", { className: "nowrap" }, item.category),
    el("td", { className: "name" }, eventName(item)),
    el("td", {}, item.user_id), el("td", { className: "verdicts" }));
  const entry = { item, verdicts, tr };
  tr.addEventListener("click", () => showFields(fieldView(entry), tr));
  drawVerdicts(entry);
  applyFilter(tr);
  $("events").tBodies[0].prepend(tr);
  rows.set(item.pk, entry);
  while (rows.size > MAX_ROWS) {
    const [oldest, gone] = rows.entries().next().value;
    gone.tr.remove();
    rows.delete(oldest);
  }
}

function onOutcome(item) {
  const entry = rows.get(item.pk);
  if (!entry) return;
  entry.verdicts[item.provider] = item.kind === "delivered"
    ? { cls: "accepted", text: "accepted" }
    : { cls: item.code === "invalid" ? "invalid" : "dead", text: `dead-lettered (${item.code}): ${item.reason}` };
  drawVerdicts(entry);
}

function applyFilter(tr) {
  const wanted = $("filter-category").value;
  tr.hidden = Boolean(wanted) && tr.dataset.category !== wanted;
}

function note(text) {
  $("live-note").textContent = text;
}

function onState(state) {
  const health = state.health;
  $("health").textContent = "health " + health.status;
  $("health").className = "badge " + health.status;
  $("reasons").replaceChildren(...health.reasons.map((r) => el("li", {}, r)));
  const f = state.figures;
  if (f.stored !== undefined && f.stored !== null) {
    $("figures").textContent = `engine-bridge ${f.daemon_version} · ${f.clients} client(s) · ${f.stored} stored ` +
      `(${f.rate_10s}/s) · ${f.duplicates} duplicates · ${f.rejected} rejected`;
  }
  const providers = Object.entries(state.providers).map(([name, p]) => {
    const failing = health.reasons.some((r) => r.startsWith(`provider ${name}:`));
    const stateText = p.paused ? "paused" : failing ? "failing" : "ok";
    return el("tr", { dataset: { provider: name } }, el("td", { className: "nowrap" }, name),
      el("td", { className: "state-" + stateText }, p.paused ? `paused: ${p.paused}` : stateText),
      el("td", {}, p.queued), el("td", {}, p.in_flight), el("td", {}, p.delivered), el("td", {}, p.dead_lettered),
      el("td", {}, p.requests), el("td", {}, p.last_error || ""));
  });
  $("providers").tBodies[0].replaceChildren(...providers);
  const letters = state.dead_letters.map((d) => {
    const button = el("button", { type: "button", className: "requeue" }, "Requeue");
    button.addEventListener("click", (e) => { e.stopPropagation(); requeue({ pk: d.pk }, button); });
    const tr = el("tr", { dataset: { pk: d.pk, eventPk: d.event_pk } }, el("td", {}, d.provider),
      el("td", { className: "nowrap" }, d.category || "?"), el("td", { className: "name" }, d.uid || d.event_pk),
      el("td", { className: "reason" }, `${d.code}: ${d.reason}`), el("td", {}, button));
    tr.addEventListener("click", () => showEvent(d));
    return tr;
  });
  $("dead-letters").tBodies[0].replaceChildren(...letters);
}

async function showEvent(letter) {
  const answer = await fetch(`/api/events/${letter.event_pk}`);
  showFields(answer.ok ? { dead_letter: letter, event: await answer.json() } : { dead_letter: letter });
}

async function requeue(body, button) {
  button.disabled = true;
  const answer = await fetch("/api/dead-letters/requeue", {
    method: "POST", headers: { "Content-Type": "application/json", "X-Engine-Bridge": "inspector" },
    body: JSON.stringify(body),
  });
  const result = await answer.json();
  button.textContent = answer.ok ? `re-queued (${result.requeued})` : `failed: ${result.error}`;
  button.disabled = button.classList.contains("requeue"); // "Requeue all" stays usable
  refresh();
}

function onConfig(publication) {
  configs.set(publication.topic, publication);
  drawConfigs();
}

function drawConfigs() {
  const sorted = [...configs.values()].sort((a, b) => a.topic.localeCompare(b.topic));
  $("configs").tBodies[0].replaceChildren(...sorted.map((p) => el("tr", { dataset: { topic: p.topic } },
    el("td", {}, p.topic), el("td", { className: "version" }, p.version), el("td", {}, p.source),
    el("td", { className: "values" }, JSON.stringify(p.values)))));
}

async function refresh() {
  const answer = await fetch("/api/state");
  if (!answer.ok) return;
  const state = await answer.json();
  onState(state);
  for (const publication of Object.values(state.configs)) {
    const known = configs.get(publication.topic);
    if (!known || known.version < publication.version) configs.set(publication.topic, publication);
  }
  drawConfigs();
}

function listen() {
  const feed = new EventSource("/events?all=1&recent=1");
  const on = (kind, handler) => feed.addEventListener(kind, (e) => handler(JSON.parse(e.data)));
  feed.addEventListener("open", () => { $("link").textContent = "live"; $("link").className = "badge ok"; });
  feed.addEventListener("error", () => { $("link").textContent = "reconnecting…"; $("link").className = "badge down"; });
  on("stored", onStored);
  on("delivered", onOutcome);
  on("dead_lettered", onOutcome);
  on("state", onState);
  on("config", onConfig);
  on("skipped", (item) => note(`${item.count} events not shown (more than the page shows per second)`));
  on("dropped", (item) => note(`${item.total} lines lost: this page could not keep up`));
  on("duplicates", (item) => note(`${item.count} duplicate(s) acknowledged at ${clock(item.at)}`));
}

$("filter-category").addEventListener("change", () => rows.forEach((entry) => applyFilter(entry.tr)));
$("requeue-all").addEventListener("click", (e) => requeue({}, e.target));
refresh();
listen();
