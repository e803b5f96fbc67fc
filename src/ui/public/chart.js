// The run chart: uPlot (served from node_modules, no network) with two panels sharing the step
// axis — losses and validation accuracy on top, the learning rate below — plus what uPlot does not
// draw by itself: the machine's states as bands with text labels, checkpoints as markers (the best
// one highlighted), and the selected event as a line. All runs are drawn on one absolute step axis
// (a branch's step 0 is its origin.step on its parent's axis).
/* global uPlot */

export const STATE_COLORS = {
  idle: '#e5e7eb',
  warmup: '#fde68a',
  training: '#bfdbfe',
  checkpointing: '#ddd6fe',
  plateau: '#fbcfe8',
  stopped: '#d1d5db',
  exported: '#bbf7d0',
};

const RUN_COLORS = ['#1d4ed8', '#7c3aed', '#0e7490', '#be123c', '#4d7c0f', '#a16207', '#475569'];
const BAND_ROW = 16; // css px of the state label strip
const CKPT_ROW = 16; // css px of the checkpoint label strip
const TOP_PAD = BAND_ROW + CKPT_ROW + 4;

export function runColor(i) {
  return RUN_COLORS[i % RUN_COLORS.length];
}

function num(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'string') return null; // "NaN", "Infinity": not drawable
  return Number.isFinite(v) ? v : null;
}

/**
 * Bands of a run in its own steps: [{state, from, to, fromSeq}], zero-width states kept (the
 * caller decides what to draw); the last one is open-ended at the run's current step.
 */
export function bandsOf(d) {
  const out = [];
  let cur = { state: 'idle', from: 0, fromSeq: 0 };
  for (const t of d.transitions) {
    if (t.to === cur.state) continue;
    out.push({ state: cur.state, from: cur.from, to: t.step, fromSeq: cur.fromSeq });
    cur = { state: t.to, from: t.step, fromSeq: t.seq };
  }
  const last = d.steps.step.length ? d.steps.step[d.steps.step.length - 1] : 0;
  out.push({ state: cur.state, from: cur.from, to: Math.max(cur.from, last), fromSeq: cur.fromSeq, open: true });
  return out;
}

/** Bands to draw: zero-width ones dropped (checkpoints have their own markers), neighbours of the
 * same state merged, the final state kept (stopped/exported show as a tag at the end). */
export function visibleBands(d) {
  const raw = bandsOf(d);
  const out = [];
  raw.forEach((b, i) => {
    const isLast = i === raw.length - 1;
    if (b.to <= b.from && !isLast) return;
    const prev = out[out.length - 1];
    if (prev && prev.state === b.state && prev.to === b.from) prev.to = b.to;
    else out.push({ ...b });
  });
  return out;
}

/**
 * model: { runs: [{ runId, label, originStep, primary, steps, evals, checkpoints, transitions,
 *          best (checkpoint index or null), stopReason }], selectedAbs (number|null) }
 */
function buildData(model) {
  const xsSet = new Set();
  for (const r of model.runs) {
    for (const s of r.steps.step) xsSet.add(r.originStep + s);
    for (const e of r.evals) xsSet.add(r.originStep + e.step);
    for (const c of r.checkpoints) xsSet.add(r.originStep + c.step);
    xsSet.add(r.originStep);
  }
  const xs = [...xsSet].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const top = [xs];
  const bottom = [xs];
  for (const r of model.runs) {
    const loss = new Array(xs.length).fill(null);
    const lr = new Array(xs.length).fill(null);
    r.steps.step.forEach((s, i) => {
      const k = index.get(r.originStep + s);
      loss[k] = num(r.steps.loss[i]);
      lr[k] = r.steps.lr[i];
    });
    const vloss = new Array(xs.length).fill(null);
    const vacc = new Array(xs.length).fill(null);
    for (const e of r.evals) {
      const k = index.get(r.originStep + e.step);
      vloss[k] = num(e.valLoss);
      vacc[k] = num(e.valAccuracy);
    }
    top.push(loss, vloss);
    if (r.primary) top.push(vacc);
    bottom.push(lr);
  }
  return { top, bottom };
}

function seriesFor(model) {
  const top = [{ label: 'step' }];
  const bottom = [{ label: 'step' }];
  model.runs.forEach((r, i) => {
    const color = runColor(i);
    const dash = r.primary ? undefined : [6, 4];
    const name = r.primary ? '' : ` · ${r.label}`;
    top.push({
      label: `train loss${name}`,
      scale: 'loss',
      stroke: color,
      width: r.primary ? 1.5 : 1,
      dash,
      spanGaps: true,
      points: { show: false },
      value: (u, v) => (v === null || v === undefined ? '–' : v.toPrecision(4)),
    });
    top.push({
      label: `val loss${name}`,
      scale: 'loss',
      stroke: r.primary ? '#ea580c' : color,
      width: 2,
      dash: [2, 3],
      spanGaps: true,
      points: { show: true, size: 7, fill: r.primary ? '#ea580c' : color },
      value: (u, v) => (v === null || v === undefined ? '–' : v.toPrecision(4)),
    });
    if (r.primary) {
      top.push({
        label: 'val accuracy',
        scale: 'acc',
        stroke: '#15803d',
        width: 2,
        spanGaps: true,
        points: { show: true, size: 7, fill: '#15803d' },
        value: (u, v) => (v === null || v === undefined ? '–' : v.toFixed(3)),
      });
    }
    bottom.push({
      label: `learning rate${name}`,
      scale: 'lr',
      stroke: color,
      width: r.primary ? 1.5 : 1,
      dash,
      spanGaps: true,
      paths: uPlot.paths.stepped({ align: 1 }),
      points: { show: false },
      value: (u, v) => (v === null || v === undefined ? '–' : String(+v.toPrecision(3))),
    });
  });
  return { top, bottom };
}

/** Grid lines of a log axis at powers of ten only (and the ends when the range is within one decade). */
function logSplits(min, max) {
  if (!(min > 0) || !(max > 0)) return [];
  const out = [];
  for (let e = Math.ceil(Math.log10(min) - 1e-9); e <= Math.floor(Math.log10(max) + 1e-9); e += 1) out.push(10 ** e);
  if (out.length < 2) return [min, max];
  return out;
}

function textWidth(ctx, text) {
  return ctx.measureText(text).width;
}

export class RunChart {
  constructor(topEl, bottomEl, handlers) {
    this.topEl = topEl;
    this.bottomEl = bottomEl;
    this.handlers = handlers; // { onPick({absStep, checkpoint}), onHover(absStep|null) }
    this.model = null;
    this.key = '';
    this.top = null;
    this.bottom = null;
    this.zoomed = false;
    this.sync = uPlot.sync('retrace-steps');
  }

  width() {
    return Math.max(400, this.topEl.parentElement.clientWidth - 2);
  }

  destroy() {
    this.top?.destroy();
    this.bottom?.destroy();
    this.top = this.bottom = null;
  }

  /** Redraws with a new model; keeps the zoom while only data changed. */
  update(model) {
    this.model = model;
    const key = model.runs.map((r) => `${r.runId}:${r.primary}`).join('|');
    const data = buildData(model);
    const primary = model.runs.find((r) => r.primary);
    this.topEl.dataset.points = String(primary ? primary.steps.step.length : 0);
    // When a chart was first drawn with points, in ms since the page's navigation (the dashboard
    // benchmark reads it).
    if (primary && primary.steps.step.length > 0 && !this.topEl.dataset.drawnAt) this.topEl.dataset.drawnAt = String(Math.round(performance.now()));
    this.topEl.dataset.runs = model.runs.map((r) => r.runId).join(',');
    this.topEl.dataset.checkpoints = String(primary ? primary.checkpoints.length : 0);
    this.topEl.dataset.best = primary && primary.best !== null ? String(primary.best) : '';
    this.topEl.dataset.bands = JSON.stringify(primary ? visibleBands(primary).map((b) => ({ state: b.state, from: b.from, to: b.to })) : []);
    if (key !== this.key || !this.top) {
      this.key = key;
      this.zoomed = false;
      this.create(data);
    } else {
      this.top.setData(data.top, !this.zoomed);
      this.bottom.setData(data.bottom, !this.zoomed);
      if (this.zoomed) {
        this.top.redraw(false, false);
        this.bottom.redraw(false, false);
      }
    }
  }

  setSelected(absStep) {
    if (!this.model) return;
    this.model.selectedAbs = absStep;
    this.topEl.dataset.selectedStep = absStep === null ? '' : String(absStep);
    this.top?.redraw(false, false);
    this.bottom?.redraw(false, false);
  }

  resize() {
    if (!this.top) return;
    const w = this.width();
    this.top.setSize({ width: w, height: this.top.height });
    this.bottom.setSize({ width: w, height: this.bottom.height });
  }

  create(data) {
    this.destroy();
    const series = seriesFor(this.model);
    const self = this;
    const xAxis = {
      scale: 'x',
      stroke: '#374151',
      grid: { stroke: '#eef0f3' },
      ticks: { stroke: '#d1d5db' },
      size: 30,
    };
    const cursor = {
      sync: { key: this.sync.key, setSeries: false },
      drag: { x: true, y: false, setScale: true },
      points: { size: 6 },
      focus: { prox: 16 },
    };
    const hooks = {
      setScale: [
        (u, key) => {
          if (key !== 'x') return;
          const xs = u.data[0];
          if (!xs.length) return;
          this.zoomed = u.scales.x.min > xs[0] || u.scales.x.max < xs[xs.length - 1];
        },
      ],
    };
    this.top = new uPlot(
      {
        width: this.width(),
        height: 270,
        padding: [TOP_PAD, 8, 0, 0],
        scales: { x: { time: false }, loss: { auto: true }, acc: { range: [0, 1] } },
        axes: [
          { ...xAxis, label: '', labelSize: 0 },
          { scale: 'loss', label: 'loss', labelSize: 18, size: 52, stroke: '#374151', grid: { stroke: '#eef0f3' }, ticks: { stroke: '#d1d5db' } },
          { scale: 'acc', side: 1, label: 'val accuracy', labelSize: 18, size: 52, stroke: '#15803d', grid: { show: false }, ticks: { stroke: '#d1d5db' } },
        ],
        series: series.top,
        cursor,
        legend: { show: true, live: true },
        hooks: {
          ...hooks,
          drawClear: [(u) => self.drawBands(u)],
          draw: [(u) => self.drawMarkers(u, true)],
          setCursor: [(u) => self.handlers.onHover?.(u.cursor.idx === null || u.cursor.idx === undefined ? null : u.data[0][u.cursor.idx])],
        },
      },
      data.top,
      this.topEl,
    );
    this.bottom = new uPlot(
      {
        width: this.width(),
        height: 96,
        padding: [6, 8, 0, 0],
        scales: { x: { time: false }, lr: { distr: 3 } },
        axes: [
          { ...xAxis, label: 'step', labelSize: 16 },
          {
            scale: 'lr',
            label: 'lr',
            labelSize: 18,
            size: 52,
            stroke: '#374151',
            grid: { stroke: '#eef0f3' },
            ticks: { stroke: '#d1d5db' },
            splits: (u, axisIdx, min, max) => logSplits(min, max),
            values: (u, vals) => vals.map((v) => (v === null ? '' : String(+v.toPrecision(2)))),
          },
          { scale: 'lr', side: 1, size: 52, show: true, grid: { show: false }, ticks: { show: false }, values: () => [] },
        ],
        series: series.bottom,
        cursor,
        // Same colours as the loss of each run above; the values show in the hover line.
        legend: { show: false },
        hooks: { ...hooks, draw: [(u) => self.drawMarkers(u, false)] },
      },
      data.bottom,
      this.bottomEl,
    );
    for (const u of [this.top, this.bottom]) this.listenForPicks(u);
  }

  listenForPicks(u) {
    let down = null;
    u.over.addEventListener('mousedown', (e) => {
      down = { x: e.clientX, y: e.clientY };
    });
    u.over.addEventListener('click', (e) => {
      if (down && Math.hypot(e.clientX - down.x, e.clientY - down.y) > 4) return; // a drag (zoom)
      const left = u.cursor.left;
      if (left === undefined || left < 0) return;
      const absStep = Math.round(u.posToVal(left, 'x'));
      // A checkpoint marker within 7 px of the click wins over the step under it.
      let checkpoint = null;
      let bestDist = 7;
      const primary = this.model.runs.find((r) => r.primary);
      for (const c of primary?.checkpoints ?? []) {
        const dist = Math.abs(u.valToPos(primary.originStep + c.step, 'x') - left);
        if (dist <= bestDist) {
          bestDist = dist;
          checkpoint = c;
        }
      }
      this.handlers.onPick?.({ absStep, checkpoint });
    });
    u.over.addEventListener('dblclick', () => {
      this.zoomed = false;
    });
  }

  /** State bands of the primary run: a faint fill through the plot and a labelled strip on top. */
  drawBands(u) {
    const primary = this.model?.runs.find((r) => r.primary);
    if (!primary) return;
    const ctx = u.ctx;
    const pr = uPlot.pxRatio;
    const { top, height, left, width } = u.bbox;
    const stripTop = top - TOP_PAD * pr + 1 * pr;
    const stripH = (BAND_ROW - 2) * pr;
    ctx.save();
    ctx.font = `${11 * pr}px system-ui, sans-serif`;
    ctx.textBaseline = 'middle';
    let labelRight = -Infinity;
    for (const b of visibleBands(primary)) {
      const x0 = Math.max(left, u.valToPos(primary.originStep + b.from, 'x', true));
      let x1 = Math.min(left + width, u.valToPos(primary.originStep + b.to, 'x', true));
      if (x1 < left || x0 > left + width) continue;
      const zero = b.to <= b.from;
      if (zero) {
        // A final state reached at its last step (stopped, exported): a tag at the end.
        const text = b.state === 'stopped' && primary.stopReason ? `stopped (${primary.stopReason})` : b.state;
        const w = textWidth(ctx, text) + 8 * pr;
        const xr = Math.min(left + width, x0 + w / 2);
        const xl = Math.max(left, xr - w);
        ctx.fillStyle = STATE_COLORS[b.state] ?? '#e5e7eb';
        ctx.fillRect(xl, stripTop, xr - xl, stripH);
        ctx.strokeStyle = '#6b7280';
        ctx.lineWidth = 1 * pr;
        ctx.strokeRect(xl, stripTop, xr - xl, stripH);
        ctx.fillStyle = '#111827';
        ctx.textAlign = 'center';
        ctx.fillText(text, (xl + xr) / 2, stripTop + stripH / 2);
        labelRight = xr;
        continue;
      }
      x1 = Math.max(x1, x0 + 3 * pr);
      ctx.globalAlpha = 0.28;
      ctx.fillStyle = STATE_COLORS[b.state] ?? '#e5e7eb';
      ctx.fillRect(x0, top, x1 - x0, height);
      ctx.globalAlpha = 1;
      ctx.fillRect(x0, stripTop, x1 - x0, stripH);
      ctx.strokeStyle = '#ffffff';
      ctx.lineWidth = 1 * pr;
      ctx.beginPath();
      ctx.moveTo(x0, stripTop);
      ctx.lineTo(x0, stripTop + stripH);
      ctx.stroke();
      // The label: centred in its band when it fits, else just right of it if that space is free.
      const text = b.state;
      const tw = textWidth(ctx, text);
      let tx = (x0 + x1) / 2 - tw / 2;
      if (tw + 4 * pr > x1 - x0) tx = x0 + 2 * pr;
      if (tx < labelRight + 4 * pr) continue;
      ctx.fillStyle = '#111827';
      ctx.textAlign = 'left';
      ctx.fillText(text, tx, stripTop + stripH / 2);
      labelRight = tx + tw;
    }
    ctx.restore();
  }

  /** Checkpoints of the primary run (labelled in the top panel, best highlighted) and the selection. */
  drawMarkers(u, labels) {
    const primary = this.model?.runs.find((r) => r.primary);
    if (!primary) return;
    const ctx = u.ctx;
    const pr = uPlot.pxRatio;
    const { top, height, left, width } = u.bbox;
    ctx.save();
    ctx.font = `${11 * pr}px system-ui, sans-serif`;
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'center';
    const rowY = top - (CKPT_ROW / 2 + 2) * pr;
    let labelRight = -Infinity;
    const ordered = [...primary.checkpoints].sort((a, b) => (a.index === primary.best ? 1 : 0) - (b.index === primary.best ? 1 : 0));
    for (const c of ordered) {
      const x = u.valToPos(primary.originStep + c.step, 'x', true);
      if (x < left - 1 || x > left + width + 1) continue;
      const best = c.kind !== 'interrupt' && c.index === primary.best;
      ctx.strokeStyle = best ? '#b45309' : '#6b7280';
      ctx.lineWidth = (best ? 2 : 1) * pr;
      ctx.setLineDash(best ? [] : [3 * pr, 3 * pr]);
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + height);
      ctx.stroke();
      ctx.setLineDash([]);
      if (!labels) continue;
      const text = best ? `★ C${c.index} best` : c.kind === 'interrupt' ? `C${c.index} int.` : `C${c.index}`;
      const tw = textWidth(ctx, text) + 6 * pr;
      // Markers: a diamond on the axis top, the best one larger and filled.
      ctx.fillStyle = best ? '#f59e0b' : '#ffffff';
      ctx.strokeStyle = best ? '#92400e' : '#374151';
      ctx.lineWidth = 1 * pr;
      const r = (best ? 6 : 4.5) * pr;
      ctx.beginPath();
      ctx.moveTo(x, top - r);
      ctx.lineTo(x + r, top);
      ctx.lineTo(x, top + r);
      ctx.lineTo(x - r, top);
      ctx.closePath();
      ctx.fill();
      ctx.stroke();
      let tx = x;
      if (tx - tw / 2 < left) tx = left + tw / 2;
      if (tx + tw / 2 > left + width) tx = left + width - tw / 2;
      if (!best && tx - tw / 2 < labelRight) continue;
      if (best) {
        ctx.fillStyle = '#fef3c7';
        ctx.fillRect(tx - tw / 2, rowY - 7 * pr, tw, 14 * pr);
      }
      ctx.fillStyle = best ? '#78350f' : '#374151';
      ctx.fillText(text, tx, rowY);
      labelRight = Math.max(labelRight, tx + tw / 2);
    }
    const sel = this.model.selectedAbs;
    if (sel !== null && sel !== undefined) {
      const x = u.valToPos(sel, 'x', true);
      if (x >= left - 1 && x <= left + width + 1) {
        ctx.strokeStyle = '#111827';
        ctx.lineWidth = 2 * pr;
        ctx.beginPath();
        ctx.moveTo(x, top);
        ctx.lineTo(x, top + height);
        ctx.stroke();
      }
    }
    ctx.restore();
  }
}
