// The chaos harness's observations: a run read as a kill left it (through the store's 'read'
// mode, never touching the original), and the comparison of a later read with it — every
// committed event unchanged — with the problems a chaos run reports.
import { stateName } from '../../machines/fold.js';
import { canonicalJson } from '../log/codec.js';
import { UnknownRunError } from '../log/errors.js';
import { parseRecord } from '../log/events.js';
import type { StoredRecord } from '../log/run-log.js';
import { Store } from '../log/store.js';
import { RunHistory } from '../run/history.js';

export interface RunSnapshot {
  /** Every record in the log, by seq (canonical JSON of the whole stored record). */
  records: string[];
  committedSeq: number;
  /** Machine state after the last event, or 'empty' if the log holds no run.created. */
  state: string;
  stopReason: string | null;
  step: number;
  /** The last checkpoint's step (where a resume restarts), or 0. */
  checkpointStep: number;
  /** Set when the log could not be read. */
  error: string | null;
}

/** Reads a run through the store's 'read' mode (a private copy: the original is not touched). */
export async function snapshotRun(storeDir: string, runId: string): Promise<RunSnapshot> {
  const store = await Store.open(storeDir);
  try {
    const log = await store.openRun(runId, 'read');
    let raw: StoredRecord[];
    let committedSeq: number;
    try {
      raw = await log.readAll();
      committedSeq = await log.committedSeq();
    } finally {
      await log.close();
    }
    const records = raw.map((r) => canonicalJson(r));
    if (raw.length === 0) {
      return { records, committedSeq, state: 'empty', stopReason: null, step: 0, checkpointStep: 0, error: null };
    }
    const history = new RunHistory(
      runId,
      raw.map((r) => parseRecord(runId, r)),
    );
    const { snapshot } = history.snapshotAt();
    const last = history.checkpoints.at(-1);
    return {
      records,
      committedSeq,
      state: stateName(snapshot),
      stopReason: snapshot.context.stopReason,
      step: snapshot.context.step,
      checkpointStep: last?.data.step ?? 0,
      error: null,
    };
  } catch (err) {
    // Killed before train claimed the run: nothing to read, train starts it again.
    if (err instanceof UnknownRunError) return { records: [], committedSeq: -1, state: 'empty', stopReason: null, step: 0, checkpointStep: 0, error: null };
    return { records: [], committedSeq: -1, state: 'unreadable', stopReason: null, step: 0, checkpointStep: 0, error: (err as Error).message };
  } finally {
    await store.close();
  }
}

export interface ChaosProblem {
  runId: string;
  kind:
    | 'divergence'
    | 'hash-mismatch'
    | 'lost-committed'
    | 'changed-uncommitted'
    | 'gap'
    | 'unreadable'
    | 'not-interrupted'
    | 'replay'
    | 'fsck'
    | 'process'
    | 'gc'
    /** the operations round (ops-round.ts): an export folder that is neither the old nor the new export */
    | 'mixed-export'
    /** the operations round: part of an rm's subtree left after the next command */
    | 'partial-rm'
    /** the operations round: a temporary folder or trash left after the next command */
    | 'leftover';
  message: string;
}

export interface KillCheck {
  snapshot: RunSnapshot;
  /** Snapshot index in the run's list of kills. */
  index: number;
}

/** Compares a later read of the log with what a kill left: committed events must be unchanged. */
export function compareWithKill(runId: string, kill: RunSnapshot, now: string[], problems: ChaosProblem[], counts: { lostCommitted: number; lostUncommitted: number }, label: string): void {
  for (let seq = 0; seq < kill.records.length; seq += 1) {
    if (now[seq] === kill.records[seq]) continue;
    if (seq <= kill.committedSeq) {
      counts.lostCommitted += 1;
      problems.push({
        runId,
        kind: 'lost-committed',
        message: `${label}: committed event ${seq} (committed seq was ${kill.committedSeq}) is ${now[seq] === undefined ? 'missing' : `changed: ${now[seq]!.slice(0, 120)}`}`,
      });
    } else {
      counts.lostUncommitted += 1;
      problems.push({
        runId,
        kind: 'changed-uncommitted',
        message: `${label}: event ${seq} (past committed seq ${kill.committedSeq}) that was in the log is ${now[seq] === undefined ? 'missing' : 'changed'}`,
      });
    }
  }
}
