// logad console: polls the console's JSON endpoints and renders them. Charts are uPlot's
// (static/vendor); everything else is plain DOM, built with textContent only, since
// session ids and log templates come from the logs.
"use strict";

const state = { status: null, pollMs: 2000, charts: {}, last: {}, session: null };

// ---- small helpers

function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    e.append(kid instanceof Node ? kid : String(kid));
  }
  return e;
}

function fill(node, ...kids) {
  // replaceChildren, leaving out the parts that are not there
  node.replaceChildren(...kids.flat(Infinity).filter((k) => k !== null && k !== undefined && k !== false));
}

function cut(text, n) {
  return text && text.length > n ? text.slice(0, n - 1) + "…" : text;
}

function fmtTime(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

function fmtNum(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return Number(v).toFixed(digits);
}

function fmtRate(v) {
  if (v === null || v === undefined) return "–";
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
}

function sessionLink(sid) {
  return el("a", { href: "#session=" + encodeURIComponent(sid), class: "mono session-link", "data-session": sid }, sid);
}

function eventLabel(ev, width = 80, newLabel = " new:") {
  // an event id, with its template text when the console knows it (cut to `width`);
  // a template new to the model (mined from a line unlike any it was trained on) is marked
  const name = ev.name || ev.new_template;
  const isNew = ev.new || (!ev.name && ev.new_template);
  return el("span", { class: "pattern-event", title: name || null },
    el("code", {}, ev.event_id),
    isNew ? el("span", { class: "newtpl" }, newLabel) : null,
    name ? el("span", { class: isNew ? "tname newname" : "tname" }, " " + cut(name, width)) : null);
}

function eventsLine(events) {
  // the most surprising events on one line, for tables
  return el("div", { class: "oneline" }, events.map((s, i) => [i ? " · " : null, eventLabel(s, 48)]));
}

function scoreCell(score, threshold) {
  const max = Math.max(score, threshold) * 1.15 || 1;
  return el("span", { class: "sev" }, fmtNum(score), " / ", fmtNum(threshold),
    el("span", { class: "scorebar", title: "score (red) against the threshold (black mark)" },
      el("i", { style: `width:${Math.min(100, (100 * score) / max)}%` }),
      el("b", { style: `left:${(100 * threshold) / max}%` })));
}

function expectedText(expected) {
  return expected.map((x) => `${x.event_id}${x.name ? " “" + x.name + "”" : ""} (${(100 * x.prob).toFixed(0)}%)`).join(", ");
}

function eventsList(events) {
  return el("ul", { class: "ev-list" }, events.map((s) =>
    el("li", {},
      el("code", {}, "#" + s.position + " "), eventLabel(s, 200, " new log template:"),
      el("span", { class: "hint" }, ` nll ${fmtNum(s.nll, 1)}`),
      s.reason ? el("div", { class: "reason" }, "scored by a rule: " + s.reason) : null,
      s.expected.length ? el("div", { class: "expected" }, "expected: " + expectedText(s.expected)) : null)));
}

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const out = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(out.error || `HTTP ${r.status}`);
  return out;
}

function changed(name, data) {
  // re-render a part only when its data changed: keeps open <details> and hover
  const text = JSON.stringify(data);
  if (state.last[name] === text) return false;
  state.last[name] = text;
  return true;
}

function heatColour(heat) {
  // 0 (fits) .. 1 (past the threshold): pale yellow to deep red
  const h = 50 - 50 * heat, l = 86 - 36 * heat;
  return `hsl(${h}, 90%, ${l}%)`;
}

// ---- header

function renderStatus(s) {
  const reader = document.getElementById("reader");
  reader.textContent = s.reader === "reading"
    ? `reading ${s.topics.alerts} + ${s.topics.scores}`
    : s.reader === "waiting" ? `waiting for topic ${s.waiting_for.join(", ")}` : `Kafka: ${s.reader}`;
  reader.className = "chip" + (s.reader === "reading" ? " good" : " warn");
  document.getElementById("counts").textContent =
    `${s.alerts_kept} alerts in the last ${s.window_minutes} min`;
  const exposure = document.getElementById("exposure");
  exposure.textContent = s.loopback
    ? `no login: served on ${s.host} only`
    : `NO LOGIN and served on ${s.host}: anyone who reaches it can read alerts and write verdicts`;
  exposure.className = "chip" + (s.loopback ? "" : " warn");
  document.getElementById("footer").textContent =
    `Kafka ${s.bootstrap} · alerts seen ${s.alerts_seen} · scores seen ${s.scores_seen}` +
    (s.undecodable ? ` · undecodable ${s.undecodable}` : "") +
    ` · feedback file: ${s.feedback || "none (start with --feedback FILE to enable the verdict buttons)"}` +
    ` · ack file: ${s.ack_file || "none (acknowledgements last while the console runs)"}`;
}

// ---- alerts

function verdictButtons(target) {
  const off = !(state.status && state.status.feedback);
  const title = off ? "start the console with --feedback FILE" : "append a verdict to the feedback file";
  const press = (verdict) => async (ev) => {
    ev.target.disabled = true;
    try {
      const r = await post("/api/verdict", { verdict, ...target });
      ev.target.textContent = `${verdict === "normal" ? "marked normal" : "confirmed"} (${r.sessions})`;
    } catch (e) {
      ev.target.textContent = String(e.message || e);
    }
    state.last = {};
    poll();
  };
  return [
    el("button", { type: "button", class: "verdict", "data-verdict": "normal", disabled: off, title, onclick: press("normal") }, "Mark normal"),
    el("button", { type: "button", class: "verdict", "data-verdict": "anomalous", disabled: off, title, onclick: press("anomalous") }, "Confirm anomalous"),
  ];
}

function alertRows(alerts) {
  // a group's newest alerts: its events are the pattern's, shown above
  return el("table", { class: "compact" }, el("tbody", {}, alerts.map((a) =>
    el("tr", { class: "alert-row", "data-session": a.session_id },
      el("td", { class: "mono" }, fmtTime(a.scored_at)),
      el("td", {}, sessionLink(a.session_id), a.window_index ? el("span", { class: "hint" }, ` window ${a.window_index}`) : null),
      el("td", {}, scoreCell(a.score, a.threshold)),
      el("td", { class: "mono hint" }, a.model_version)))));
}

function groupCard(g, acked) {
  const v = g.verdicts;
  const verdictNote = v.anomalous || v.normal ? ` · verdicts: ${v.anomalous} anomalous, ${v.normal} normal` : "";
  const head = el("div", { class: "group-head" },
    el("span", { class: "count" }, `${g.alerts} alert${g.alerts === 1 ? "" : "s"}`),
    el("span", {}, `${g.sessions} session${g.sessions === 1 ? "" : "s"}`),
    el("span", { class: "hint" }, `${fmtTime(g.first_ms)}–${fmtTime(g.last_ms)} · max score ${fmtNum(g.max_score)}${verdictNote}`),
    el("span", { class: "spacer" }),
    acked ? null : el("button", { type: "button", class: "ack", "data-key": g.key, onclick: async (ev) => {
      ev.target.disabled = true;
      await post("/api/ack", { key: g.key }).catch((e) => { ev.target.textContent = e.message; });
      state.last = {};
      poll();
    } }, "Acknowledge"),
    verdictButtons({ key: g.key }));
  return el("div", { class: "group" + (acked ? " acked" : ""), "data-key": g.key },
    head,
    el("div", { class: "pattern" }, el("span", { class: "hint" }, "surprising events: "),
      g.pattern.map((e, i) => [i ? " · " : null, eventLabel(e, 70)])),
    alertRows(g.latest),
    g.alerts > g.latest.length ? el("div", { class: "hint" }, `… and ${g.alerts - g.latest.length} more`) : null);
}

function renderAlerts(view) {
  if (changed("groups", [view.groups, view.acknowledged, state.status && state.status.feedback])) {
    const groups = document.getElementById("groups");
    fill(groups, (view.groups.length
      ? view.groups.map((g) => groupCard(g, false))
      : [el("div", { class: "empty" }, view.total ? "every group is acknowledged" : "no alerts in the window")]));
    document.getElementById("acked-summary").textContent =
      `${view.acknowledged.length} acknowledged group${view.acknowledged.length === 1 ? "" : "s"} (hidden)`;
    fill(document.getElementById("acked-groups"), view.acknowledged.map((g) => groupCard(g, true)));
  }
  if (changed("recent", view.recent)) {
    fill(document.getElementById("live-body"), view.recent.map((a) =>
      el("tr", { class: "alert-row", "data-session": a.session_id },
        el("td", { class: "mono" }, fmtTime(a.scored_at)),
        el("td", {}, sessionLink(a.session_id)),
        el("td", {}, scoreCell(a.score, a.threshold)),
        el("td", { class: "mono hint" }, a.model_version),
        el("td", { class: "events" }, eventsLine(a.surprising)))));
  }
}

// ---- session view

function timeline(w) {
  const boxes = w.events.map((e) => {
    const tip = [`#${e.position} ${e.event_id}`, e.name, e.surprising ? `nll ${fmtNum(e.nll, 2)}` : "not among the most surprising",
      e.reason ? "scored by a rule: " + e.reason : null,
      e.surprising && e.expected.length ? "expected: " + expectedText(e.expected) : null].filter(Boolean).join("\n");
    return el("div", { class: "event" + (e.surprising ? " surprising" : ""), "data-position": e.position, "data-event": e.event_id,
      style: e.surprising ? `background:${heatColour(e.heat)}` : null, title: tip },
      el("span", { class: "pos" }, e.position), e.event_id);
  });
  if (w.end) {
    boxes.push(el("div", { class: "event surprising end", style: `background:${heatColour(w.end.heat)}`,
      title: `the session ended here: nll ${fmtNum(w.end.nll, 2)}${w.end.reason ? "; scored by a rule: " + w.end.reason : ""}; expected: ${expectedText(w.end.expected)}` },
      el("span", { class: "pos" }, "end"), "<end>"));
  }
  return el("div", { class: "timeline" }, boxes);
}

function renderSession(v) {
  document.getElementById("session-title").textContent = v.session_id;
  const verdict = document.getElementById("session-verdict");
  verdict.textContent = v.verdict ? `verdict: ${v.verdict}` : "no verdict";
  const off = !(state.status && state.status.feedback);
  for (const b of document.querySelectorAll("#session-view button.verdict")) {
    b.disabled = off;
    b.title = off ? "start the console with --feedback FILE" : "append a verdict to the feedback file";
  }
  if (!changed("session", v)) return;
  const body = document.getElementById("session-body");
  if (!v.found) {
    fill(body, el("div", { class: "empty" }, "nothing of this session in the console's window (yet)"));
    return;
  }
  const legend = el("div", { class: "legend" }, "surprise (NLL against the threshold):",
    [0, 0.25, 0.5, 0.75, 1].map((h) => el("span", {}, el("span", { class: "swatch", style: `background:${heatColour(h)}` }), h === 1 ? "≥ threshold" : `${h * 100}%`)),
    el("span", {}, el("span", { class: "swatch", style: "background:#e8ecef" }), "not among the 5 most surprising"));
  const windows = v.windows.map((w) => {
    const explained = w.events.filter((e) => e.surprising);
    return el("div", { class: "window", "data-window": w.window_index },
      el("div", {}, el("b", {}, `window ${w.window_index}`), " · ", scoreCell(w.score, w.threshold),
        el("span", { class: "hint" }, ` · ${w.n_events} events · ${fmtTime(w.first_ts)}–${fmtTime(w.last_ts)} · model ${w.model_version}`)),
      timeline(w),
      el("div", { class: "hint" }, "what the model expected at the surprising positions:"),
      eventsList(w.end ? [...explained, { ...w.end, event_id: "<end>" }] : explained));
  });
  const scores = v.scores.length
    ? el("table", { class: "session-scores" },
        el("thead", {}, el("tr", {}, el("th", {}, "window"), el("th", {}, "scored"), el("th", {}, "score / threshold"), el("th", {}, "model"))),
        el("tbody", {}, v.scores.map((p) => el("tr", {},
          el("td", {}, p.window_index), el("td", { class: "mono" }, fmtTime(p.scored_at)),
          el("td", {}, scoreCell(p.score, p.threshold), p.anomalous ? el("span", { class: "chip warn" }, " alert") : null),
          el("td", { class: "mono hint" }, p.model_version)))))
    : null;
  fill(body, legend, windows,
    v.windows.length ? null : el("div", { class: "empty" }, "no alert for this session: its windows scored under the threshold"),
    scores ? el("h3", {}, "every scored window of the session") : null, scores);
}

function sessionFromHash() {
  const m = /^#session=(.+)$/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : null;
}

function onHash() {
  state.session = sessionFromHash();
  const view = document.getElementById("session-view");
  view.hidden = !state.session;
  delete state.last.session;
  if (state.session) {
    document.getElementById("session-title").textContent = state.session;
    fill(document.getElementById("session-body"), el("div", { class: "empty" }, "loading…"));
    pollSession();
    view.scrollIntoView({ block: "start" });
  }
}

async function pollSession() {
  if (!state.session) return;
  const sid = state.session;
  const v = await getJSON("/api/session?id=" + encodeURIComponent(sid));
  if (sid === state.session) renderSession(v);
}

// ---- charts (uPlot)

function chartWidth(id) {
  return Math.max(280, document.getElementById(id).clientWidth || 500);
}

function chart(id, opts, data) {
  let u = state.charts[id];
  if (!u) {
    const o = { width: chartWidth(id), height: 220, legend: { live: false }, ...opts };
    u = state.charts[id] = new uPlot(o, data, document.getElementById(id));
  } else {
    u.setData(data);
  }
  return u;
}

function renderScores(d) {
  const h = d.histogram;
  const mids = h.below.map((_, i) => (h.edges[i] + h.edges[i + 1]) / 2);
  const nz = (xs) => xs.map((c) => (c > 0 ? c : null));
  document.getElementById("dist-note").textContent =
    `${d.scores} windows, ${d.anomalous} over the threshold ${fmtNum(d.threshold)} (red)`;
  const width = h.edges.length > 1 ? h.edges[1] - h.edges[0] : 1;
  chart("dist-chart", {
    scales: { x: { time: false }, y: { distr: 3, log: 10, range: (u, min, max) => [0.8, Math.max(10, (max || 1) * 2)] } },
    axes: [{ label: "window score", values: (u, vals) => vals.map((v) => v.toFixed(1)) }, { label: "windows (log)" }],
    series: [
      { label: "score", value: (u, v) => (v === null ? "–" : `${(v - width / 2).toFixed(2)}–${(v + width / 2).toFixed(2)}`) },
      { label: "≤ threshold", fill: "rgba(31,95,168,0.55)", stroke: "#1f5fa8", paths: uPlot.paths.bars({ size: [1, 100] }), points: { show: false } },
      { label: "> threshold (alerts)", fill: "rgba(198,40,40,0.7)", stroke: "#c62828", paths: uPlot.paths.bars({ size: [1, 100] }), points: { show: false } },
    ],
  }, [mids, nz(h.below), nz(h.above)]);
  const pm = d.per_minute;
  chart("minute-chart", {
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(5, max || 0)] }, w: { range: (u, min, max) => [0, Math.max(10, max || 0)] } },
    axes: [{}, { scale: "y", label: "alerts" }, { scale: "w", side: 1, grid: { show: false }, label: "windows" }],
    series: [
      {},
      { label: "alerts", scale: "y", fill: "rgba(198,40,40,0.7)", stroke: "#c62828", paths: uPlot.paths.bars({ size: [0.7, 60] }), points: { show: false } },
      { label: "scored windows", scale: "w", stroke: "#1f5fa8", width: 2 },
    ],
  }, [pm.t, pm.alerts, pm.windows]);
}

// ---- pipeline

function stat(k, v, mono) {
  return el("div", { class: "stat" }, el("div", { class: mono ? "v mono" : "v" }, v), el("div", { class: "k" }, k));
}

function fmtIso(t) {
  // 2026-12-05T04:19:15+00:00 -> 2026-12-05 04:19:15Z
  return String(t || "").replace("T", " ").replace(/\+00:00$/, "Z");
}

function renderPipeline(p) {
  const note = document.getElementById("pipeline-note");
  const stats = document.getElementById("pipeline-stats");
  const model = document.getElementById("model");
  if (!p.configured) {
    note.textContent = "start the console with --metrics-url http://SERVE:9108/metrics to see serve's throughput, lag and dead letters";
    fill(stats);
  } else {
    note.textContent = p.error ? `cannot scrape ${p.url}: ${p.error}` : `from ${p.url}` + (p.scraped_at ? `, scraped ${fmtTime(p.scraped_at * 1000)}` : "");
    const r = p.rates || {};
    fill(stats,
      stat("events/s", fmtRate(r.events)), stat("windows scored/s", fmtRate(r.windows)),
      stat("alerts/s", fmtRate(r.alerts)), stat("dead letters/s", fmtRate(r.dlq)),
      stat("dead letters (total)", p.totals ? fmtNum(p.totals.dlq ?? null, 0) : "–"),
      stat("lag (records)", p.lag_total ?? "–"),
      stat("model", p.model_version || "–", true), stat("threshold", fmtNum(p.threshold)),
      stat("ready", p.ready === null || p.ready === undefined ? "–" : p.ready ? "yes" : "NO"));
    if (p.model_version) model.textContent = `model: ${p.model_version}`;
    const s = p.series;
    chart("throughput-chart", {
      scales: { x: { time: true }, d: { range: (u, min, max) => [0, Math.max(1, max || 0)] } },
      axes: [{}, { label: "per second" }, { scale: "d", side: 1, grid: { show: false }, label: "dead letters/s" }],
      series: [{}, { label: "events/s", stroke: "#1f5fa8", width: 2, points: { show: false } },
        { label: "windows/s", stroke: "#2e7d32", width: 2, points: { show: false } },
        { label: "dead letters/s", stroke: "#c62828", width: 2, scale: "d", points: { show: false } }],
    }, [s.t, s.events, s.windows, s.dlq]);
    const lag = Object.entries(p.lag || {});
    fill(document.getElementById("lag-body"), (lag.length
      ? lag.map(([part, v]) => el("tr", {}, el("td", {}, part), el("td", {}, fmtNum(v, 0))))
      : [el("tr", {}, el("td", { colspan: 2, class: "empty" }, "no partitions assigned"))]));
  }
  if (changed("registry", p.registry)) renderRegistry(p.registry);
}

function renderRegistry(reg) {
  const box = document.getElementById("registry");
  if (!reg) {
    fill(box, el("h3", {}, "Model registry"), el("div", { class: "empty" }, "start the console with --registry DIR to see promotions, rollbacks and decision records"));
    return;
  }
  const cur = reg.current;
  const moves = reg.moves.length
    ? el("table", {}, el("thead", {}, el("tr", {}, ["time", "move", "version", "from", "by", "reason"].map((h) => el("th", {}, h)))),
        el("tbody", {}, reg.moves.map((m) => el("tr", {},
          el("td", { class: "mono" }, fmtIso(m.time)), el("td", {}, m.action.replace("_", " ")), el("td", { class: "mono" }, m.version),
          el("td", { class: "mono" }, m.previous || "–"), el("td", {}, m.by_hand ? "hand" : "retrain"), el("td", {}, m.reason)))))
    : el("div", { class: "empty" }, "no moves recorded");
  const decisions = reg.decisions.length
    ? el("div", {}, reg.decisions.map((d) => el("details", {},
        el("summary", {}, el("span", { class: "mono" }, fmtIso(d.time)), ` ${d.action.replace("_", " ")} `, el("code", {}, d.version || "?"),
          d.by_hand ? " (by hand)" : "", d.reason ? el("span", { class: "hint" }, ` — ${d.reason}`) : null),
        el("pre", {}, JSON.stringify(d.record, null, 2)))))
    : el("div", { class: "empty" }, "no decision records");
  fill(box,
    el("h3", {}, `Model registry ${reg.path}`),
    reg.error ? el("div", { class: "chip warn" }, reg.error) : null,
    cur ? el("div", {}, "serving ", el("code", {}, cur.version), cur.previous ? el("span", { class: "hint" }, ` (before it: ${cur.previous}; since ${cur.updated_at})`) : null) : null,
    el("h3", {}, "Promotions and rollbacks (newest first)"), moves,
    el("h3", {}, "Decision records (newest first)"), decisions);
}

// ---- polling

async function poll() {
  try {
    const [status, alerts, scores, pipeline] = await Promise.all(
      ["/api/status", "/api/alerts", "/api/scores", "/api/pipeline"].map(getJSON));
    state.status = status;
    renderStatus(status);
    renderAlerts(alerts);
    renderScores(scores);
    renderPipeline(pipeline);
    await pollSession();
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  } catch (e) {
    const reader = document.getElementById("reader");
    reader.textContent = `console unreachable: ${e.message || e}`;
    reader.className = "chip warn";
  }
}

async function start() {
  document.getElementById("session-close").addEventListener("click", (ev) => {
    ev.preventDefault();
    history.replaceState(null, "", location.pathname);
    onHash();
  });
  for (const b of document.querySelectorAll("#session-view button.verdict")) {
    b.addEventListener("click", async () => {
      if (!state.session) return;
      b.disabled = true;
      try {
        await post("/api/verdict", { verdict: b.dataset.verdict, session_id: state.session });
      } catch (e) {
        document.getElementById("session-verdict").textContent = String(e.message || e);
      }
      delete state.last.session;
      pollSession();
    });
  }
  window.addEventListener("hashchange", onHash);
  window.addEventListener("resize", () => {
    for (const [id, u] of Object.entries(state.charts)) u.setSize({ width: chartWidth(id), height: 220 });
  });
  try {
    state.pollMs = (await getJSON("/api/status")).poll_ms || 2000;
  } catch (e) { /* poll() reports it */ }
  onHash();
  await poll();
  setInterval(poll, state.pollMs);
}

start();
