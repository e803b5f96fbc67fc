// Blob garbage collection and disk usage. Which blobs a record names is the event schema's business,
// so both take a `blobRefs(record)` function.
//
// collectGarbage reads every run (in 'read' mode: a private copy, so it works while trainers
// write), collects the hashes they reference, and deletes the other blobs — except those younger
// than the grace period: a live trainer writes a blob before the event naming it, and put() of a
// blob that already exists refreshes its mtime, so a blob about to be referenced is always young.
// If any run cannot be read (corrupt log, unknown schema version), nothing is deleted: its
// references are unknown.
import type { Store } from './store.js';
import type { StoredRecord } from './codec.js';
import { MissingBlobError } from './errors.js';

export type BlobRefs = (rec: StoredRecord) => readonly string[];

export const DEFAULT_GC_GRACE_MS = 10 * 60 * 1000;

export interface GcOptions {
  /** Blobs modified less than this long ago are kept (default 10 minutes). */
  graceMs?: number;
  /** Report what would be deleted without deleting. */
  dryRun?: boolean;
  /** The clock, for tests (default Date.now()). */
  now?: number;
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
}

async function referencesByRun(store: Store, blobRefs: BlobRefs): Promise<Map<string, Set<string>>> {
  const out = new Map<string, Set<string>>();
  for (const runId of await store.listRuns()) {
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

/** Deletes blobs no run references and older than the grace period. */
export async function collectGarbage(store: Store, blobRefs: BlobRefs, opts: GcOptions = {}): Promise<GcResult> {
  const graceMs = opts.graceMs ?? DEFAULT_GC_GRACE_MS;
  // List blobs before reading the logs: a blob created afterwards is young anyway.
  const blobs = await store.blobs.list();
  const byRun = await referencesByRun(store, blobRefs);
  const referenced = new Set<string>();
  for (const refs of byRun.values()) for (const h of refs) referenced.add(h);
  const now = opts.now ?? Date.now();
  const result: GcResult = { runs: byRun.size, referenced: referenced.size, deleted: [], freedBytes: 0, keptYoung: [] };
  for (const hash of blobs) {
    if (referenced.has(hash)) continue;
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
    if (opts.dryRun || (await store.blobs.delete(hash))) {
      result.deleted.push(hash);
      result.freedBytes += st.size;
    }
  }
  return result;
}

export interface RunUsage {
  runId: string;
  /** The run's LevelDB folder, committed.json and owner.json. */
  logBytes: number;
  /** All blobs the run references (each once). */
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
  /** All logs plus every blob in the store, each blob once. */
  totalBytes: number;
}

/** Bytes per run (its log plus the blobs it references); shared blobs are counted once in the total. */
export async function diskUsage(store: Store, blobRefs: BlobRefs): Promise<DiskUsage> {
  const byRun = await referencesByRun(store, blobRefs);
  const owners = new Map<string, string[]>();
  for (const [runId, refs] of byRun) {
    for (const h of refs) {
      const list = owners.get(h);
      if (list) list.push(runId);
      else owners.set(h, [runId]);
    }
  }
  const sizes = new Map<string, number | null>();
  const sizeOf = async (h: string): Promise<number | null> => {
    if (!sizes.has(h)) {
      try {
        sizes.set(h, await store.blobs.size(h));
      } catch (err) {
        if (!(err instanceof MissingBlobError) && !(err instanceof TypeError)) throw err;
        sizes.set(h, null);
      }
    }
    return sizes.get(h) ?? null;
  };
  const runs: RunUsage[] = [];
  let total = 0;
  for (const [runId, refs] of byRun) {
    const u: RunUsage = {
      runId,
      logBytes: await store.runBytes(runId).catch((err: unknown) => {
        if ((err as { code?: string }).code === 'RETRACE_UNKNOWN_RUN') return 0;
        throw err;
      }),
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
      u.blobBytes += size;
      if ((owners.get(h)?.length ?? 0) > 1) u.sharedBlobBytes += size;
      else u.exclusiveBlobBytes += size;
    }
    total += u.logBytes;
    runs.push(u);
  }
  const shared: SharedBlob[] = [];
  for (const [h, rs] of owners) {
    const size = sizes.get(h);
    if (rs.length > 1 && size != null) shared.push({ hash: h, bytes: size, runs: rs });
  }
  let unreferencedBlobs = 0;
  let unreferencedBlobBytes = 0;
  for (const h of await store.blobs.list()) {
    const size = await sizeOf(h);
    if (size === null) continue;
    total += size;
    if (!owners.has(h)) {
      unreferencedBlobs++;
      unreferencedBlobBytes += size;
    }
  }
  return { runs, shared, unreferencedBlobs, unreferencedBlobBytes, totalBytes: total };
}
