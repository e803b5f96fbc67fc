// A chaos kill point, preloaded into a retrace process with
//   NODE_OPTIONS="--import <this file's URL>" RETRACE_CHAOS_KILL_AT=<point>:<n> node bin/retrace.js …
// It makes the process kill ITSELF with a real SIGKILL (no handler, no flush, no exit hooks) at a
// named moment of the store's write protocol, counted from the start of that process. It changes
// nothing else: unset, or with an unknown point, the process runs untouched. Nothing in retrace
// imports this file; it only wraps the I/O calls the store already makes:
//
//   step-after:N           after the Nth optimizer step this process computes (before its event)
//   blob-before:N          before the Nth blob file is renamed into blobs/ (its temp file is written)
//   blob-after:N           after the Nth blob file is renamed into blobs/ (before the event naming it)
//   batch-before:N         before the Nth LevelDB batch is written (sync or not)
//   batch-after:N          after the Nth LevelDB batch is written
//   sync-batch-before:N    before the Nth synced LevelDB batch (a checkpoint's or run.created's event)
//   sync-batch-after:N     after the Nth synced batch, before committed.json is advanced
//   committed-before:N     after committed.json's temp file is written and fsynced, before its rename
//   committed-after:N      after committed.json is renamed into place
//   rm-plan-before:N       `rm`: before the Nth removal plan (removal.json) is renamed into its trash folder
//   rm-move-before:N       `rm`: before the Nth run folder is moved from runs/ into the trash folder
//   rm-move-after:N        `rm`: after the Nth run folder is moved (before the trash is deleted)
//   export-retire-before:N `export --force`: before the Nth existing export is renamed aside
//   export-retire-after:N  `export --force`: after it (the target folder is missing until the install)
//   export-install-before:N `export`: before the Nth new export (written, fsynced) is renamed into place
//   export-install-after:N `export`: after it (before the old one is deleted and the event appended)
//   gc-condemn-before:N    before gc renames the Nth blob aside (gc-condemn-before:1 is between
//                          its mark and its sweep)
//   gc-condemn-after:N     after gc renamed the Nth blob aside (before its second check)
//   gc-unlink-before:N     before gc unlinks the Nth condemned blob
//   gc-unlink-after:N      after gc unlinked the Nth condemned blob (between unlinks)
//
// With RETRACE_CHAOS_FAIL_AT=<point>:<n>[:<code>] instead, the I/O call at that point fails with
// an error of that errno code (default EIO) instead of killing: a fault-injecting wrapper for the
// bad-input tests (a disk that reports EIO on a blob rename, a LevelDB write, committed.json).
//
// The harness (harness.ts) chooses the points from a seeded generator; see docs/reliability.md.
import fs from 'node:fs';
import { ClassicLevel } from 'classic-level';
import { KILL_POINTS, type KillPoint } from './kill-points.js';

function die(): never {
  // A real SIGKILL: the kernel ends the process at once, exactly like `kill -9` from outside.
  process.kill(process.pid, 'SIGKILL');
  // SIGKILL to oneself is delivered before kill() returns; never reached.
  for (;;);
}

/** Which kill point a rename is, by its paths (see the table at the top). */
/** A blob gc has renamed aside (src/log/gc.ts), before its second check and its unlink. */
const CONDEMNED = /[\\/]blobs[\\/][0-9a-f]{2}[\\/][0-9a-f]{64}\.gc-\d+-[0-9a-f]+$/;

function renameKind(from: string, dest: string): 'blob' | 'committed' | 'gc-condemn' | 'rm-plan' | 'rm-move' | 'export-retire' | 'export-install' | null {
  if (/[\\/]blobs[\\/][0-9a-f]{2}[\\/][0-9a-f]{64}$/.test(dest)) return 'blob';
  if (CONDEMNED.test(dest)) return 'gc-condemn';
  if (/[\\/]committed\.json$/.test(dest)) return 'committed';
  // rm (src/log/removal.ts): removal.json, then each run folder, into tmp/remove-<pid>-<hex>/.
  if (/[\\/]tmp[\\/]remove-\d+-[0-9a-f]+[\\/]removal\.json$/.test(dest)) return 'rm-plan';
  if (/[\\/]tmp[\\/]remove-\d+-[0-9a-f]+[\\/][^\\/]+$/.test(dest) && /[\\/]runs[\\/][^\\/]+$/.test(from)) return 'rm-move';
  // export (src/run/export-dir.ts): the old export aside, then the new one into place.
  if (/\.export-old-\d+-[0-9a-f]+$/.test(dest)) return 'export-retire';
  if (/\.export-tmp-\d+-[0-9a-f]+$/.test(from)) return 'export-install';
  return null;
}

async function install(spec: string, mode: 'kill' | 'fail'): Promise<void> {
  const m = /^([a-z-]+):(\d+)(?::([A-Z]+))?$/.exec(spec);
  if (!m || !(KILL_POINTS as readonly string[]).includes(m[1]!)) return;
  const point = m[1] as KillPoint;
  const target = Number(m[2]);
  const code = m[3] ?? 'EIO';
  const counts = new Map<string, number>();
  /** Counts an occurrence of `name` and dies (or fails) if it is the chosen point's Nth. */
  const at = (name: KillPoint): void => {
    const n = (counts.get(name) ?? 0) + 1;
    counts.set(name, n);
    if (name !== point || n !== target) return;
    if (mode === 'kill') die();
    const message = code === 'ENOSPC' ? 'no space left on device' : code === 'EIO' ? 'i/o error' : 'injected error';
    throw Object.assign(new Error(`${code}: ${message} (injected at ${point}:${n})`), { code, syscall: 'write' });
  };

  if (point === 'step-after') {
    // Only this point needs tfjs; the app's import of it resolves to this same module instance.
    const tf = await import('@tensorflow/tfjs');
    const proto = tf.Optimizer.prototype as unknown as { minimize: (...args: unknown[]) => unknown };
    const minimize = proto.minimize;
    proto.minimize = function chaosMinimize(this: unknown, ...args: unknown[]): unknown {
      const result = minimize.apply(this, args);
      at('step-after');
      return result;
    };
    return;
  }

  const rename = fs.promises.rename;
  fs.promises.rename = async function chaosRename(from: fs.PathLike, to: fs.PathLike): Promise<void> {
    const kind = renameKind(String(from), String(to));
    if (kind) at(`${kind}-before`);
    await rename(from, to);
    if (kind && !kind.endsWith('-plan')) at(`${kind}-after` as KillPoint);
  } as typeof fs.promises.rename;

  // gc's last step: the unlink of a condemned blob.
  const unlink = fs.promises.unlink;
  fs.promises.unlink = async function chaosUnlink(file: fs.PathLike): Promise<void> {
    const condemned = CONDEMNED.test(String(file));
    if (condemned) at('gc-unlink-before');
    await unlink(file);
    if (condemned) at('gc-unlink-after');
  } as typeof fs.promises.unlink;

  // LevelDB writes: the array form (db.batch(ops)) and the chained form (db.batch()…write()).
  const around = async (options: { sync?: boolean } | undefined, write: () => Promise<void>): Promise<void> => {
    const sync = options?.sync === true;
    at('batch-before');
    if (sync) at('sync-batch-before');
    await write();
    at('batch-after');
    if (sync) at('sync-batch-after');
  };
  type Proto = {
    _batch: (ops: unknown[], options: { sync?: boolean }) => Promise<void>;
    _chainedBatch: () => object;
  };
  const proto = ClassicLevel.prototype as unknown as Proto;
  const batch = proto._batch;
  proto._batch = function chaosBatch(this: unknown, ops: unknown[], options: { sync?: boolean }): Promise<void> {
    return around(options, () => batch.call(this, ops, options));
  };
  const chained = proto._chainedBatch;
  let chainedPatched = false;
  proto._chainedBatch = function chaosChainedBatch(this: unknown): object {
    const b = chained.call(this);
    if (!chainedPatched) {
      chainedPatched = true;
      const bp = Object.getPrototypeOf(b) as { _write: (options: { sync?: boolean }) => Promise<void> };
      const write = bp._write;
      bp._write = function chaosWrite(this: unknown, options: { sync?: boolean }): Promise<void> {
        return around(options, () => write.call(this, options));
      };
    }
    return b;
  };
}

if (process.env.RETRACE_CHAOS_KILL_AT) await install(process.env.RETRACE_CHAOS_KILL_AT, 'kill');
else if (process.env.RETRACE_CHAOS_FAIL_AT) await install(process.env.RETRACE_CHAOS_FAIL_AT, 'fail');
