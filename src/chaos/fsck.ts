// `retrace fsck`: checks a store (or one run) and reports EVERY problem it finds, changing nothing.
//
// Per run:
//   - its LevelDB files, byte by byte (leveldb-files.ts): CURRENT, the manifest, write-ahead logs
//     and tables, every checksum; the manifest's live tables exist with their recorded sizes;
//   - committed.json is readable;
//   - every record: its checksum, its key, its schema (zod), its schema version; the seqs are
//     0..last without a gap and reach committed.json's seq, whose record carries the committed crc;
//     every type index entry names a record of its type;
//   - folding the log through the machine from event 0 (RunHistory.foldFromStart) accepts every
//     event, reproduces every logged `state.changed` (and no transition is left unlogged), and
//     every checkpoint's stored `machine` snapshot;
//   - every blob a checkpoint or snapshot names exists, hashes to its name and has its size, and a
//     checkpoint's weightsHash is the hash of its weight blobs.
// Without a run: also store.json, and every blob file of the store hashes to its name.
//
// The checks live beside what they check: the byte-level ones in the LevelDB store's own code
// (src/log/leveldb-fsck.ts, also RunStore.checkIntegrity), the fold check next to replay
// (src/run/verify-log.ts). This file runs both over a store and assembles the report.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { BlobChecker, checkBlobFiles, checkRunBytes, checkStoreLayout, type FsckOptions, type FsckProblem, type FsckReport, type FsckRunReport } from '../log/leveldb-fsck.js';
import { sweepSystemScratch, systemScratchPath } from '../log/scratch.js';
import { checkLineage, verifyRunLog, type LineageFacts } from '../run/verify-log.js';

export type { FsckKind, FsckProblem, FsckReport, FsckRunReport, FsckOptions } from '../log/leveldb-fsck.js';

/** Checks a store, or one run of it. Changes nothing. */
export async function fsck(storeDir: string, opts: FsckOptions = {}): Promise<FsckReport> {
  const t0 = Date.now();
  const dir = path.resolve(storeDir);
  const { problems, runIds } = await checkStoreLayout(dir, opts.runId);
  const blobs = new BlobChecker(dir);
  // Outside the store (fsck writes nothing into it); a SIGKILLed fsck's copy is swept by the next
  // retrace command, this one included.
  await sweepSystemScratch();
  const scratch = systemScratchPath('fsck');
  const runs: FsckRunReport[] = [];
  try {
    const lineage = new Map<string, LineageFacts>();
    for (const runId of runIds) {
      const bytes = await checkRunBytes(dir, runId, scratch);
      if (!bytes.unread) await verifyRunLog(bytes.report, bytes.records, bytes.stop, bytes.committed, blobs, lineage);
      runs.push(bytes.report);
      problems.push(...bytes.report.problems);
    }
    const lineageProblems: FsckProblem[] = [];
    checkLineage(lineage, lineageProblems);
    for (const p of lineageProblems) {
      runs.find((r) => r.runId === p.runId)?.problems.push(p);
      problems.push(p);
    }
    if (opts.runId === undefined) problems.push(...(await checkBlobFiles(dir, blobs, problems)));
  } finally {
    await fsp.rm(scratch, { recursive: true, force: true });
  }
  return { store: dir, ok: problems.length === 0, runs, blobsChecked: blobs.checked, problems, seconds: (Date.now() - t0) / 1000 };
}

export function formatFsck(r: FsckReport): string {
  const lines: string[] = [];
  for (const run of r.runs) {
    const status = run.problems.length === 0 ? 'ok' : `${run.problems.length} problem(s)`;
    lines.push(
      `run ${run.runId}: ${status}: events 0..${run.lastSeq}, committed ${run.committedSeq ?? 'none'}, state ${run.state ?? '?'}, ${run.levelDbFiles} LevelDB files, ${run.blobsChecked} blobs verified`,
    );
    for (const n of run.notes) lines.push(`  note: ${n}`);
    for (const p of run.problems) lines.push(`  ${p.kind}: ${p.message}`);
  }
  for (const p of r.problems.filter((x) => x.runId === null)) lines.push(`store: ${p.kind}: ${p.message}`);
  lines.push(
    r.ok
      ? `fsck ${r.store}: no problems (${r.runs.length} run(s), ${r.blobsChecked} blobs verified, ${r.seconds.toFixed(1)} s)`
      : `fsck ${r.store}: ${r.problems.length} problem(s) in ${r.runs.filter((x) => x.problems.length > 0).length} run(s)${r.problems.some((p) => p.runId === null) ? ' and the store' : ''}`,
  );
  return lines.join('\n');
}

