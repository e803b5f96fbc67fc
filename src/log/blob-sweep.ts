// The file blob store's sweep (BlobStore.sweep): deletes the blobs no run references, safe against
// any interleaving with writers putting blobs meanwhile. gc.ts says why the protocol is safe; here
// is the protocol:
//
//   0. puts back every condemned blob a killed sweep left (it may be named by now);
//   1. mark: lists the blobs, reads the intents, then asks for the live set (every run's log);
//      candidates are the blobs named by neither and older than the grace period;
//   2. condemns each candidate: renames it to <hash>.gc-<pid>-<random> beside it;
//   3. reads the intents again, THEN asks for the live set again;
//   4. puts back each condemned blob that step 3 found named, unlinks the others.
import type { FileBlobStore } from './blobs.js';
import { scanIntents } from './blob-intents.js';
import { MissingBlobError } from './errors.js';
import type { SweepOptions, SweepResult } from '../storage/types.js';

/** The file store's extras: a clock and pause points for tests. */
export interface FileSweepOptions {
  /** The clock (default Date.now()). */
  now?: number;
  /** Tests only: awaited before each step: `gc:list`, `gc:intents 1|2`, `gc:condemn <hash>`,
   * `gc:restore <hash>`, `gc:unlink <hash>`. */
  pause?: (point: string) => Promise<void> | void;
}

/** The file store's sweep reports what every sweep does (SweepResult). */
export type FileSweepResult = SweepResult;

/**
 * See the top of this file. Throws (deleting nothing that is not yet unlinked, and putting back
 * what it condemned) when `live()` or an intent read throws.
 */
export async function sweepBlobs(blobs: FileBlobStore, opts: SweepOptions & FileSweepOptions): Promise<FileSweepResult> {
  const pause = opts.pause ?? (() => {});
  const result: FileSweepResult = {
    deleted: [],
    bytesFreed: 0,
    kept: 0,
    keptYoung: [],
    keptIntent: [],
    restored: [],
    intents: 0,
    staleIntentsRemoved: 0,
    otherHostIntents: [],
  };
  // 0. What a killed sweep left aside goes back first: it may be named by now.
  if (!opts.dryRun) for (const c of await blobs.listCondemned()) await blobs.restore(c);

  // 1. Mark. Blobs listed first (one created later is not a candidate), then intents, then logs.
  await pause('gc:list');
  const all = await blobs.list();
  await pause('gc:intents 1');
  const intents1 = await scanIntents(blobs.dir, { removeStale: !opts.dryRun });
  const live1 = await opts.live();
  result.intents = intents1.live;
  result.staleIntentsRemoved = intents1.staleRemoved;
  result.otherHostIntents = intents1.otherHosts;
  const now = opts.now ?? Date.now();
  const candidates: Array<{ hash: string; size: number }> = [];
  for (const hash of all) {
    if (live1.has(hash)) continue;
    if (intents1.held.has(hash)) {
      result.keptIntent.push(hash);
      continue;
    }
    let st;
    try {
      st = await blobs.stat(hash);
    } catch (err) {
      if (err instanceof MissingBlobError) continue;
      throw err;
    }
    if (now - st.mtimeMs < opts.graceMs) {
      result.keptYoung.push(hash);
      continue;
    }
    candidates.push({ hash, size: st.size });
  }
  if (opts.dryRun) {
    for (const c of candidates) {
      result.deleted.push(c.hash);
      result.bytesFreed += c.size;
    }
    result.kept = all.length - result.deleted.length;
    return result;
  }

  // 2. Condemn: from here on a writer that looks for a candidate finds it missing and rewrites it.
  const condemned: Array<{ hash: string; size: number; file: string }> = [];
  try {
    for (const c of candidates) {
      await pause(`gc:condemn ${c.hash}`);
      const file = await blobs.condemn(c.hash);
      if (file !== null) condemned.push({ ...c, file });
    }

    // 3. Check again: intents first, then the logs (the order the safety argument needs).
    await pause('gc:intents 2');
    const intents2 = await scanIntents(blobs.dir);
    result.staleIntentsRemoved += intents2.staleRemoved;
    const live2 = await opts.live();

    // 4. Sweep.
    for (const c of condemned) {
      if (intents2.held.has(c.hash) || live2.has(c.hash)) {
        await pause(`gc:restore ${c.hash}`);
        await blobs.restore(c.file);
        result.restored.push(c.hash);
      } else {
        await pause(`gc:unlink ${c.hash}`);
        if (await blobs.unlinkCondemned(c.file)) {
          result.deleted.push(c.hash);
          result.bytesFreed += c.size;
        }
      }
      c.file = '';
    }
  } finally {
    // A failure (an unreadable run on the second read, an I/O error) puts back what is still aside.
    for (const c of condemned) if (c.file) await blobs.restore(c.file).catch(() => {});
  }
  result.kept = all.length - result.deleted.length;
  return result;
}
