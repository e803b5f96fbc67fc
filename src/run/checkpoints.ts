// `retrace checkpoints RUN`: every checkpoint of a run with its step, kind, metrics and weightsHash.
// Epoch checkpoints (and checkpoint 0) are `ckpt:K`; interrupt checkpoints are `int:N`, evaluate
// nothing and so have no metrics.
import { withStore, type StoreOption } from './common.js';
import type { RunHistory } from './history.js';
import { readRun } from './inspect.js';

export interface CheckpointListing {
  /** The checkpoint as a point: `ckpt:K` or `int:N`. */
  name: string;
  kind: 'initial' | 'epoch' | 'interrupt';
  /** K of `ckpt:K` or N of `int:N`. */
  index: number;
  /** The event that committed it. */
  seq: number;
  step: number;
  examplesSeen: number;
  weightsHash: string;
  /** The evaluation of these weights; null for an interrupt checkpoint (not evaluated). */
  metrics: { valLoss: number; valAccuracy: number } | null;
  /** Whether this is the run's `best` checkpoint. */
  best: boolean;
}

/** Every checkpoint of a run, in the order they were committed. */
export function checkpointsOf(history: RunHistory): CheckpointListing[] {
  const best = history.snapshotAt().snapshot.context.best;
  return history.checkpoints.map((c) => {
    const name = history.checkpointName(c);
    let metrics: CheckpointListing['metrics'] = null;
    if (c.data.kind !== 'interrupt') {
      // The evaluation the driver logged just before committing this checkpoint.
      for (let i = c.seq - 1; i >= 0; i -= 1) {
        const r = history.records[i]!;
        if (r.type === 'eval.finished') {
          if (r.data.step === c.data.step) metrics = { valLoss: r.data.valLoss, valAccuracy: r.data.valAccuracy };
          break;
        }
        if (r.type === 'checkpoint.committed' || r.type === 'step.finished') break;
      }
    }
    return {
      name,
      kind: c.data.kind,
      index: Number(name.slice(name.indexOf(':') + 1)),
      seq: c.seq,
      step: c.data.step,
      examplesSeen: c.data.examplesSeen,
      weightsHash: c.data.weightsHash,
      metrics,
      best: c.data.kind !== 'interrupt' && best !== null && best.index === c.data.index,
    };
  });
}

export async function listCheckpoints(runId: string, opts: StoreOption = {}): Promise<CheckpointListing[]> {
  return withStore(opts, async (store) => checkpointsOf(await readRun(store, runId)));
}
