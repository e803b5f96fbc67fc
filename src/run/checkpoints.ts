// `retrace checkpoints RUN`: every checkpoint of a run with its step, kind, metrics and weightsHash.
// Epoch checkpoints (and checkpoint 0) are `ckpt:K`; interrupt checkpoints are `int:N`, evaluate
// nothing and so have no metrics.
import { withStore, type StoreOption } from './common.js';
import type { RunHistory } from './history.js';
import { withReader } from './inspect.js';
import { checkpointName } from './points.js';
import { RunReader } from './reader.js';

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

/** Every checkpoint of a run, in the order they were committed: read through the log's index
 * (its checkpoints and evaluations), or from a history already in memory. */
export async function checkpointsOf(run: RunReader | RunHistory): Promise<CheckpointListing[]> {
  const reader = run instanceof RunReader ? run : await RunReader.open(run.asLog(), run.runId);
  const best = (await reader.stateAfter()).snapshot.context.best;
  const checkpoints = await reader.checkpoints();
  const evaluations = await reader.evaluations();
  let e = 0;
  let previous = -1;
  return checkpoints.map((c) => {
    const name = checkpointName(checkpoints, c);
    // The evaluation the driver logged just before committing this checkpoint: the last one
    // after the previous checkpoint, at this checkpoint's step.
    let evaluation: (typeof evaluations)[number] | null = null;
    while (e < evaluations.length && evaluations[e]!.seq < c.seq) {
      if (evaluations[e]!.seq > previous) evaluation = evaluations[e]!;
      e += 1;
    }
    previous = c.seq;
    const metrics =
      c.data.kind !== 'interrupt' && evaluation && evaluation.data.step === c.data.step
        ? { valLoss: evaluation.data.valLoss, valAccuracy: evaluation.data.valAccuracy }
        : null;
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
  return withStore(opts, async (store) => withReader(store, runId, (reader) => checkpointsOf(reader)));
}
