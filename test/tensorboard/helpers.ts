// Shared by the TensorBoard tests: the CLI as a child process, and what a run's log says
// TensorBoard must show (computed from the log's records, independently of the writer).
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseRecord, type LogRecord } from '../../src/log/events.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'bin', 'retrace.js');
export const KILL_HOOK = new URL('../../dist/src/chaos/kill-hook.js', import.meta.url).href;

export function retrace(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Starts the CLI without waiting; resolves with its exit. */
export function retraceChild(args: string[]) {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr })),
  );
  return { child, done };
}

/** A run's records, through `retrace log --json` (validated as the library reads them). */
export function logOf(store: string, runId: string): LogRecord[] {
  const r = retrace(['log', runId, '--store', store, '--json']);
  if (r.code !== 0) throw new Error(`retrace log failed: ${r.stderr}`);
  return r.stdout
    .trim()
    .split('\n')
    .map((line) => parseRecord(runId, JSON.parse(line)));
}

const num = (x: number | string) => (typeof x === 'number' ? x : Number(x));

/** Per tag, every point the log holds, on TensorBoard's axis (step + origin), as float32. */
export function expectedScalars(records: LogRecord[]): Map<string, Array<{ step: number; value: number }>> {
  const created = records.find((r) => r.type === 'run.created');
  const origin = created?.type === 'run.created' ? created.data.origin.step : 0;
  const out = new Map<string, Array<{ step: number; value: number }>>();
  const add = (tag: string, step: number, value: number) => {
    if (!out.has(tag)) out.set(tag, []);
    out.get(tag)!.push({ step: origin + step, value: Math.fround(value) });
  };
  for (const r of records) {
    if (r.type === 'step.finished') {
      add('loss', r.data.step, num(r.data.loss));
      add('lr', r.data.step, r.data.lr);
      add('examples_seen', r.data.step, r.data.examplesSeen);
    } else if (r.type === 'eval.finished') {
      add('val_loss', r.data.step, num(r.data.valLoss));
      add('val_acc', r.data.step, r.data.valAccuracy);
    }
  }
  return out;
}

/** The event files of a run folder, in name order (TensorBoard's reading order). */
export function eventFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.includes('tfevents'))
    .sort()
    .map((f) => path.join(dir, f));
}

export function readAll(files: string[]): Uint8Array[] {
  return files.map((f) => new Uint8Array(readFileSync(f)));
}
