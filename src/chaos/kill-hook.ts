// A chaos kill point, preloaded into a retrace process with
//   NODE_OPTIONS="--import <this file's URL>" RETRACE_CHAOS_KILL_AT=<point>:<n> node bin/retrace.js …
// It makes the process kill ITSELF with a real SIGKILL (no handler, no flush, no exit hooks) at a
// named moment of the store's write protocol, counted from the start of that process. It changes
// nothing else: unset, or with an unknown point, the process runs untouched. Nothing in retrace
// imports this file; it only wraps the I/O calls the store already makes:
//
//   blob-before:N          before the Nth blob file is renamed into blobs/ (its temp file is written)
//   blob-after:N           after the Nth blob file is renamed into blobs/ (before the event naming it)
//   batch-before:N         before the Nth LevelDB batch is written (sync or not)
//   batch-after:N          after the Nth LevelDB batch is written
//   sync-batch-before:N    before the Nth synced LevelDB batch (a checkpoint's or run.created's event)
//   sync-batch-after:N     after the Nth synced batch, before committed.json is advanced
//   committed-before:N     after committed.json's temp file is written and fsynced, before its rename
//   committed-after:N      after committed.json is renamed into place
//
// The harness (harness.ts) chooses the points from a seeded generator; see docs/reliability.md.
import fs from 'node:fs';
import { ClassicLevel } from 'classic-level';

export const KILL_POINTS = [
  'blob-before',
  'blob-after',
  'batch-before',
  'batch-after',
  'sync-batch-before',
  'sync-batch-after',
  'committed-before',
  'committed-after',
] as const;
export type KillPoint = (typeof KILL_POINTS)[number];

function die(): never {
  // A real SIGKILL: the kernel ends the process at once, exactly like `kill -9` from outside.
  process.kill(process.pid, 'SIGKILL');
  // SIGKILL to oneself is delivered before kill() returns; never reached.
  for (;;);
}

function install(spec: string): void {
  const m = /^([a-z-]+):(\d+)$/.exec(spec);
  if (!m || !(KILL_POINTS as readonly string[]).includes(m[1]!)) return;
  const point = m[1] as KillPoint;
  const target = Number(m[2]);
  const counts = new Map<string, number>();
  /** Counts an occurrence of `name` and dies if it is the chosen point's Nth. */
  const at = (name: KillPoint): void => {
    const n = (counts.get(name) ?? 0) + 1;
    counts.set(name, n);
    if (name === point && n === target) die();
  };

  const rename = fs.promises.rename;
  fs.promises.rename = async function chaosRename(from: fs.PathLike, to: fs.PathLike): Promise<void> {
    const dest = String(to);
    const kind = /[\\/]blobs[\\/][0-9a-f]{2}[\\/][0-9a-f]{64}$/.test(dest) ? 'blob' : /[\\/]committed\.json$/.test(dest) ? 'committed' : null;
    if (kind) at(`${kind}-before`);
    await rename(from, to);
    if (kind) at(`${kind}-after`);
  } as typeof fs.promises.rename;

  const proto = ClassicLevel.prototype as unknown as { _batch: (ops: unknown[], options: { sync?: boolean }) => Promise<void> };
  const batch = proto._batch;
  proto._batch = async function chaosBatch(this: unknown, ops: unknown[], options: { sync?: boolean }): Promise<void> {
    const sync = options?.sync === true;
    at('batch-before');
    if (sync) at('sync-batch-before');
    await batch.call(this, ops, options);
    at('batch-after');
    if (sync) at('sync-batch-after');
  };
}

const spec = process.env.RETRACE_CHAOS_KILL_AT;
if (spec) install(spec);
