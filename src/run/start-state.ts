// A run's starting state, made durable before the run exists. A branch killed after its
// run.created and before its checkpoint 0 used to resume from the parent's step-0 initialisation
// (rebuilt from the seed), not from the branch point, while its lineage still named the point and
// fsck and replay said clean. Now every run (fresh, branch, init-from) writes its starting weights
// and optimizer slots as blobs first and names them in run.created; resume restores them when no
// checkpoint is committed, and fsck and replay check that checkpoint 0 is exactly that state and,
// for a branch, that it is the parent's state at the branch point.
import type { BlobIntent } from '../log/blob-intents.js';
import type { BlobStore } from '../log/blobs.js';
import type { CheckpointData, RunCreated, StartState, TensorRef } from '../log/events.js';
import type { TrainerState } from '../train/types.js';
import { hashWeightsAsync, persistTensors } from './snapshots.js';

/**
 * Writes `state`'s tensors as blobs (durable when this resolves) and returns run.created's
 * `start`. `intent` (BlobStore.intent) names them to every gc until the caller releases it, once
 * run.created is durable.
 */
export async function persistStartState(blobs: BlobStore, state: TrainerState, intent: BlobIntent): Promise<StartState> {
  const [weightsHash, weights, optimizer] = await Promise.all([
    hashWeightsAsync(state.weights),
    persistTensors(blobs, state.weights, intent),
    persistTensors(blobs, state.optimizer, intent),
  ]);
  return { weightsHash, weights, optimizer };
}

function sameRefs(a: readonly TensorRef[], b: readonly TensorRef[]): boolean {
  return a.length === b.length && a.every((t, i) => t.hash === b[i]!.hash && t.name === b[i]!.name && t.bytes === b[i]!.bytes);
}

/**
 * What is wrong between checkpoint 0 and run.created's `start`, as one-line messages (empty when
 * nothing is): checkpoint 0 must hold exactly that state (weights, optimizer slots, weightsHash).
 */
export function checkpoint0Problems(created: RunCreated, checkpoint0: CheckpointData | null): string[] {
  const start = created.start;
  if (!start || !checkpoint0) return [];
  if (checkpoint0.weightsHash !== start.weightsHash || !sameRefs(checkpoint0.weights, start.weights)) {
    return [`checkpoint 0 has weights ${checkpoint0.weightsHash.slice(0, 12)}…, not the start state run.created names (${start.weightsHash.slice(0, 12)}…)`];
  }
  if (!sameRefs(checkpoint0.optimizer, start.optimizer)) return ['checkpoint 0 has other optimizer slots than the start state run.created names'];
  return [];
}

/**
 * A branch's start (or, in logs older than `start`, its checkpoint 0) must have the weightsHash of
 * the parent's checkpoint or snapshot at the branch point. Null when it does, or when the parent's
 * state there is not known (`parentAt` null: the parent is gone, or the point is a step between
 * checkpoints, which only re-execution can check: `retrace replay --verify` of the parent).
 */
export function branchPointProblem(
  created: RunCreated,
  checkpoint0: CheckpointData | null,
  parentAt: { weightsHash: string; what: string } | null,
): string | null {
  const startHash = created.start?.weightsHash ?? checkpoint0?.weightsHash;
  if (!created.parent || !parentAt || !startHash || startHash === parentAt.weightsHash) return null;
  return `it starts from weights ${startHash.slice(0, 12)}…, not from ${created.parent.runId}@${created.parent.point} (${parentAt.what}, weights ${parentAt.weightsHash.slice(0, 12)}…)`;
}
