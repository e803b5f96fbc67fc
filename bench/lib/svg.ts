// Hand-rolled SVG bar charts: no dependency, deterministic output, readable on GitHub.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { RESULTS_DIR } from './common.js';

export interface BarChart {
  title: string;
  /** One row of bars per group (e.g. one per model). */
  groups: string[];
  /** One bar per series in every group. values[s][g] (null = not measured). */
  series: Array<{ name: string; values: Array<number | null>; color?: string }>;
  /** Axis label under the bars. */
  unit: string;
  /** Vertical reference lines (a target, parity). */
  marks?: Array<{ value: number; label: string }>;
  /** Log scale for values spanning orders of magnitude. */
  log?: boolean;
  /** Text drawn after each bar (defaults to the value). */
  labels?: Array<Array<string | null>>;
}

const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function num(x: number): string {
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  return Number(x.toPrecision(3)).toString();
}

/** Renders the chart and writes it to bench/results/<file>; returns the file name. */
export function writeBarChart(file: string, chart: BarChart): string {
  const barH = 16;
  const gap = 4;
  const groupGap = 14;
  // Room for the longest group label (about 6.6 px per character at 12 px Helvetica).
  const left = Math.round(Math.max(90, Math.min(360, 16 + 6.6 * Math.max(...chart.groups.map((g) => g.length)))));
  const right = 130;
  const plotW = 480;
  const width = left + plotW + right;
  const top = 46 + (chart.series.length > 1 ? 18 : 0);
  const groupH = chart.series.length * (barH + gap) - gap;
  const height = top + chart.groups.length * (groupH + groupGap) + 40;

  const values = chart.series.flatMap((s) => s.values).filter((v): v is number => v !== null && Number.isFinite(v) && v > 0);
  const markValues = (chart.marks ?? []).map((m) => m.value);
  let max = Math.max(...values, ...markValues, 1e-9) * 1.08;
  let min = chart.log ? Math.min(...values, ...markValues) / 1.5 : 0;
  if (chart.log) {
    min = 10 ** Math.floor(Math.log10(min));
    max = 10 ** Math.ceil(Math.log10(max));
  }
  const x = (v: number): number => {
    if (chart.log) return left + (plotW * (Math.log10(Math.max(v, min)) - Math.log10(min))) / (Math.log10(max) - Math.log10(min));
    return left + (plotW * v) / max;
  };

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(chart.title)}</text>`);
  if (chart.series.length > 1) {
    let lx = left;
    chart.series.forEach((s, i) => {
      const color = s.color ?? PALETTE[i % PALETTE.length]!;
      out.push(`<rect x="${lx}" y="34" width="12" height="12" fill="${color}"/>`);
      out.push(`<text x="${lx + 16}" y="44">${esc(s.name)}</text>`);
      lx += 24 + s.name.length * 7;
    });
  }
  // Grid and axis ticks.
  const ticks: number[] = [];
  if (chart.log) for (let t = min; t <= max * 1.0001; t *= 10) ticks.push(t);
  else {
    const step = 10 ** Math.floor(Math.log10(max / 5));
    const nice = [1, 2, 5, 10].map((k) => k * step).find((s) => max / s <= 6) ?? step * 10;
    for (let t = 0; t <= max; t += nice) ticks.push(t);
  }
  const bottom = height - 40;
  for (const t of ticks) {
    const tx = x(t);
    out.push(`<line x1="${tx.toFixed(1)}" y1="${top - 6}" x2="${tx.toFixed(1)}" y2="${bottom}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${tx.toFixed(1)}" y="${bottom + 14}" text-anchor="middle" fill="#555">${num(t)}</text>`);
  }
  out.push(`<text x="${left + plotW / 2}" y="${bottom + 32}" text-anchor="middle" fill="#333">${esc(chart.unit)}</text>`);
  // Bars.
  chart.groups.forEach((g, gi) => {
    const gy = top + gi * (groupH + groupGap);
    out.push(`<text x="${left - 8}" y="${gy + groupH / 2 + 4}" text-anchor="end">${esc(g)}</text>`);
    chart.series.forEach((s, si) => {
      const v = s.values[gi];
      const y = gy + si * (barH + gap);
      const color = s.color ?? PALETTE[si % PALETTE.length]!;
      const label = chart.labels?.[si]?.[gi] ?? (v === null || v === undefined ? 'n/a' : num(v));
      if (v === null || v === undefined || !Number.isFinite(v)) {
        out.push(`<text x="${left + 4}" y="${y + barH - 4}" fill="#999">${esc(label)}</text>`);
        return;
      }
      const w = Math.max(1, x(v) - left);
      out.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${color}"><title>${esc(`${g} / ${s.name}: ${label}`)}</title></rect>`);
      out.push(`<text x="${(left + w + 4).toFixed(1)}" y="${y + barH - 4}" fill="#333">${esc(label)}</text>`);
    });
  });
  for (const m of chart.marks ?? []) {
    const mx = x(m.value);
    out.push(`<line x1="${mx.toFixed(1)}" y1="${top - 10}" x2="${mx.toFixed(1)}" y2="${bottom}" stroke="#c00" stroke-dasharray="4 3"/>`);
    out.push(`<text x="${mx.toFixed(1)}" y="${top - 12}" text-anchor="middle" fill="#c00" font-size="11">${esc(m.label)}</text>`);
  }
  out.push('</svg>');
  writeFileSync(path.join(RESULTS_DIR, file), out.join('\n') + '\n');
  return file;
}
