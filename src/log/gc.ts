// Blob garbage collection and disk usage. Which blobs a record names is the event schema's business,
// so both take a `blobRefs(record)` function.
//
// gc's safety does not depend on timing. Writers name the blobs of an event in an intent before
// they check, write or reuse any of them, and remove the intent once the event is durable
// (blob-intents.ts). gc:
//
//   0. puts back every condemned blob a killed gc left (it may be named by now);
//   1. mark: lists the blobs, reads the intents, then every run's log (in 'read' mode: a private
//      copy, so it works while trainers write); candidates are the blobs named by neither and
//      older than the grace period;
//   2. condemns each candidate: renames it to <hash>.gc-<pid>-<random> beside it;
//   3. reads the intents again, THEN every log again;
//   4. sweep: puts back each condemned blob that step 3 found named, unlinks the others.
//
// Why no interleaving deletes a blob that a committed or about-to-commit event names: take a
// writer W whose event names blob c, condemned by gc in step 2 at time T1. W's intent exists from
// before W looks at c until after the event is durable. If W looked at c after T1, it found c
// missing and wrote it again (the condemned copy is gc's alone). Otherwise W's intent was created
// before T1; if it still exists when gc reads the intents in step 3, c is put back; if it was
// removed before, the event was durable before that read, so before gc read the logs in step 3,
// which therefore name c. Reading intents before logs in step 3 is what closes the gap, and it
// holds for a writer paused (SIGSTOP, a suspended laptop) between any two of its steps, and for
// writers on other machines sharing the blob folder (no clock, no lock, no pid is compared, except
// to drop intents of dead processes of this host, whose events are in their logs by then).
// The grace period is defence in depth only. If any run cannot be read (corrupt log, unknown schema
// version, a symlinked run whose target is missing), nothing is deleted: its references are unknown.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Store } from './store.js';
import type { StoredRecord } from './codec.js';
import { scanIntents, type IntentScan } from './blob-intents.js';
import { MissingBlobError, StoreError } from './errors.js';
import { isErrno } from './processes.js';

export type BlobRefs = (rec: StoredRecord) => readonly string[];

export const DEFAULT_GC_GRACE_MS = 10 * 60 * 1000;

/** Awaited before each step of gc: `gc:list`, `gc:intents 1|2`, `gc:read 1|2 <runId>`,
 * `gc:condemn <hash>`, `gc:restore <hash>`, `gc:unlink <hash>` (after gc decided nothing names it). */
export type GcPause = (point: string) => Promise<void> | void;

export interface GcOptions {
  /** Blobs modified less than this long ago are kept (milliseconds, a finite number ≥ 0; default 10 minutes). */
  graceMs?: number;
  /** Report what would be deleted without deleting (nothing is renamed either). */
  dryRun?: boolean;
  /** The clock, for tests (default Date.now()). */
  now?: number;
  /** Tests only: a pause before each step, where a test makes writers (or a delay) act. */
  pause?: GcPause;
}

export interface GcResult {
  /** Runs whose logs were read. */
  runs: number;
  /** Distinct blobs referenced by some run. */
  referenced: number;
  /** Blobs deleted (or that would be, with dryRun). */
  deleted: string[];
  freedBytes: number;
  /** Unreferenced blobs kept because they are younger than the grace period. */
  keptYoung: string[];
  /** Unreferenced blobs kept because a writer's intent names them (it is about to commit them). */
  keptIntent: string[];
  /** Condemned blobs put back because an intent or a log named them by the time gc checked again. */
  restored: string[];
  /** Live intents seen (writers between naming blobs and their event being durable). */
  intents: number;
  /** Intents of dead processes of this host that were removed. */
  staleIntentsRemoved: number;
  /** Intents written on other hosts (never judged stale here; their blobs are kept). */
  otherHostIntents: IntentScan['otherHosts'];
}

/** Checks a grace period: a finite number of milliseconds ≥ 0 (TypeError / RangeError otherwise). */
export function checkGraceMs(graceMs: unknown): number {
  if (typeof graceMs !== 'number') throw new TypeError(`graceMs must be a number of milliseconds, got ${typeof graceMs}`);
  if (!Number.isFinite(graceMs) || graceMs < 0) throw new RangeError(`graceMs must be a finite number of milliseconds ≥ 0, got ${graceMs}`);
  return graceMs;
}

/**
 * Refuses to work while a run's folder is a symlink whose target is missing (a disk not mounted):
 * its references are unknown. Symlinks to folders are followed like folders (Store.listRuns).
 */
async function checkRunLinks(store: Store, refusal = 'gc deletes nothing while a run\'s blobs are unknown'): Promise<void> {
  let entries;
  try {
    entries = await fsp.readdir(path.join(store.dir, 'runs'), { withFileTypes: true });
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return;
    throw err;
  }
  for (const e of entries) {
    if (!e.isSymbolicLink()) continue;
    const link = path.join(store.dir, 'runs', e.name);
    try {
      await fsp.stat(link);
    } catch (err) {
      if (!isErrno(err, 'ENOENT') && !isErrno(err, 'ENOTDIR')) throw err;
      const target = await fsp.readlink(link).catch(() => '?');
      throw new StoreError(
        `run folder runs/${e.name} is a symlink to ${target}, which does not exist; ${refusal} (mount or restore it, or remove the link)`,
        store.dir,
      );
    }
  }
}

async function referencesByRun(store: Store, blobRefs: BlobRefs, pause?: (runId: string) => Promise<void> | void): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  for (const runId of await store.listRuns()) {
    await pause?.(runId);
    const refs = new Set<string>();
    let log;
    try {
      log = await store.openRun(runId, 'read');
    } catch (err) {
      // Removed since listRuns(): it references nothing any more.
      if ((err as { code?: string }).code === 'RETRACE_UNKNOWN_RUN') continue;
      throw err;
    }
    try {
      for await (const rec of log.read()) for (const h of blobRefs(rec)) refs.add(h);
    } finally {
      await log.close();
    }
    out.set(runId, refs);
  }
  return out;
}

async function allReferences(store: Store, blobRefs: BlobRefs, pause?: (runId: string) => Promise<void> | void): Promise<{ runs: number; referenced: Set<string> }> {
  await checkRunLinks(store);
  const byRun = await referencesByRun(store, blobRefs, pause);
  const referenced = new Set<string>();
  for (const refs of byRun.values()) for (const h of refs) referenced.add(h);
  return { runs: byRun.size, referenced };
}

/**
 * Deletes blobs that no run references, that no writer's intent names, and that are older than
 * the grace period; safe against any interleaving with writers (see the top of this file).
 * Throws (deleting nothing) when a run cannot be read or an intent file is unreadable; a grace
 * period that is not a finite number ≥ 0 is a TypeError / RangeError.
 */
export async function collectGarbage(store: Store, blobRefs: BlobRefs, opts: GcOptions = {}): Promise<GcResult> {
  const graceMs = checkGraceMs(opts.graceMs ?? DEFAULT_GC_GRACE_MS);
  const pause: GcPause = opts.pause ?? (() => {});
  const result: GcResult = {
    runs: 0,
    referenced: 0,
    deleted: [],
    freedBytes: 0,
    keptYoung: [],
    keptIntent: [],
    restored: [],
    intents: 0,
    staleIntentsRemoved: 0,
    otherHostIntents: [],
  };
  // 0. What a killed gc left aside goes back first: it may be named by now.
  if (!opts.dryRun) for (const c of await store.blobs.listCondemned()) await store.blobs.restore(c);

  // 1. Mark. Blobs listed first (one created later is not a candidate), then intents, then logs.
  await pause('gc:list');
  const blobs = await store.blobs.list();
  await pause('gc:intents 1');
  const intents1 = await scanIntents(store.blobs.dir, { removeStale: !opts.dryRun });
  const refs1 = await allReferences(store, blobRefs, (runId) => pause(`gc:read 1 ${runId}`));
  result.runs = refs1.runs;
  result.referenced = refs1.referenced.size;
  result.intents = intents1.live;
  result.staleIntentsRemoved = intents1.staleRemoved;
  result.otherHostIntents = intents1.otherHosts;
  const now = opts.now ?? Date.now();
  const candidates: Array<{ hash: string; size: number }> = [];
  for (const hash of blobs) {
    if (refs1.referenced.has(hash)) continue;
    if (intents1.held.has(hash)) {
      result.keptIntent.push(hash);
      continue;
    }
    let st;
    try {
      st = await store.blobs.stat(hash);
    } catch (err) {
      if (err instanceof MissingBlobError) continue;
      throw err;
    }
    if (now - st.mtimeMs < graceMs) {
      result.keptYoung.push(hash);
      continue;
    }
    candidates.push({ hash, size: st.size });
  }
  if (opts.dryRun) {
    for (const c of candidates) {
      result.deleted.push(c.hash);
      result.freedBytes += c.size;
    }
    return result;
  }

  // 2. Condemn: from here on a writer that looks for a candidate finds it missing and rewrites it.
  const condemned: Array<{ hash: string; size: number; file: string }> = [];
  try {
    for (const c of candidates) {
      await pause(`gc:condemn ${c.hash}`);
      const file = await store.blobs.condemn(c.hash);
      if (file !== null) condemned.push({ ...c, file });
    }

    // 3. Check again: intents first, then the logs (the order the safety argument needs).
    await pause('gc:intents 2');
    const intents2 = await scanIntents(store.blobs.dir);
    result.staleIntentsRemoved += intents2.staleRemoved;
    const refs2 = await allReferences(store, blobRefs, (runId) => pause(`gc:read 2 ${runId}`));

    // 4. Sweep.
    for (const c of condemned) {
      if (intents2.held.has(c.hash) || refs2.referenced.has(c.hash)) {
        await pause(`gc:restore ${c.hash}`);
        await store.blobs.restore(c.file);
        result.restored.push(c.hash);
      } else {
        await pause(`gc:unlink ${c.hash}`);
        if (await store.blobs.unlinkCondemned(c.file)) {
          result.deleted.push(c.hash);
          result.freedBytes += c.size;
        }
      }
      c.file = '';
    }
  } finally {
    // A failure (an unreadable run on the second read, an I/O error) puts back what is still aside.
    for (const c of condemned) if (c.file) await store.blobs.restore(c.file).catch(() => {});
  }
  return result;
}

export interface RunUsage {
  runId: string;
  /** Bytes allocated on disk (st.blocks × 512) by the run's folder: its LevelDB, committed marks,
   * owner.json, and the folders themselves. */
  logBytes: number;
  /** All blobs the run references (each once), allocated on disk. */
  blobBytes: number;
  /** Of blobBytes, blobs no other run references. */
  exclusiveBlobBytes: number;
  /** Of blobBytes, blobs other runs reference too. */
  sharedBlobBytes: number;
  blobs: number;
  /** Referenced but not in the store. */
  missingBlobs: string[];
}

export interface SharedBlob {
  hash: string;
  /** Allocated on disk. */
  bytes: number;
  runs: string[];
}

export interface DiskUsage {
  runs: RunUsage[];
  /** Blobs referenced by more than one run (counted once in totalBytes). */
  shared: SharedBlob[];
  /** Blobs no run references (gc candidates, young or old). */
  unreferencedBlobs: number;
  unreferencedBlobBytes: number;
  /** Allocated on disk by all run folders plus every blob in the store, each blob once. */
  totalBytes: number;
  /** The same files' contents (what they hold, not what they take): totalBytes minus block rounding
   * and folders. */
  totalContentBytes: number;
}

/** Bytes allocated on disk (st.blocks × 512) and content bytes of `p` and everything under it
 * (symlinks inside are not followed; `p` itself is); zeros if it does not exist. */
export async function allocatedBytes(p: string, follow = true): Promise<{ allocated: number; content: number }> {
  let st;
  try {
    st = follow ? await fsp.stat(p) : await fsp.lstat(p);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return { allocated: 0, content: 0 };
    throw err;
  }
  const own = { allocated: st.blocks * 512, content: st.isDirectory() ? 0 : st.size };
  if (!st.isDirectory()) return own;
  let names: string[];
  try {
    names = await fsp.readdir(p);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return own;
    throw err;
  }
  for (const n of names) {
    const u = await allocatedBytes(path.join(p, n), false);
    own.allocated += u.allocated;
    own.content += u.content;
  }
  return own;
}

/** Bytes per run (its log plus the blobs it references), allocated on disk: what `du` of the
 * files would say, block rounding included. Shared blobs are counted once in the total. */
export async function diskUsage(store: Store, blobRefs: BlobRefs): Promise<DiskUsage> {
  // Its blobs would show as unreferenced, and "gc frees them" would be a lie.
  await checkRunLinks(store, "du cannot tell which blobs its run names");
  const byRun = await referencesByRun(store, blobRefs);
  const owners = new Map<string, string[]>();
  for (const [runId, refs] of byRun) {
    for (const h of refs) {
      const list = owners.get(h);
      if (list) list.push(runId);
      else owners.set(h, [runId]);
    }
  }
  const sizes = new Map<string, { allocated: number; content: number } | null>();
  const sizeOf = async (h: string): Promise<{ allocated: number; content: number } | null> => {
    if (!sizes.has(h)) {
      try {
        const st = await fsp.stat(store.blobs.pathOf(h));
        sizes.set(h, { allocated: st.blocks * 512, content: st.size });
      } catch (err) {
        if (!isErrno(err, 'ENOENT') && !(err instanceof TypeError)) throw err;
        sizes.set(h, null);
      }
    }
    return sizes.get(h) ?? null;
  };
  const runs: RunUsage[] = [];
  let total = 0;
  let content = 0;
  for (const [runId, refs] of byRun) {
    const log = await allocatedBytes(path.join(store.dir, 'runs', runId));
    const u: RunUsage = {
      runId,
      logBytes: log.allocated,
      blobBytes: 0,
      exclusiveBlobBytes: 0,
      sharedBlobBytes: 0,
      blobs: 0,
      missingBlobs: [],
    };
    for (const h of refs) {
      const size = await sizeOf(h);
      if (size === null) {
        u.missingBlobs.push(h);
        continue;
      }
      u.blobs++;
      u.blobBytes += size.allocated;
      if ((owners.get(h)?.length ?? 0) > 1) u.sharedBlobBytes += size.allocated;
      else u.exclusiveBlobBytes += size.allocated;
    }
    total += u.logBytes;
    content += log.content;
    runs.push(u);
  }
  const shared: SharedBlob[] = [];
  for (const [h, rs] of owners) {
    const size = sizes.get(h);
    if (rs.length > 1 && size != null) shared.push({ hash: h, bytes: size.allocated, runs: rs });
  }
  let unreferencedBlobs = 0;
  let unreferencedBlobBytes = 0;
  for (const h of await store.blobs.list()) {
    const size = await sizeOf(h);
    if (size === null) continue;
    total += size.allocated;
    content += size.content;
    if (!owners.has(h)) {
      unreferencedBlobs++;
      unreferencedBlobBytes += size.allocated;
    }
  }
  return { runs, shared, unreferencedBlobs, unreferencedBlobBytes, totalBytes: total, totalContentBytes: content };
}
