// The training machine's inputs: one typed event per fact the driver observed. The driver sends
// exactly these and logs exactly what it sends, so folding the log reproduces every snapshot.

/** Why a run stopped. `interrupted` is resumable as it is; under rules 2 a run stopped on budget,
 * early stop or plateau can be extended (`run.extended`) and trains on. */
export type StopReason = 'budget' | 'early-stop' | 'plateau' | 'diverged' | 'interrupted';

/** What kind of checkpoint was committed. Only `epoch` checkpoints count as one of the run's
 * `checkpoints`; `initial` is checkpoint 0; `interrupt` moves no training counter (rules 2: it is
 * numbered apart, `int:N`). */
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
 * 0 for initial, 1.. for epoch checkpoints; for interrupts, rules 1 repeated the index of the last
 * epoch one, rules 2 numbers them apart, 1.. in the order they were made (`int:N`). */
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

/** An export of a checkpoint finished. `kind` (rules 2) tells `ckpt:K` from `int:N`. */
export interface ExportFinished {
  type: 'export.finished';
  checkpoint: number;
  kind?: CheckpointKind;
  out: string;
}

/** Rules 2: the budget of a stopped run (budget, early stop, plateau or interrupt) was extended:
 * the schedule now ends at `totalSteps` with `checkpoints` checkpoints in all (schedule steps and
 * checkpoints, counted from the start of the schedule: see TrainingSettings.scheduleOffset). */
export interface RunExtended {
  type: 'run.extended';
  stopPoint: number;
  checkpoints: number;
  totalSteps: number;
}

export type TrainingEvent =
  | StepFinished
  | EvalFinished
  | CheckpointCommitted
  | StopRequested
  | RunResumed
  | ExportFinished
  | RunExtended;

export type TrainingEventType = TrainingEvent['type'];

export const TRAINING_EVENT_TYPES: readonly TrainingEventType[] = [
  'step.finished',
  'eval.finished',
  'checkpoint.committed',
  'stop.requested',
  'run.resumed',
  'export.finished',
  'run.extended',
];

export function isTrainingEvent(e: { type: string }): e is TrainingEvent {
  return (TRAINING_EVENT_TYPES as readonly string[]).includes(e.type);
}

/** The settings the machine decides with; fixed for a run (a branch gets its own). Fields marked
 * rules 2 are absent from runs made by retrace 0.1.0 (rules 1), which keep deciding as they did. */
export interface TrainingSettings {
  /** The rule version (absent = 1). See docs/architecture.md, "Rule versions". */
  rules?: number;
  /** Rules 1: every checkpoint comes after stepsPerEpoch steps. Rules 2: the longest gap between
   * checkpoints (checkpoints are spread over totalSteps as evenly as integers allow). */
  stepsPerEpoch: number;
  /** Budget in steps. Rules 1: stepsPerEpoch × checkpoints; rules 2: the step count closest to
   * trainingExamples × stopPoint / batchSize. */
  totalSteps: number;
  /** Rules 2: epoch checkpoints in the whole schedule. */
  checkpoints?: number;
  /** Rules 2: ReduceLROnPlateau is a policy, off unless asked for (rules 1: always on). */
  reduceLrOnPlateau?: boolean;
  /** Rules 2: where this run starts in a schedule it continues (a branch with no budget override
   * continues its parent's): schedule steps and epoch checkpoints done before its step 0. */
  scheduleOffset?: { step: number; checkpoints: number };
  /** Rules 2: warmup steps already done before step 0 (a branch inherits its parent's position). */
  warmupOffset?: number;
  /** Rules 2: the plan a branch continuing its parent's schedule starts with (absent: checkpoints
   * 1..checkpoints spread over 0..totalSteps). */
  plan?: SchedulePlan;
  /** Rules 2: controller state a branch inherits from its parent (absent: a fresh start). */
  inherited?: InheritedController;
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

/** ReduceLROnPlateau's and early stopping's state at a branch point, carried into the branch. */
export interface InheritedController {
  currentBaseLr: number;
  sinceImprovement: number;
  plateauWait: number;
  cooldownLeft: number;
  /** The best monitored value (oriented: smaller is better) the decisions compare against. */
  bestMetric: number | null;
}

/** Rules 2: the current stretch of the schedule, in schedule steps and epoch checkpoints (counted
 * from the schedule's start, which for a branch continuing its parent's schedule is the parent's):
 * checkpoints `fromCheckpoint+1 .. toCheckpoint` fall at `fromStep + floor(j × (toStep − fromStep) /
 * (toCheckpoint − fromCheckpoint))`, j = 1.., the last one at `toStep`, where the budget ends. */
export interface SchedulePlan {
  fromStep: number;
  fromCheckpoint: number;
  toStep: number;
  toCheckpoint: number;
}

