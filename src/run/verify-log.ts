// fsck's fold check, next to replay: the machine folds a run's log from event 0 and must reproduce
// every logged transition (state.changed) and every checkpoint's stored machine snapshot; the start
// state, checkpoint 0 and a branch's start must agree with the run's parent; the blobs the records
// name must exist, hash to their names, have their sizes, and give each checkpoint's weightsHash.
// Independent of how records are stored: it takes the records the store's byte checks could read
// (src/log/leveldb-fsck.ts for the LevelDB store) and a way to check a blob.
import { stateName, toPlain } from '../../machines/fold.js';
import { canonicalJson, type StoredRecord } from '../log/codec.js';
import { encodeStoredSnapshot, parseRecord, type CheckpointData, type LogRecord, type RunCreated, type TensorRef } from '../log/events.js';
import { blobOf, checkPackedTensor } from '../log/packs.js';
import { weightsHashOfBytes } from '../train/weights-hash.js';
import type { BlobCheck, FsckProblem, FsckRunReport } from '../log/leveldb-fsck.js';
import { RunHistory } from './history.js';
import { branchPointProblem, checkpoint0Problems } from './start-state.js';

/** Checks blobs by hash (cached), counting the ones it read. */
export interface BlobSource {
  check(hash: string): Promise<BlobCheck>;
  readonly checked: number;
}

/** Folds the log through the machine from event 0 and compares with what the log says. */
function checkMachine(runId: string, records: LogRecord[], problems: FsckProblem[]): string | null {
  let history: RunHistory;
  try {
    history = new RunHistory(runId, records);
  } catch (err) {
    problems.push({ runId, kind: 'machine', seq: 0, message: (err as Error).message });
    return null;
  }
  const add = (seq: number, message: string) => problems.push({ runId, kind: 'machine', seq, message: `run "${runId}": event ${seq}: ${message}` });
  /** seq of a state.changed → the transition the fold says its cause made. */
  const explained = new Set<number>();
  const final = history.foldFromStart((record, before, after, accepted) => {
    const from = stateName(before);
    const to = stateName(after);
    if (!accepted) add(record.seq, `${record.type} is not accepted by the machine in state ${from}`);
    const next = records[record.seq + 1];
    const logged = next?.type === 'state.changed' && next.data.cause === record.seq ? next : null;
    if (from !== to) {
      if (!logged) add(record.seq, `${record.type} moves the machine ${from} → ${to}, but no state.changed for it follows`);
      else {
        explained.add(logged.seq);
        if (logged.data.from !== from || logged.data.to !== to || logged.data.causeType !== record.type) {
          add(logged.seq, `state.changed says ${logged.data.from} → ${logged.data.to} (${logged.data.causeType}); folding the log gives ${from} → ${to} (${record.type})`);
        }
      }
    } else if (logged) {
      explained.add(logged.seq);
      add(logged.seq, `state.changed ${logged.data.from} → ${logged.data.to}, but event ${record.seq} (${record.type}) leaves the machine in ${from}`);
    }
    if (record.type === 'checkpoint.committed') {
      // Compared as stored (NaN as {"$float": "NaN"}), so NaN equals NaN and nothing else differs.
      const folded = encodeStoredSnapshot(toPlain(after));
      const stored = encodeStoredSnapshot(record.data.machine);
      if (canonicalJson(folded) !== canonicalJson(stored)) add(record.seq, `checkpoint ${record.data.index} (${record.data.kind}) stores a machine snapshot that differs from the fold's: ${firstDifference(stored, folded)}`);
      if (record.data.step !== before.context.step) add(record.seq, `checkpoint ${record.data.index} says step ${record.data.step}; the machine was at step ${before.context.step}`);
    }
  });
  for (const r of records) {
    if (r.type === 'state.changed' && !explained.has(r.seq)) {
      add(r.seq, `state.changed ${r.data.from} → ${r.data.to} names event ${r.data.cause} (${r.data.causeType}), which caused no such transition`);
    }
  }
  return stateName(final);
}

/** The first path where two JSON values differ, for a message. */
function firstDifference(a: unknown, b: unknown, at = 'machine'): string {
  if (canonicalJson(a) === canonicalJson(b)) return 'none';
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) {
      const x = (a as Record<string, unknown>)[k];
      const y = (b as Record<string, unknown>)[k];
      if (canonicalJson(x ?? null) !== canonicalJson(y ?? null)) return firstDifference(x, y, `${at}.${k}`);
    }
  }
  const show = (v: unknown) => {
    const t = v === undefined ? 'undefined' : canonicalJson(v);
    return t.length > 60 ? `${t.slice(0, 57)}...` : t;
  };
  return `${at} is ${show(a)}, the fold gives ${show(b)}`;
}

async function checkBlobs(runId: string, records: LogRecord[], blobs: BlobSource, problems: FsckProblem[]): Promise<void> {
  for (const r of records) {
    let what: string;
    let data: { weights: TensorRef[]; optimizer?: TensorRef[]; weightsHash: string };
    if (r.type === 'checkpoint.committed') {
      what = `checkpoint ${r.data.index} (${r.data.kind}, event ${r.seq})`;
      data = r.data;
    } else if (r.type === 'snapshot.taken') {
      what = `snapshot at step ${r.data.step} (event ${r.seq})`;
      data = r.data;
    } else if (r.type === 'run.created' && r.data.start) {
      what = 'the start state run.created names';
      data = r.data.start;
    } else continue;
    const refs: Array<[TensorRef, 'weights' | 'optimizer']> = [
      ...data.weights.map((t) => [t, 'weights'] as [TensorRef, 'weights']),
      ...(data.optimizer ?? []).map((t) => [t, 'optimizer'] as [TensorRef, 'optimizer']),
    ];
    const weightBytes: Uint8Array[] = [];
    let allWeights = true;
    for (const [ref, kind] of refs) {
      const c = ref.pack ? checkPackedTensor(ref, await blobs.check(ref.pack.hash)) : await blobs.check(ref.hash);
      if (!c.ok) {
        problems.push({ runId, kind: 'blob', seq: r.seq, blob: blobOf(ref), message: `run "${runId}": ${what}: ${kind} tensor ${ref.name}: ${c.message}` });
        if (kind === 'weights') allWeights = false;
        continue;
      }
      if (c.bytes!.byteLength !== ref.bytes) {
        problems.push({ runId, kind: 'blob', seq: r.seq, blob: ref.hash, message: `run "${runId}": ${what}: ${kind} tensor ${ref.name}: blob ${ref.hash} has ${c.bytes!.byteLength} bytes, the log says ${ref.bytes}` });
      }
      if (kind === 'weights') weightBytes.push(c.bytes!);
    }
    if (allWeights) {
      const actual = weightsHashOfBytes(weightBytes);
      if (actual !== data.weightsHash) {
        problems.push({ runId, kind: 'checkpoint', seq: r.seq, message: `run "${runId}": ${what}: weightsHash ${data.weightsHash} is not the hash of its weight blobs (${actual})` });
      }
    }
  }
}


/** What the lineage check needs of a run: its creation, checkpoint 0, and the weights at each
 * checkpoint or snapshot event (a branch point). */
export interface LineageFacts {
  created: RunCreated;
  ckpt0Seq: number | null;
  ckpt0: CheckpointData | null;
  weightsAt: Map<number, { weightsHash: string; what: string }>;
}

function weightsBySeq(records: LogRecord[]): Map<number, { weightsHash: string; what: string }> {
  const out = new Map<number, { weightsHash: string; what: string }>();
  for (const r of records) {
    if (r.type === 'checkpoint.committed') out.set(r.seq, { weightsHash: r.data.weightsHash, what: `its ${r.data.kind} checkpoint ${r.data.index}, event ${r.seq}` });
    else if (r.type === 'snapshot.taken') out.set(r.seq, { weightsHash: r.data.weightsHash, what: `its snapshot at step ${r.data.step}, event ${r.seq}` });
  }
  return out;
}

/** A branch's start must be its parent's state at the branch point (where the parent's log holds
 * that state: a checkpoint or a snapshot at the point's event). */
export function checkLineage(lineage: Map<string, LineageFacts>, problems: FsckProblem[]): void {
  for (const [runId, facts] of lineage) {
    const parent = facts.created.parent;
    if (!parent) continue;
    const at = lineage.get(parent.runId)?.weightsAt.get(parent.seq);
    if (!at) continue;
    const m = branchPointProblem(facts.created, facts.ckpt0, at);
    if (m) problems.push({ runId, kind: 'start', seq: facts.ckpt0Seq ?? 0, message: `run "${runId}": ${m}` });
  }
}


/**
 * The fold check of one run, added to `report` (its problems, notes, state, blobsChecked):
 * `records` are the records that decoded, in seq order; `stop` the first seq the byte checks found
 * unreadable (the fold stops before it, and before the first record that fails the schema);
 * `committed`: whether a committed mark exists. Records the run's lineage facts in `lineage`.
 */
export async function verifyRunLog(
  report: FsckRunReport,
  raw: readonly StoredRecord[],
  stop: number | null,
  committed: boolean,
  blobs: BlobSource,
  lineage: Map<string, LineageFacts>,
): Promise<void> {
  const { runId, problems, notes } = report;
  const records: LogRecord[] = [];
  let stopFold = stop;
  for (const r of raw) {
    try {
      const rec = parseRecord(runId, r);
      if (stopFold === null || r.seq < stopFold) {
        if (records.length === r.seq) records.push(rec);
      }
    } catch (err) {
      problems.push({ runId, kind: 'schema', seq: r.seq, message: (err as Error).message });
      if (stopFold === null || r.seq < stopFold) stopFold = r.seq;
    }
  }
  // Only the gap-free prefix before the first unreadable or malformed record is folded.
  const folded = stopFold === null ? records : records.filter((r) => r.seq < stopFold!);
  if (stopFold !== null) notes.push(`machine and blob checks cover events 0..${stopFold - 1} (event ${stopFold} is unreadable)`);

  if (folded.length > 0) {
    const first = folded[0]!;
    report.state = checkMachine(runId, folded, problems);
    const before = blobs.checked;
    await checkBlobs(runId, folded, blobs, problems);
    report.blobsChecked = blobs.checked - before;
    if (first.type === 'run.created') {
      const ckpt0 = folded.find((r): r is Extract<LogRecord, { type: 'checkpoint.committed' }> => r.type === 'checkpoint.committed' && r.data.kind === 'initial');
      for (const m of checkpoint0Problems(first.data, ckpt0?.data ?? null)) {
        problems.push({ runId, kind: 'start', seq: ckpt0?.seq ?? 0, message: `run "${runId}": ${m}` });
      }
      lineage.set(runId, { created: first.data, ckpt0Seq: ckpt0?.seq ?? null, ckpt0: ckpt0?.data ?? null, weightsAt: weightsBySeq(folded) });
    }
  } else if (report.lastSeq >= 0 || committed) {
    problems.push({ runId, kind: 'schema', seq: 0, message: `run "${runId}" has no readable run.created event` });
  } else {
    notes.push('the log is empty: the run was stopped before it recorded its creation');
  }
}
