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
import type { RunStore } from '../storage/types.js';
import type { StoredRecord } from './codec.js';
import type { IntentScan } from './blob-intents.js';
import { BLOB_TYPES, blobRefs as schemaBlobRefs } from './events.js';
import { MissingBlobError } from './errors.js';

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

async function referencesByRun(store: RunStore, blobRefs: BlobRefs, pause?: (runId: string) => Promise<void> | void): Promise<Map<string, Set<string>>> {
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
      // With the schema's blobRefs, only the records that can name blobs, through the type index
      // (the per-step records, most of a log, name none); another blobRefs, or a store configured
      // not to index one of those types, reads the whole log.
      if (blobRefs === schemaBlobRefs && BLOB_TYPES.every((t) => store.indexedTypes.includes(t))) {
        for (const type of BLOB_TYPES) for await (const rec of log.readIndexed(type)) for (const h of blobRefs(rec)) refs.add(h);
      } else {
        for await (const rec of log.read()) for (const h of blobRefs(rec)) refs.add(h);
      }
    } finally {
      await log.close();
    }
    out.set(runId, refs);
  }
  return out;
}

async function allReferences(store: RunStore, blobRefs: BlobRefs, pause?: (runId: string) => Promise<void> | void): Promise<{ runs: number; referenced: Set<string> }> {
  await store.assertRunsReachable("gc deletes nothing while a run's blobs are unknown");
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
export async function collectGarbage(store: RunStore, blobRefs: BlobRefs, opts: GcOptions = {}): Promise<GcResult> {
  const graceMs = checkGraceMs(opts.graceMs ?? DEFAULT_GC_GRACE_MS);
  const pause: GcPause = opts.pause ?? (() => {});
  let pass = 0;
  let first: { runs: number; referenced: Set<string> } | null = null;
  // The sweep asks for the live set twice (step 1 and, after condemning, step 3; blob-sweep.ts).
  const live = async (): Promise<ReadonlySet<string>> => {
    const n = ++pass;
    const refs = await allReferences(store, blobRefs, (runId) => pause(`gc:read ${n} ${runId}`));
    first ??= refs;
    return refs.referenced;
  };
  const swept = await store.blobs.sweep({ live, graceMs, dryRun: opts.dryRun, now: opts.now, pause });
  const refs1 = first as { runs: number; referenced: Set<string> } | null;
  return {
    runs: refs1?.runs ?? 0,
    referenced: refs1?.referenced.size ?? 0,
    deleted: swept.deleted,
    freedBytes: swept.bytesFreed,
    keptYoung: swept.keptYoung,
    keptIntent: swept.keptIntent,
    restored: swept.restored,
    intents: swept.intents,
    staleIntentsRemoved: swept.staleIntentsRemoved,
    otherHostIntents: swept.otherHostIntents,
  };
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

/** Bytes per run (its log plus the blobs it references), allocated on its medium (for files: what
 * `du` of them would say, block rounding included), and their contents. Shared blobs are counted
 * once in the total. */
export async function diskUsage(store: RunStore, blobRefs: BlobRefs): Promise<DiskUsage> {
  // Its blobs would show as unreferenced, and "gc frees them" would be a lie.
  await store.assertRunsReachable('du cannot tell which blobs its run names');
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
        sizes.set(h, { allocated: await store.blobs.allocatedBytes(h), content: await store.blobs.size(h) });
      } catch (err) {
        if (!(err instanceof MissingBlobError) && !(err instanceof TypeError)) throw err;
        sizes.set(h, null);
      }
    }
    return sizes.get(h) ?? null;
  };
  const runs: RunUsage[] = [];
  let total = 0;
  let content = 0;
  for (const [runId, refs] of byRun) {
    const log = await store.runBytes(runId);
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
