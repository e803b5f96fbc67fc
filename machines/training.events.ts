// The training machine's inputs: one typed event per fact the driver observed. The driver sends
// exactly these and logs exactly what it sends, so folding the log reproduces every snapshot.

/** Why a run stopped. `interrupted` is the only resumable one. */
export type StopReason = 'budget' | 'early-stop' | 'plateau' | 'diverged' | 'interrupted';

/** What kind of checkpoint was committed. Only `epoch` checkpoints count as one of the run's
 * `checkpoints`; `initial` is checkpoint 0; `interrupt` moves no counter. */
export type CheckpointKind = 'initial' | 'epoch' | 'interrupt';

/** One optimizer step finished. `lr` is the rate it used; `weightsFinite` is checked at
 * virtual-epoch boundaries only (hashing every step would cost the hot path). */
export interface StepFinished {
  type: 'step.finished';
  step: number;
  loss: number;
  lr: number;
  examplesSeen: number;
  weightsFinite?: boolean;
}

/** Validation finished for the weights after `step`. */
export interface EvalFinished {
  type: 'eval.finished';
  step: number;
  valLoss: number;
  valAccuracy: number;
}

/** A checkpoint is durable (blobs fsynced, event synced). `index` is the checkpoint's number:
 * 0 for initial, 1.. for epoch checkpoints, and for interrupts the index of the last epoch one. */
export interface CheckpointCommitted {
  type: 'checkpoint.committed';
  kind: CheckpointKind;
  index: number;
  step: number;
  weightsHash: string;
}

/** Someone asked the run to stop (Ctrl-C, SIGTERM, an AbortSignal). */
export interface StopRequested {
  type: 'stop.requested';
  source: 'signal' | 'api';
}

/** An interrupted run continues. */
export interface RunResumed {
  type: 'run.resumed';
}

/** An export of a checkpoint finished. */
export interface ExportFinished {
  type: 'export.finished';
  checkpoint: number;
  out: string;
}

export type TrainingEvent =
  | StepFinished
  | EvalFinished
  | CheckpointCommitted
  | StopRequested
  | RunResumed
  | ExportFinished;

export type TrainingEventType = TrainingEvent['type'];

export const TRAINING_EVENT_TYPES: readonly TrainingEventType[] = [
  'step.finished',
  'eval.finished',
  'checkpoint.committed',
  'stop.requested',
  'run.resumed',
  'export.finished',
];

export function isTrainingEvent(e: { type: string }): e is TrainingEvent {
  return (TRAINING_EVENT_TYPES as readonly string[]).includes(e.type);
}

/** The settings the machine decides with; fixed for a run (a branch gets its own). */
export interface TrainingSettings {
  stepsPerEpoch: number;
  /** Budget: stepsPerEpoch × checkpoints. */
  totalSteps: number;
  batchSize: number;
  warmupSteps: number;
  baseLr: number;
  minLr: number;
  lrFactor: number;
  minDelta: number;
  plateauPatience: number;
  cooldown: number;
  earlyStopping: boolean;
  earlyStopPatience: number;
  monitor: 'valLoss' | 'valAccuracy';
  /** Loss above this stops the run as diverged; null = off. */
  divergenceThreshold: number | null;
}
