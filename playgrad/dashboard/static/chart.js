// A small canvas line chart for the dashboard: several series, min-max bands, faint raw lines behind
// smoothed ones, linear or log y, "nice" ticks, and a hover read-out. No dependencies.
"use strict";

const Chart = (() => {
  const PAD = { left: 58, right: 14, top: 10, bottom: 34 };

  // Round tick steps (1, 2, 2.5, 5 x 10^k) so labels read like a person chose them.
  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) { const d = Math.abs(lo) || 1; lo -= d / 2; hi += d / 2; }
    const raw = (hi - lo) / Math.max(1, count);
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
    const ticks = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toPrecision(12));
    return { lo: Math.floor(lo / step) * step, hi: Math.ceil(hi / step) * step, ticks };
  }

  function logTicks(lo, hi) {
    const a = Math.floor(Math.log10(lo)), b = Math.ceil(Math.log10(hi));
    const ticks = [];
    for (let e = a; e <= b; e++) ticks.push(Math.pow(10, e));
    return { lo: Math.pow(10, a), hi: Math.pow(10, Math.max(b, a + 1)), ticks };
  }

  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(a >= 1e5 ? 0 : 1) + "k";
    if (a >= 100) return v.toFixed(0);
    if (a >= 1) return v.toFixed(2).replace(/\.?0+$/, "");
    if (a === 0) return "0";
    if (a >= 1e-3) return String(+v.toPrecision(2)); // 0.5, not 0.50
    return v.toExponential(1);
  }

  // series: [{label, color, x, y, lo?, hi?, raw?: {x, y}}]; opts: {logY, xLabel}
  function draw(canvas, series, opts) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const ok = (v) => v !== null && isFinite(v) && (!opts.logY || v > 0);
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const s of series) {
      const parts = [[s.x, s.y], [s.x, s.lo], [s.x, s.hi]];
      if (s.raw) parts.push([s.raw.x, s.raw.y]);
      for (const [xs, ys] of parts) {
        if (!ys) continue;
        for (let i = 0; i < ys.length; i++) {
          if (!ok(ys[i])) continue;
          if (xs[i] < x0) x0 = xs[i]; if (xs[i] > x1) x1 = xs[i];
          if (ys[i] < y0) y0 = ys[i]; if (ys[i] > y1) y1 = ys[i];
        }
      }
    }
    const state = { series, opts, empty: !(x1 >= x0) };
    canvas._chart = state;
    ctx.font = "11px system-ui, sans-serif";
    if (state.empty) {
      ctx.fillStyle = "#8a92a5"; ctx.textAlign = "center";
      ctx.fillText(opts.emptyText || "no data yet", w / 2, h / 2);
      return state;
    }
    const xt = niceTicks(x0 === x1 ? x0 - 1 : x0, x1, Math.max(2, Math.floor(w / 110)));
    xt.lo = Math.max(xt.lo, Math.min(0, x0)); // steps start at 0: no axis left of it
    if (x1 > xt.lo) xt.hi = x1; // the last point at the right edge, not a tick's worth of empty space
    const yt = opts.logY ? logTicks(y0, y1) : niceTicks(y0, y1, Math.max(2, Math.floor(h / 50)));
    const pw = w - PAD.left - PAD.right, ph = h - PAD.top - PAD.bottom;
    const sx = (v) => PAD.left + (v - xt.lo) / (xt.hi - xt.lo) * pw;
    const fy = opts.logY ? (v) => Math.log10(v) : (v) => v;
    const sy = (v) => PAD.top + ph - (fy(v) - fy(yt.lo)) / (fy(yt.hi) - fy(yt.lo)) * ph;
    Object.assign(state, { sx, sy, xt, yt, pw, ph, w, h });

    // grid and tick labels
    ctx.strokeStyle = "#eceef3"; ctx.lineWidth = 1; ctx.fillStyle = "#6b7385";
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (const t of yt.ticks) {
      if (t < yt.lo || t > yt.hi) continue;
      const y = Math.round(sy(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(PAD.left, y); ctx.lineTo(PAD.left + pw, y); ctx.stroke();
      ctx.fillText(fmt(t), PAD.left - 6, y);
    }
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    for (const t of xt.ticks) {
      if (t < xt.lo || t > xt.hi) continue;
      const x = Math.round(sx(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, PAD.top); ctx.lineTo(x, PAD.top + ph); ctx.stroke();
      ctx.fillText(fmt(t), x, PAD.top + ph + 5);
    }
    ctx.strokeStyle = "#b9bfcc";
    ctx.beginPath(); ctx.moveTo(PAD.left + 0.5, PAD.top); ctx.lineTo(PAD.left + 0.5, PAD.top + ph + 0.5);
    ctx.lineTo(PAD.left + pw, PAD.top + ph + 0.5); ctx.stroke();
    if (opts.xLabel) { ctx.fillStyle = "#8a92a5"; ctx.fillText(opts.xLabel, PAD.left + pw / 2, h - 13); }

    ctx.save();
    ctx.beginPath(); ctx.rect(PAD.left, PAD.top - 1, pw + 1, ph + 2); ctx.clip();
    const line = (xs, ys, color, width, alpha) => {
      ctx.globalAlpha = alpha; ctx.strokeStyle = color; ctx.lineWidth = width; ctx.lineJoin = "round";
      ctx.beginPath();
      let pen = false;
      for (let i = 0; i < ys.length; i++) {
        if (!ok(ys[i])) { pen = false; continue; }
        const px = sx(xs[i]), py = sy(ys[i]);
        if (pen) ctx.lineTo(px, py); else { ctx.moveTo(px, py); pen = true; }
      }
      ctx.stroke();
      if (ys.length === 1 && ok(ys[0])) { // a single point: a dot, or nothing would show
        ctx.fillStyle = color; ctx.beginPath(); ctx.arc(sx(xs[0]), sy(ys[0]), 2.5, 0, 7); ctx.fill();
      }
    };
    for (const s of series) { // bands first, under every line
      if (!s.lo || !s.hi) continue;
      ctx.globalAlpha = 0.16; ctx.fillStyle = s.color; ctx.beginPath();
      let started = false;
      const idx = [];
      for (let i = 0; i < s.x.length; i++) if (ok(s.lo[i]) && ok(s.hi[i])) idx.push(i);
      for (const i of idx) { const px = sx(s.x[i]), py = sy(s.hi[i]); if (started) ctx.lineTo(px, py); else { ctx.moveTo(px, py); started = true; } }
      for (const i of idx.reverse()) ctx.lineTo(sx(s.x[i]), sy(s.lo[i]));
      ctx.closePath(); ctx.fill();
    }
    for (const s of series) if (s.raw) line(s.raw.x, s.raw.y, s.color, 1, s.raw.x.length > 500 ? 0.12 : 0.22);
    for (const s of series) line(s.x, s.y, s.color, 1.8, 1);
    ctx.restore();
    ctx.globalAlpha = 1;
    return state;
  }

  // Nearest point of each series to the mouse's x, in a floating box.
  function attachHover(canvas, tooltip) {
    canvas.addEventListener("mousemove", (ev) => {
      const st = canvas._chart;
      if (!st || st.empty) { tooltip.hidden = true; return; }
      const r = canvas.getBoundingClientRect();
      const mx = ev.clientX - r.left;
      const xv = st.xt.lo + (mx - PAD.left) / st.pw * (st.xt.hi - st.xt.lo);
      const rows = [];
      for (const s of st.series) {
        let best = -1, bd = Infinity;
        for (let i = 0; i < s.x.length; i++) { const d = Math.abs(s.x[i] - xv); if (d < bd) { bd = d; best = i; } }
        if (best >= 0) rows.push(`<span style="color:${s.color}">&#9632;</span> ${s.label}: <b>${fmt(s.y[best])}</b> @ ${fmt(s.x[best])}`);
      }
      if (!rows.length) { tooltip.hidden = true; return; }
      tooltip.innerHTML = rows.join("<br>");
      tooltip.hidden = false;
      tooltip.style.left = (ev.clientX + 14) + "px";
      tooltip.style.top = (ev.clientY + 10) + "px";
    });
    canvas.addEventListener("mouseleave", () => { tooltip.hidden = true; });
  }

  return { draw, attachHover, fmt, niceTicks };
})();
