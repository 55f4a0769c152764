// The dashboard page: polls the server's JSON API (see rl/dashboard/server.py) and draws the runs table,
// live curves, config comparison, recorded episodes and model internals.
//
// For tests and curious users, what is on screen is also data: window.dashboard.plotted[key] holds, for each
// chart, the points each run contributes (raw, before smoothing, exactly as served) and the drawn (smoothed or
// seed-averaged) lines; each chart's canvas carries data-points (the raw point count it drew).
"use strict";

const POLL_MS = +(new URLSearchParams(location.search).get("poll")) || 2000; // ?poll=500: faster, for tests
const PALETTE = ["#2f6fdf", "#e8590c", "#2b9348", "#c2255c", "#7048e8", "#0c8599", "#a27100", "#5c677d",
  "#d9480f", "#1c7ed6", "#66a80f", "#ae3ec9"];
const DEFAULT_KEYS = ["episode_return", "episode_length", "loss", "val_loss", "accuracy", "val_accuracy"];
const HIDDEN_KEYS = new Set(["env_steps", "step", "epoch", "iteration", "time_s", "episode", "batch"]);
// What each status badge means (its tooltip); the server decides the status from the run's files alone.
const STATUS_HINTS = {
  running: "training now (its process is alive, or on another machine its files keep changing)",
  finished: "the budget is spent: eval.json is written",
  interrupted: "stopped (Ctrl-C or killed): train.py --resume RUN_DIR continues it",
  failed: "stopped before its first checkpoint: start it again",
  silent: "running on another machine, but none of its files changed for 15 minutes: it may have died there",
};

const state = {
  runs: [], byId: new Map(), selected: new Set(), userTouched: false, focused: null,
  keys: new Set(), keysTouched: false, data: new Map(), colors: new Map(), tab: "curves",
  smoothing: 0.6, logY: false, groupSeeds: false, filter: null, configs: new Map(), lastOk: 0,
};
window.dashboard = { state, plotted: {}, ready: false, polls: 0 };

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const fileUrl = (rel) => "/files/" + rel.split("/").map(encodeURIComponent).join("/");
async function api(path, opts) {
  const r = await fetch(path, opts);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
function colorOf(key) {
  if (!state.colors.has(key)) state.colors.set(key, PALETTE[state.colors.size % PALETTE.length]);
  return state.colors.get(key);
}
function duration(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
  if (s < 3600) return Math.floor(s / 60) + " m " + String(Math.round(s % 60)).padStart(2, "0") + " s";
  return Math.floor(s / 3600) + " h " + String(Math.round((s % 3600) / 60)).padStart(2, "0") + " m";
}

// ------------------------------------------------------------------------------------------ runs table
function visibleRuns() {
  return state.runs.filter((r) => !state.filter || state.filter.test(r.id));
}

function renderRuns() {
  const body = $("runs-body");
  const runs = visibleRuns();
  const running = state.runs.filter((r) => r.status === "running").length;
  $("run-count").textContent = `${state.runs.length}` + (running ? ` · ${running} running` : "");
  document.title = (running ? `(${running} running) ` : "") + "playgrad dashboard";
  const empty = $("runs-empty");
  empty.hidden = runs.length > 0;
  if (!runs.length) {
    empty.textContent = state.runs.length ? "no run matches the filter" :
      "No runs yet. Train one (python scripts/train.py configs/cartpole_ppo_fast.toml) and it appears here.";
  }
  const groups = new Map();
  for (const r of runs) { if (!groups.has(r.group)) groups.set(r.group, []); groups.get(r.group).push(r); }
  const rows = [];
  for (const [group, members] of groups) {
    const allOn = members.every((r) => state.selected.has(r.id));
    rows.push(`<tr class="group"><td><input type="checkbox" data-group="${esc(group)}" ${allOn ? "checked" : ""}></td>` +
      `<td colspan="11">${esc(group)} <span class="count">· ${members.length} run${members.length > 1 ? "s" : ""}</span></td></tr>`);
    for (const r of members) {
      const ev = r.eval && r.eval.mean_return !== undefined ? Chart.fmt(r.eval.mean_return) + (r.eval.std_return !== undefined ? ` ± ${Chart.fmt(r.eval.std_return)}` : "")
        : r.eval && r.eval.accuracy !== undefined ? (100 * r.eval.accuracy).toFixed(1) + "%" : "–";
      const steps = (r.total_steps ? `${Chart.fmt(r.steps)} / ${Chart.fmt(r.total_steps)}` : Chart.fmt(r.steps)) +
        (r.reading !== null && r.reading !== undefined ? ` <span class="hint">(reading ${Math.floor(100 * r.reading)}%)</span>` : "");
      const damaged = r.damaged ? `<span class="badge damaged" title="${esc(r.damaged)}">damaged</span>` : "";
      rows.push(`<tr class="run${r.id === state.focused ? " focused" : ""}${r.damaged ? " damaged" : ""}" data-run="${esc(r.id)}">` +
        `<td><input type="checkbox" data-run="${esc(r.id)}" ${state.selected.has(r.id) ? "checked" : ""}></td>` +
        `<td><span class="swatch" style="background:${colorOf(state.groupSeeds ? r.group : r.id)}"></span>${esc(r.name)}` +
        (r.damaged ? `<div class="reason">${esc(r.damaged)}</div>` : "") + `</td>` +
        `<td><span class="badge ${r.status}" title="${esc(STATUS_HINTS[r.status] ?? "")}">${r.status}</span>${damaged}</td>` +
        `<td>${esc(r.agent ?? "–")}</td><td>${esc(r.env_id ?? "–")}</td><td class="num">${r.seed ?? "–"}</td>` +
        `<td class="num">${steps}</td><td class="num">${Chart.fmt(r.last_mean)}</td><td class="num">${Chart.fmt(r.best_mean)}</td>` +
        `<td class="num">${ev}</td><td class="num">${duration(r.wall_s)}</td><td class="num">${r.sps ? Chart.fmt(r.sps) : "–"}</td></tr>`);
    }
  }
  body.innerHTML = rows.join("");
}

$("runs-body").addEventListener("click", (ev) => {
  const t = ev.target;
  if (t.matches("input[data-run]")) {
    state.userTouched = true;
    if (t.checked) state.selected.add(t.dataset.run); else state.selected.delete(t.dataset.run);
    refreshViews();
    return;
  }
  if (t.matches("input[data-group]")) {
    state.userTouched = true;
    for (const r of state.runs) if (r.group === t.dataset.group) { if (t.checked) state.selected.add(r.id); else state.selected.delete(r.id); }
    renderRuns(); refreshViews();
    return;
  }
  const row = t.closest("tr.run");
  if (row) { state.focused = row.dataset.run; renderRuns(); refreshViews(); }
});
$("select-all").onclick = () => { state.userTouched = true; visibleRuns().forEach((r) => state.selected.add(r.id)); renderRuns(); refreshViews(); };
$("select-none").onclick = () => { state.userTouched = true; state.selected.clear(); renderRuns(); refreshViews(); };
$("filter").oninput = (ev) => {
  try { state.filter = ev.target.value ? new RegExp(ev.target.value, "i") : null; ev.target.style.borderColor = ""; }
  catch { ev.target.style.borderColor = "#d13b3b"; return; }
  renderRuns(); refreshViews();
};

// ------------------------------------------------------------------------------------------ polling
async function pollRuns() {
  const body = await api("/api/runs");
  $("root").textContent = body.root + (body.exists ? "" : "  (not there yet)");
  state.runs = body.runs;
  state.byId = new Map(body.runs.map((r) => [r.id, r]));
  for (const id of [...state.selected]) if (!state.byId.has(id)) state.selected.delete(id);
  for (const r of body.runs) {
    colorOf(r.id);
    // Until the user picks, every run is shown, new ones included (as W&B's default workspace).
    if (!state.userTouched) state.selected.add(r.id);
  }
  if (!state.focused || !state.byId.has(state.focused)) state.focused = body.runs.length ? body.runs[body.runs.length - 1].id : null;
  for (const r of body.runs) for (const k of r.keys) state.keys.add(k);
  renderRuns();
}

function shownKeys() {
  const all = [...state.keys].filter((k) => !HIDDEN_KEYS.has(k)).sort();
  if (!state.keysTouched) {
    state.chosen = new Set(DEFAULT_KEYS.filter((k) => all.includes(k)));
    if (!state.chosen.size && all.length) state.chosen.add(all[0]);
  }
  return { all, chosen: state.chosen || new Set() };
}

async function pollSeries() {
  const { chosen } = shownKeys();
  const keys = [...chosen];
  if (!keys.length) return;
  await Promise.all([...state.selected].map(async (id) => {
    const have = state.data.get(id);
    const missing = !have || keys.some((k) => !(k in have.series));
    const since = missing ? -1 : have.lines;
    const q = new URLSearchParams({ run: id, since, max_points: 2000 });
    keys.forEach((k) => q.append("key", k));
    try {
      const body = await api("/api/series?" + q);
      if (!body.unchanged) state.data.set(id, { lines: body.lines, series: { ...(have ? have.series : {}), ...body.series } });
    } catch (e) { /* a run removed meanwhile: the next runs poll drops it */ }
  }));
}

async function poll() {
  try {
    await pollRuns();
    if (state.tab === "curves") await pollSeries();
    state.lastOk = Date.now();
    $("live").className = "live ok";
    $("live-text").textContent = "live · " + new Date().toLocaleTimeString();
  } catch (e) {
    $("live").className = "live err";
    $("live-text").textContent = "server unreachable: " + e.message;
  }
  refreshViews(false);
  window.dashboard.polls += 1;
  window.dashboard.ready = true;
  setTimeout(poll, POLL_MS);
}

// ------------------------------------------------------------------------------------------ curves
function smooth(y, weight) {
  // TensorBoard's debiased exponential moving average; gaps (null) are kept as gaps. The slider's weight holds
  // for a 200-point curve; a longer one gets the per-point weight that averages over the same fraction of it
  // (as W&B does), so 2,000 episodes are as smooth as 200 and the slider means the same for every run.
  if (!(weight > 0)) return y.slice();
  if (y.length > 200) weight = Math.pow(weight, 200 / y.length);
  const out = new Array(y.length);
  let last = 0, n = 0;
  for (let i = 0; i < y.length; i++) {
    const v = y[i];
    if (v === null || !isFinite(v)) { out[i] = null; continue; }
    last = last * weight + (1 - weight) * v; n += 1;
    out[i] = last / (1 - Math.pow(weight, n));
  }
  return out;
}

function interp(xs, ys, x) {
  if (!xs.length || x < xs[0] || x > xs[xs.length - 1]) return null;
  let lo = 0, hi = xs.length - 1;
  while (hi - lo > 1) { const m = (lo + hi) >> 1; if (xs[m] <= x) lo = m; else hi = m; }
  if (xs[hi] === xs[lo]) return ys[lo];
  const t = (x - xs[lo]) / (xs[hi] - xs[lo]);
  return ys[lo] === null || ys[hi] === null ? null : ys[lo] + t * (ys[hi] - ys[lo]);
}

// Seeds of one group on a common x grid (where all of them have data): mean line and min-max band.
function groupSeries(members, key) {
  const curves = members.map((m) => m.smoothed).filter((c) => c.x.length);
  if (!curves.length) return null;
  const start = Math.max(...curves.map((c) => c.x[0])), end = Math.min(...curves.map((c) => c.x[c.x.length - 1]));
  const n = end > start ? 200 : 1;
  const x = [], y = [], lo = [], hi = [];
  for (let i = 0; i < n; i++) {
    const xv = n === 1 ? start : start + (end - start) * i / (n - 1);
    const vals = curves.map((c) => interp(c.x, c.y, xv)).filter((v) => v !== null);
    if (!vals.length) continue;
    x.push(xv); y.push(vals.reduce((a, b) => a + b, 0) / vals.length);
    lo.push(Math.min(...vals)); hi.push(Math.max(...vals));
  }
  return { x, y, lo: curves.length > 1 ? lo : null, hi: curves.length > 1 ? hi : null };
}

function renderKeys() {
  const { all, chosen } = shownKeys();
  $("keys").innerHTML = all.map((k) => `<span class="chip${chosen.has(k) ? " on" : ""}" data-key="${esc(k)}">${esc(k)}</span>`).join("") ||
    '<span class="hint">the selected runs have logged nothing yet</span>';
}
$("keys").addEventListener("click", (ev) => {
  const k = ev.target.dataset && ev.target.dataset.key;
  if (!k) return;
  state.keysTouched = true;
  if (state.chosen.has(k)) state.chosen.delete(k); else state.chosen.add(k);
  renderKeys(); pollSeries().then(() => renderCharts());
});

const tooltip = document.createElement("div");
tooltip.className = "tooltip"; tooltip.hidden = true; document.body.appendChild(tooltip);

function renderCharts() {
  renderKeys();
  const holder = $("charts");
  const { chosen } = shownKeys();
  const keys = [...chosen];
  const ids = [...state.selected].filter((id) => state.byId.has(id) && (!state.filter || state.filter.test(id)));
  for (const card of [...holder.children]) if (!chosen.has(card.dataset.key)) card.remove();
  window.dashboard.plotted = {};
  for (const key of keys) {
    let card = holder.querySelector(`.chart-card[data-key="${CSS.escape(key)}"]`);
    if (!card) {
      card = document.createElement("div");
      card.className = "chart-card"; card.dataset.key = key;
      card.innerHTML = `<h4>${esc(key)}</h4><canvas></canvas><div class="legend"></div>`;
      holder.appendChild(card);
      Chart.attachHover(card.querySelector("canvas"), tooltip);
    }
    const runs = [];
    for (const id of ids) {
      const s = state.data.get(id)?.series?.[key];
      if (!s) continue;
      const smoothed = { x: s.x, y: smooth(s.y, state.smoothing) };
      runs.push({ id, run: state.byId.get(id), raw: s, smoothed });
    }
    let series = [];
    if (state.groupSeeds) {
      const groups = new Map();
      for (const r of runs) { const g = r.run.group; if (!groups.has(g)) groups.set(g, []); groups.get(g).push(r); }
      for (const [g, members] of groups) {
        const agg = groupSeries(members, key);
        if (agg) series.push({ label: `${g} (${members.length} seed${members.length > 1 ? "s" : ""})`, color: colorOf(g), ...agg });
      }
    } else {
      series = runs.map((r) => ({
        label: r.run.name, color: colorOf(r.id), x: r.smoothed.x, y: r.smoothed.y,
        lo: state.smoothing > 0 ? null : r.raw.lo, hi: state.smoothing > 0 ? null : r.raw.hi,
        raw: state.smoothing > 0 ? { x: r.raw.x, y: r.raw.y } : null,
      }));
    }
    const canvas = card.querySelector("canvas");
    const xLabel = runs.some((r) => r.run.keys.includes("env_steps")) ? "env steps" : "step";
    Chart.draw(canvas, series, { logY: state.logY, xLabel, emptyText: ids.length ? "no data yet" : "select runs above" });
    canvas.dataset.points = String(runs.reduce((n, r) => n + r.raw.x.length, 0));
    card.querySelector(".legend").innerHTML = series.map((s) => `<span><span class="swatch" style="background:${s.color}"></span>${esc(s.label)}</span>`).join("");
    window.dashboard.plotted[key] = {
      runs: runs.map((r) => ({ run: r.id, x: r.raw.x, y: r.raw.y, points: r.raw.points, downsampled: !!r.raw.lo })),
      drawn: series.map((s) => ({ label: s.label, x: s.x, y: s.y, lo: s.lo || null, hi: s.hi || null })),
    };
  }
}

$("smoothing").oninput = (ev) => { state.smoothing = +ev.target.value; $("smoothing-value").textContent = state.smoothing.toFixed(2); renderCharts(); };
$("logy").onchange = (ev) => { state.logY = ev.target.checked; renderCharts(); };
$("group-seeds").onchange = (ev) => { state.groupSeeds = ev.target.checked; renderRuns(); renderCharts(); };
window.addEventListener("resize", () => { if (state.tab === "curves") renderCharts(); });

// ------------------------------------------------------------------------------------------ compare
function flatten(obj, prefix, out) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? prefix + "." + k : k;
    if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out); else out[key] = v;
  }
  return out;
}
const show = (v) => v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v);

async function renderCompare() {
  const ids = [...state.selected].filter((id) => state.byId.has(id));
  $("compare-hint").textContent = ids.length < 2 ? "select two or more runs to see what differs" : `${ids.length} runs; differing keys are highlighted`;
  await Promise.all(ids.filter((id) => !state.configs.has(id)).map(async (id) => {
    try { state.configs.set(id, await api("/api/config?run=" + encodeURIComponent(id))); } catch { /* gone */ }
  }));
  const cols = ids.filter((id) => state.configs.has(id));
  const flat = cols.map((id) => flatten(state.configs.get(id).config, "", {}));
  const infos = cols.map((id) => state.configs.get(id).info || {});
  const onlyDiff = $("only-diff").checked;
  const rowsOf = (dicts, section) => {
    const keys = [...new Set(dicts.flatMap((d) => Object.keys(d)))].sort();
    const rows = [];
    for (const k of keys) {
      const vals = dicts.map((d) => show(d[k]));
      const differs = new Set(vals).size > 1;
      if (onlyDiff && !differs) continue;
      rows.push(`<tr class="${differs ? "diff" : ""}" data-key="${esc(section + k)}"><td>${esc(k)}</td>${vals.map((v) => `<td>${esc(v)}</td>`).join("")}</tr>`);
    }
    return rows.join("");
  };
  const head = `<tr><th>key</th>${cols.map((id) => `<th><span class="swatch" style="background:${colorOf(id)}"></span>${esc(state.byId.get(id).name)}</th>`).join("")}</tr>`;
  const cmds = `<tr class="section"><td colspan="${cols.length + 1}">command line</td></tr><tr><td>command</td>` +
    cols.map((id) => `<td class="cmd">${esc(state.configs.get(id).command || "–")}</td>`).join("") + "</tr>";
  const errors = cols.flatMap((id) => (state.configs.get(id).errors || []).map((e) => `${state.byId.get(id).name}: ${e}`));
  $("compare").innerHTML = cols.length ? head +
    `<tr class="section"><td colspan="${cols.length + 1}">config</td></tr>` + rowsOf(flat, "config:") + cmds +
    `<tr class="section"><td colspan="${cols.length + 1}">versions and machine (info.json)</td></tr>` + rowsOf(infos, "info:") +
    (errors.length ? `<tr><td colspan="${cols.length + 1}" class="reason">${errors.map(esc).join("<br>")}</td></tr>` : "")
    : "";
}
$("only-diff").onchange = () => renderCompare();

// ------------------------------------------------------------------------------------------ watch
async function renderWatch() {
  const holder = $("watch");
  const ids = [...state.selected].filter((id) => state.byId.has(id));
  if (!ids.length) { holder.innerHTML = '<p class="hint">select runs above to see their recorded episodes</p>'; return; }
  const existing = new Map([...holder.querySelectorAll(".watch-run")].map((el) => [el.dataset.run, el]));
  holder.querySelectorAll(":scope > p").forEach((p) => p.remove());
  for (const [id, el] of existing) if (!ids.includes(id)) el.remove();
  for (const id of ids) {
    const r = state.byId.get(id);
    let el = existing.get(id);
    const sig = r.media.join("|");
    if (el && el.dataset.sig === sig) continue;
    if (!el) { el = document.createElement("div"); el.className = "watch-run"; el.dataset.run = id; holder.appendChild(el); }
    el.dataset.sig = sig;
    const media = r.media.map((m) => {
      const name = m.split("/").pop();
      const tag = /\.(mp4|webm)$/i.test(m) ? `<video src="${fileUrl(m)}" controls loop muted autoplay></video>` : `<img src="${fileUrl(m)}?t=${Date.now()}" alt="${esc(name)}">`;
      return `<figure>${tag}<figcaption>${esc(name)}</figcaption></figure>`;
    }).join("");
    el.innerHTML = `<b><span class="swatch" style="background:${colorOf(id)}"></span>${esc(r.name)}</b> ` +
      `<button type="button" class="primary" data-record="${esc(id)}">record an episode from the best checkpoint</button> ` +
      `<span class="hint" data-record-state></span>` +
      `<div class="media">${media || '<span class="hint">no recorded episodes yet</span>'}</div>`;
  }
}
$("watch").addEventListener("click", async (ev) => {
  const id = ev.target.dataset && ev.target.dataset.record;
  if (!id) return;
  const btn = ev.target, label = btn.parentElement.querySelector("[data-record-state]");
  btn.disabled = true; label.textContent = "recording…";
  try {
    await api("/api/record?run=" + encodeURIComponent(id), { method: "POST" });
    for (;;) {
      await new Promise((res) => setTimeout(res, 1000));
      const st = await api("/api/record?run=" + encodeURIComponent(id));
      if (st.state !== "recording") { label.textContent = st.message || st.state; break; }
    }
  } catch (e) { label.textContent = e.message; }
  btn.disabled = false;
  btn.closest(".watch-run").dataset.sig = "";
  await pollRuns(); renderWatch();
});

// ------------------------------------------------------------------------------------------ internals
function drawHistograms(canvas, snaps, color) {
  // TensorBoard's "offset" view: one histogram per snapshot, oldest at the top, each newer one lower and in
  // front; x is the value, each ridge's height its bin counts (scaled to its own peak).
  const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = w * dpr; canvas.height = h * dpr;
  const ctx = canvas.getContext("2d"); ctx.setTransform(dpr, 0, 0, dpr, 0, 0); ctx.clearRect(0, 0, w, h);
  ctx.font = "10px system-ui, sans-serif";
  const valid = snaps.filter((s) => s && s.s && s.s.counts && s.s.counts.length);
  if (!valid.length) { ctx.fillStyle = "#8a92a5"; ctx.fillText("no data", 10, 20); return; }
  const lo = Math.min(...valid.map((s) => s.s.lo)), hi = Math.max(...valid.map((s) => s.s.hi));
  const span = hi > lo ? hi - lo : 1;
  const every = Math.ceil(valid.length / 30);
  const shown = valid.filter((_, i) => i % every === 0 || i === valid.length - 1);
  const top = 8, bottom = 20, left = 10, right = 52, pw = w - left - right, n = shown.length;
  const peakH = Math.min(64, (h - top - bottom) * 0.5);
  const gap = n > 1 ? (h - top - bottom - peakH) / (n - 1) : 0;
  const sx = (v) => left + (v - lo) / span * pw;
  shown.forEach((snap, i) => {
    const base = top + peakH + i * gap, t = n > 1 ? i / (n - 1) : 1;
    const counts = snap.s.counts, max = Math.max(...counts) || 1, bw = (snap.s.hi - snap.s.lo) / counts.length;
    ctx.beginPath();
    ctx.moveTo(sx(snap.s.lo), base);
    counts.forEach((c, j) => ctx.lineTo(sx(snap.s.lo + (j + 0.5) * bw), base - c / max * peakH));
    ctx.lineTo(sx(snap.s.hi), base);
    ctx.closePath();
    ctx.globalAlpha = 1; ctx.fillStyle = "#fff"; ctx.fill(); // hides the ridges behind it
    ctx.globalAlpha = 0.10 + 0.30 * t; ctx.fillStyle = color; ctx.fill();
    ctx.globalAlpha = 0.35 + 0.65 * t; ctx.strokeStyle = color; ctx.lineWidth = 1; ctx.stroke();
    if (i === 0 || i === n - 1 || (n > 6 && i === Math.floor(n / 2))) {
      ctx.globalAlpha = 1; ctx.fillStyle = "#6b7385"; ctx.textAlign = "left"; ctx.textBaseline = "middle";
      ctx.fillText(Chart.fmt(snap.step), left + pw + 6, base - 2);
    }
  });
  ctx.globalAlpha = 1; ctx.fillStyle = "#6b7385"; ctx.textBaseline = "bottom";
  ctx.strokeStyle = "#b9bfcc"; ctx.beginPath(); ctx.moveTo(left, h - bottom + 2.5); ctx.lineTo(left + pw, h - bottom + 2.5); ctx.stroke();
  const ticks = [lo, hi].concat(lo < 0 && hi > 0 ? [0] : []);
  ticks.forEach((v) => { ctx.textAlign = v === lo ? "left" : v === hi ? "right" : "center"; ctx.fillText(Chart.fmt(v), sx(v), h - 2); });
  ctx.textAlign = "left"; ctx.textBaseline = "top"; ctx.fillText("step", left + pw + 6, 0);
}

function statsLine(s) {
  if (!s) return "";
  return `min ${Chart.fmt(s.min)} · max ${Chart.fmt(s.max)} · mean ${Chart.fmt(s.mean)} · std ${Chart.fmt(s.std)} · zeros ${s.zeros} · NaN ${s.nans}`;
}

async function renderInternals() {
  const select = $("internals-run");
  const ids = state.runs.map((r) => r.id);
  const current = state.focused && ids.includes(state.focused) ? state.focused : ids[0];
  select.innerHTML = ids.map((id) => `<option value="${esc(id)}" ${id === current ? "selected" : ""}>${esc(id)}</option>`).join("");
  const holder = $("internals");
  if (!current) { holder.innerHTML = '<p class="hint">no runs</p>'; return; }
  const r = state.byId.get(current);
  const q = "?run=" + encodeURIComponent(current);
  const parts = [];
  const [model, hist, cls] = await Promise.all([
    r.model ? api("/api/model" + q) : null, r.histograms ? api("/api/histograms" + q) : null,
    r.classification ? api("/api/classification" + q) : null]);
  if (model && model.model) {
    for (const net of model.model.networks || []) {
      parts.push(`<div class="panel"><h3>${esc(net.name)} <span class="count">· ${net.total_params.toLocaleString()} parameters (${net.trainable_params.toLocaleString()} trainable)</span></h3>` +
        `<table class="summary"><tr><th>layer (type)</th><th>output shape</th><th class="num">parameters</th></tr>` +
        net.layers.map((l) => `<tr><td>${esc(l.name)} <span class="count">(${esc(l.type)})</span></td><td>${esc(l.output_shape)}</td><td class="num">${l.params.toLocaleString()}</td></tr>`).join("") +
        `</table></div>`);
    }
  }
  if (hist && hist.steps.length) {
    const names = Object.keys(hist.tensors).sort();
    parts.push(`<div class="panel"><h3>Weights and gradients over training <span class="count">· ${hist.steps.length} snapshots, newest in front</span></h3>` +
      `<div class="hist-grid">` + names.flatMap((n) => ["w", "g"].map((kind) => {
        const snaps = hist.tensors[n].map((s, i) => ({ step: hist.steps[i], s: s && s[kind] }));
        if (!snaps.some((s) => s.s)) return "";
        const last = snaps.filter((s) => s.s).pop().s;
        return `<div><div><b>${esc(n)}</b> <span class="count">${kind === "w" ? "weights" : "gradients"}</span></div>` +
          `<canvas data-hist="${esc(n)}" data-kind="${kind}"></canvas><div class="stats">${statsLine(last)}</div></div>`;
      })).join("") + `</div></div>`);
  } else if (r.histograms === false) {
    parts.push(`<div class="panel hint">No weight histograms in this run. Turn them on with <code>--set experiment.histogram_every=10</code> (make run does).</div>`);
  }
  if (cls && cls.classification) parts.push(classificationHtml(cls.classification, current));
  if (!parts.length) parts.push('<p class="hint">this run wrote no model summary, histograms or classification results</p>');
  holder.innerHTML = parts.join("");
  if (!imageState.shown) { imageState.shown = true; renderImageModel(); } // its own panel, not redrawn with the run
  holder.querySelectorAll("canvas[data-hist]").forEach((c) => {
    const snaps = hist.tensors[c.dataset.hist].map((s, i) => ({ step: hist.steps[i], s: s && s[c.dataset.kind] }));
    drawHistograms(c, snaps, c.dataset.kind === "w" ? "#2f6fdf" : "#e8590c");
  });
}
$("internals-run").onchange = (ev) => { state.focused = ev.target.value; renderRuns(); renderInternals(); };

// MobileNetV2 (ImageNet) on a sample or uploaded photo: top 5 and the feature maps of a chosen block.
const imageState = { sample: "cat", layer: "features.3", upload: null, result: null, busy: false, info: null };
async function renderImageModel() {
  const el = $("image-model");
  if (!el) return;
  if (!imageState.info) { try { imageState.info = await api("/api/image_model"); } catch (e) { imageState.info = { available: false, reason: e.message, samples: [], layers: [] }; } }
  const info = imageState.info;
  if (!info.available) { el.innerHTML = `<h3>Image model: MobileNetV2 (ImageNet)</h3><p class="hint">${esc(info.reason)}</p>`; return; }
  const r = imageState.result;
  el.innerHTML = `<h3>Image model: MobileNetV2 (ImageNet) <span class="count">· feature maps of one block for a photo</span></h3>` +
    `<div class="controls"><label>photo <select id="im-sample">${info.samples.map((n) => `<option ${n === imageState.sample && !imageState.upload ? "selected" : ""}>${esc(n)}</option>`).join("")}` +
    `${imageState.upload ? `<option selected value="">${esc(imageState.upload.name)}</option>` : ""}</select></label>` +
    `<label>or upload <input type="file" id="im-file" accept="image/*"></label>` +
    `<label>layer <select id="im-layer">${info.layers.map((n) => `<option ${n === imageState.layer ? "selected" : ""}>${esc(n)}</option>`).join("")}</select></label>` +
    `<button type="button" class="primary" id="im-run" ${imageState.busy ? "disabled" : ""}>${imageState.busy ? "running…" : "run"}</button></div>` +
    (r && r.error ? `<p class="reason">${esc(r.error)}</p>` : "") +
    (r && !r.error ? `<div class="im-result"><figure class="im-input"><img src="${r.input}" alt="input"><figcaption>input (224×224)</figcaption></figure>` +
      `<table class="top5"><tr><th>top 5</th><th class="num">probability</th></tr>${r.top.map((t) =>
        `<tr><td>${esc(t.name)}</td><td class="num"><span class="bar" style="width:${Math.round(80 * t.prob)}px"></span>${(100 * t.prob).toFixed(1)}%</td></tr>`).join("")}</table></div>` +
      `<h3>${esc(r.layer)} <span class="count">· ${r.shape.join("×")} · the ${r.maps.length} most active channels</span></h3>` +
      `<div class="maps">${r.maps.map((m) => `<figure><img src="${m.png}" alt=""><figcaption>#${m.channel} · mean ${Chart.fmt(m.mean)}</figcaption></figure>`).join("")}</div>` : "");
  $("im-sample").onchange = (ev) => { imageState.sample = ev.target.value || imageState.sample; if (ev.target.value) imageState.upload = null; };
  $("im-layer").onchange = (ev) => { imageState.layer = ev.target.value; runImageModel(); };
  $("im-file").onchange = (ev) => {
    const f = ev.target.files[0]; if (!f) return;
    const reader = new FileReader();
    reader.onload = () => { imageState.upload = { name: f.name, data: reader.result }; runImageModel(); };
    reader.readAsDataURL(f);
  };
  $("im-run").onclick = runImageModel;
}
async function runImageModel() {
  imageState.busy = true; renderImageModel();
  const body = { layer: imageState.layer, ...(imageState.upload ? { image: imageState.upload.data } : { sample: imageState.sample }) };
  try { imageState.result = await api("/api/image_model", { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } }); }
  catch (e) { imageState.result = { error: e.message }; }
  imageState.busy = false; renderImageModel();
  window.dashboard.imageResult = imageState.result;
}

function classificationHtml(c, runId) {
  const k = c.labels.length, cm = c.confusion;
  const max = Math.max(1, ...cm.flat());
  const head = `<tr><th>true \\ predicted</th>${c.labels.map((l) => `<th>${esc(l)}</th>`).join("")}</tr>`;
  const body = cm.map((row, i) => `<tr><th>${esc(c.labels[i])}</th>${row.map((v, j) => {
    const a = v / max, bg = i === j ? `rgba(47,111,223,${a})` : `rgba(209,59,59,${a})`;
    return `<td style="background:${bg};color:${a > 0.55 ? "#fff" : "#1d2330"}">${v}</td>`;
  }).join("")}</tr>`).join("");
  const per = c.per_class.map((p) => `<tr><td>${esc(p.label)}</td><td class="num">${(100 * p.precision).toFixed(1)}%</td>` +
    `<td class="num">${(100 * p.recall).toFixed(1)}%</td><td class="num">${p.support}</td></tr>`).join("");
  const dir = runId + "/";
  const ex = (c.misclassified || []).filter((m) => m.image).map((m) =>
    `<figure><img src="${fileUrl(dir + m.image)}" alt=""><figcaption>${esc(m.true)} → <b>${esc(m.pred)}</b></figcaption></figure>`).join("");
  return `<div class="panel"><h3>Classification <span class="count">· accuracy ${(100 * c.accuracy).toFixed(1)}% on ${c.count} examples` +
    `${c.split ? " (" + esc(c.split) + ")" : ""}</span></h3><div style="display:flex;gap:28px;flex-wrap:wrap">` +
    `<div><h3>Confusion matrix</h3><table class="cm">${head}${body}</table></div>` +
    `<div><h3>Per class</h3><table><tr><th>class</th><th class="num">precision</th><th class="num">recall</th><th class="num">support</th></tr>${per}</table></div></div>` +
    (ex ? `<h3>Misclassified examples</h3><div class="examples">${ex}</div>` : "") + `</div>`;
}

// ------------------------------------------------------------------------------------------ tabs
function refreshViews(userAction = true) {
  if (state.tab === "curves") { if (userAction) pollSeries().then(renderCharts); else renderCharts(); }
  else if (state.tab === "compare") renderCompare();
  else if (state.tab === "watch") renderWatch();
  else if (state.tab === "internals") {
    // Redrawn when asked, or when the shown run wrote more (new histograms while it trains).
    const r = state.byId.get(state.focused), sig = r ? `${r.id}:${r.lines}:${r.histograms}:${r.model}:${r.classification}` : "";
    if (userAction || sig !== state.internalsSig) { state.internalsSig = sig; renderInternals(); }
  }
}
$("tabs").addEventListener("click", (ev) => {
  const tab = ev.target.dataset && ev.target.dataset.tab;
  if (!tab) return;
  state.tab = tab;
  for (const b of $("tabs").children) b.classList.toggle("active", b.dataset.tab === tab);
  for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== "tab-" + tab;
  refreshViews();
});

poll();
