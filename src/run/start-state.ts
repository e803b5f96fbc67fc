// Checks of a run's starting state (run.created.start, written by startRun before the event). A
// branch killed after its
// run.created and before its checkpoint 0 used to resume from the parent's step-0 initialisation
// (rebuilt from the seed), not from the branch point, while its lineage still named the point and
// fsck and replay said clean. Now every run (fresh, branch, init-from) writes its starting weights
// and optimizer slots as blobs first and names them in run.created; resume restores them when no
// checkpoint is committed, and fsck and replay check (here) that checkpoint 0 is exactly that state
// and, for a branch, that it is the parent's state at the branch point.
import type { CheckpointData, RunCreated, TensorRef } from '../log/events.js';

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
