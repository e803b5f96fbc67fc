// Shared by every benchmark: where things go, statistics, tables, result files, the machine.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (the folder with retrace's package.json), from dist/bench/lib or bench/lib. */
export const ROOT: string = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++, dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'retrace') return dir;
  }
  throw new Error('bench: cannot find the retrace repository root');
})();

export const RESULTS_DIR = path.join(ROOT, 'bench', 'results');
/** Scratch stores live on the project's disk (not a tmpfs), so store and raw writes hit the same device. */
export const WORK_DIR = process.env.RETRACE_BENCH_DIR ?? path.join(ROOT, 'bench', '.work');

export function scratchDir(prefix: string): string {
  mkdirSync(WORK_DIR, { recursive: true });
  return mkdtempSync(path.join(WORK_DIR, `${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function spread(xs: readonly number[]): { median: number; min: number; max: number; n: number } {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

/** Number formatting for tables: 3 significant digits, thousands kept whole. */
export function fmt(x: number | null | undefined, digits = 3): string {
  if (x === null || x === undefined || Number.isNaN(x)) return 'n/a';
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  if (a === 0) return '0';
  return Number(x.toPrecision(digits)).toString();
}

export function fmtBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${fmt(v)} ${units[i]}`;
}

export function fmtPct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

export interface Table {
  title: string;
  headers: string[];
  rows: string[][];
}

/** Prints a table aligned for a terminal. */
export function printTable(t: Table): void {
  const widths = t.headers.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(`\n${t.title}`);
  console.log(line(t.headers));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of t.rows) console.log(line(r));
}

export interface Target {
  what: string;
  target: string;
  measured: string;
  /** null: reported, no pass/fail. */
  met: boolean | null;
}

export interface Chart {
  /** File name under bench/results/. */
  file: string;
  alt: string;
}

/** What a benchmark writes to bench/results/<name>.json; docs/benchmarks.md is generated from it. */
export interface BenchResult {
  name: string;
  title: string;
  /** One paragraph: what is measured and how. */
  method: string;
  tables: Table[];
  targets: Target[];
  charts: Chart[];
  /** Findings and explanations, one markdown paragraph each. */
  notes: string[];
  /** Raw numbers for anyone who wants to recompute. */
  data: unknown;
  seconds?: number;
  machine?: MachineInfo;
  finishedAt?: string;
}

export function writeResult(result: BenchResult, startedAt: number): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const out: BenchResult = { ...result, seconds: Math.round((performance.now() - startedAt) / 100) / 10, machine: machineInfo(), finishedAt: new Date().toISOString() };
  writeFileSync(path.join(RESULTS_DIR, `${result.name}.json`), JSON.stringify(out, null, 2) + '\n');
  for (const t of result.tables) printTable(t);
  if (result.targets.length) {
    console.log('');
    for (const t of result.targets) console.log(`${t.met === null ? 'REPORT' : t.met ? 'MET   ' : 'MISSED'} ${t.what}: target ${t.target}, measured ${t.measured}`);
  }
  console.log(`\n[${result.name}] wrote bench/results/${result.name}.json in ${out.seconds} s`);
}

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGB: number;
  node: string;
  platform: string;
  kernel: string;
  loadAverage: number[];
  filesystem: string;
}

export function machineInfo(): MachineInfo {
  let filesystem = 'unknown';
  try {
    mkdirSync(WORK_DIR, { recursive: true });
    filesystem = execFileSync('df', ['-PT', WORK_DIR], { encoding: 'utf8' }).trim().split('\n')[1]?.split(/\s+/)[1] ?? 'unknown';
  } catch {
    // df is not everywhere
  }
  return {
    cpus: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    kernel: os.release(),
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
    filesystem,
  };
}

/** Full collection between measurements when node runs with --expose-gc. */
export function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** Waits for the event loop to drain pending callbacks (timers, I/O completions). */
export function tick(ms = 0): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** CPU time (user + system, all threads of this process) in ms. */
export function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Keeps the console quiet about tfjs's "hi there" banner and the like. */
export function quietTfjs(): void {
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
}

/** Runs a benchmark's main and exits non-zero on failure. */
export function main(name: string, fn: () => Promise<BenchResult>): void {
  const started = performance.now();
  console.log(`[${name}] started (load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')})`);
  fn()
    .then((result) => {
      writeResult(result, started);
      process.exit(0);
    })
    .catch((err: unknown) => {
      console.error(`[${name}] failed:`, err);
      process.exit(1);
    });
}
