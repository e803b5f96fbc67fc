// One grammar for points of a run, used by every command that names one (`state --at`, `log
// --from/--to`, `replay --to/--from`, `export --checkpoint`, `branch RUN@POINT`, the dashboard):
// parsed once here into a discriminated union, and resolved once against a run's history.
// A new form (e.g. interrupt checkpoints) is one more member of `Point`, one more line in
// `parsePoint`, one more case in `resolvePoint`; the exhaustive switches make the compiler find
// every place that must handle it.
import type { CheckpointRecord, PointTimeline } from './history.js';

/** A point that is malformed or that a run does not have. */
export class PointError extends Error {
  override name = 'PointError';
}

/** The point's text is malformed: bad usage (the CLI exits 2), whatever run it names. */
export class PointSyntaxError extends PointError {
  override name = 'PointSyntaxError';
}

/**
 * - `best`: the best checkpoint by the monitored metric;
 * - `last`: the last checkpoint committed (an interrupt checkpoint too);
 * - `ckpt:K`: the checkpoint with training index K (0 = the run's start);
 * - `int:N`: the N-th interrupt checkpoint (a graceful stop's; not evaluated), counted from 1;
 * - `step:N`: the event after which the run had done N optimizer steps (`step:0` = checkpoint 0);
 * - an event number (seq).
 */
export type Point =
  | { kind: 'best' }
  | { kind: 'last' }
  | { kind: 'ckpt'; k: number }
  | { kind: 'int'; n: number }
  | { kind: 'step'; n: number }
  | { kind: 'seq'; seq: number };

export const POINT_FORMS = 'best, last, ckpt:K, int:N, step:N or an event number';

function count(text: string): number | null {
  if (!/^\d+$/.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : null;
}

/**
 * Parses a point. `what` names where it was typed (`--at`, `--from`, ...) for the message.
 * Throws PointSyntaxError (one line: the text and the valid forms) when it is malformed.
 */
export function parsePoint(text: string, what = 'point'): Point {
  const bad = () => new PointSyntaxError(`bad ${what} "${text}": expected ${POINT_FORMS}`);
  if (typeof text !== 'string') throw bad();
  if (text === 'best') return { kind: 'best' };
  if (text === 'last') return { kind: 'last' };
  const m = /^(ckpt|int|step):(.*)$/.exec(text);
  if (m) {
    const n = count(m[2]!);
    if (n === null || (m[1] === 'int' && n === 0)) throw bad();
    return m[1] === 'ckpt' ? { kind: 'ckpt', k: n } : m[1] === 'int' ? { kind: 'int', n } : { kind: 'step', n };
  }
  const seq = count(text);
  if (seq === null) throw bad();
  return { kind: 'seq', seq };
}

/**
 * An export's `--checkpoint`: a bare number K is checkpoint K (`ckpt:K`), not an event number;
 * the other forms as in `parsePoint`. Throws PointSyntaxError when malformed.
 */
export function parseCheckpointPoint(text: string, what = '--checkpoint'): Point {
  try {
    return parsePoint(/^\d+$/.test(text) ? `ckpt:${text}` : text, what);
  } catch (err) {
    if (!(err instanceof PointSyntaxError)) throw err;
    throw new PointSyntaxError(`bad ${what} "${text}": expected best, last, a checkpoint number K (or ckpt:K), int:N or step:N`);
  }
}

/** The point's canonical text (what `parsePoint` reads back to the same point). */
export function formatPoint(point: Point): string {
  switch (point.kind) {
    case 'best':
    case 'last':
      return point.kind;
    case 'ckpt':
      return `ckpt:${point.k}`;
    case 'int':
      return `int:${point.n}`;
    case 'step':
      return `step:${point.n}`;
    case 'seq':
      return String(point.seq);
    default: {
      const exhaustive: never = point;
      return exhaustive;
    }
  }
}

/** True for the points that always name a committed checkpoint (its weights are stored). */
export function isCheckpointPoint(point: Point): boolean {
  return point.kind === 'best' || point.kind === 'last' || point.kind === 'ckpt' || point.kind === 'int';
}

export interface ResolvedPoint {
  point: Point;
  /** The event the point names. */
  seq: number;
  /** Optimizer steps done after that event. */
  step: number;
  /** The checkpoint at or before `seq` (null before checkpoint 0 was committed). */
  checkpoint: CheckpointRecord | null;
  /** The checkpoint holds the weights at `step` (no re-execution needed to reach it). */
  exact: boolean;
}

/**
 * Finds what a point names in a run: a whole history in memory (RunHistory) or a run read from its
 * log on demand (RunReader), through the same questions (PointTimeline), so every command resolves
 * points alike. Throws PointError (exit 1: one line naming the run, the point and what the run
 * has) when the run does not have it.
 */
export async function resolvePoint(timeline: PointTimeline, pointOrText: Point | string, what?: string): Promise<ResolvedPoint> {
  const point = typeof pointOrText === 'string' ? parsePoint(pointOrText, what) : pointOrText;
  const runId = timeline.runId;
  const atCheckpoint = (rec: CheckpointRecord): ResolvedPoint => ({ point, seq: rec.seq, step: rec.data.step, checkpoint: rec, exact: true });
  const byIndex = (checkpoints: CheckpointRecord[], index: number) => checkpoints.find((c) => c.data.kind !== 'interrupt' && c.data.index === index) ?? null;
  let seq: number;
  switch (point.kind) {
    case 'best': {
      const ref = (await timeline.foldTo()).snapshot.context.best;
      if (!ref) throw new PointError(`run ${runId} has no best checkpoint yet (no evaluation has been made)`);
      const rec = byIndex(await timeline.listCheckpoints(), ref.index);
      if (!rec) throw new PointError(`run ${runId}: checkpoint ${ref.index} is not in the log`);
      return atCheckpoint(rec);
    }
    case 'last': {
      const rec = (await timeline.listCheckpoints()).at(-1);
      if (!rec) throw new PointError(`run ${runId} has no checkpoint yet`);
      return atCheckpoint(rec);
    }
    case 'ckpt': {
      const checkpoints = await timeline.listCheckpoints();
      const rec = byIndex(checkpoints, point.k);
      if (!rec) {
        const have = checkpoints.filter((c) => c.data.kind !== 'interrupt').map((c) => c.data.index);
        throw new PointError(`run ${runId} has no checkpoint ${point.k} (it has ${have.join(', ') || 'none'})`);
      }
      return atCheckpoint(rec);
    }
    case 'int': {
      const all = (await timeline.listCheckpoints()).filter((c) => c.data.kind === 'interrupt');
      const rec = all[point.n - 1];
      if (!rec) throw new PointError(`run ${runId} has no interrupt checkpoint ${point.n} (it has ${all.length === 0 ? 'none' : all.map((_, i) => `int:${i + 1}`).join(', ')})`);
      return atCheckpoint(rec);
    }
    case 'step': {
      const found = await timeline.stepSeq(point.n);
      if (found === null) throw new PointError(`run ${runId} has no step ${point.n} (it has done ${(await timeline.foldTo()).snapshot.context.step} steps)`);
      seq = found;
      break;
    }
    case 'seq':
      if (point.seq > timeline.lastSeq) throw new PointError(`run ${runId} has no event ${point.seq} (its last event is ${timeline.lastSeq})`);
      seq = point.seq;
      break;
    default: {
      const exhaustive: never = point;
      return exhaustive;
    }
  }
  const { snapshot, checkpoint } = await timeline.foldTo(seq);
  const step = snapshot.context.step;
  return { point, seq, step, checkpoint, exact: checkpoint !== null && checkpoint.data.step === step };
}

/** A checkpoint's name as a point: `ckpt:K` for the start and epoch checkpoints, `int:N` for the
 * N-th interrupt checkpoint (which evaluates nothing and has no training index of its own);
 * `checkpoints` is the run's checkpoints in order. */
export function checkpointName(checkpoints: readonly CheckpointRecord[], checkpoint: CheckpointRecord): string {
  if (checkpoint.data.kind !== 'interrupt') return `ckpt:${checkpoint.data.index}`;
  return `int:${checkpoints.filter((c) => c.data.kind === 'interrupt').findIndex((c) => c.seq === checkpoint.seq) + 1}`;
}

/** The checkpoint holding the weights at a resolved point (a step a checkpoint was committed at
 * counts), or null for a step between checkpoints (reached only by re-execution). */
export function checkpointHolding(checkpoints: readonly CheckpointRecord[], resolved: ResolvedPoint): CheckpointRecord | null {
  if (resolved.exact) return resolved.checkpoint;
  return checkpoints.find((c) => c.data.step === resolved.step) ?? null;
}
