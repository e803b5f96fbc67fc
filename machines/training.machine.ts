// The training run as a state machine. Pure: no tfjs, no I/O, no clocks, no invoked, spawned or
// delayed actors. The driver (src/run) does the work and reports each fact as one event; this
// machine decides what happens next (learning-rate schedule, checkpoints, plateau, stopping).
//
//   idle ──checkpoint 0──▶ warmup ──warmupSteps──▶ training ──epoch boundary──▶ checkpointing
//                            │                       ▲  │                          │  │  │
//                            └──────epoch boundary───┼──┼──────────────────────────┘  │  │
//                                                    │  └──stop──▶ checkpointing(interrupt)
//                  plateau ◀──no improvement─────────┼─────────────────────────────┘  │
//                     └──next step──────────────────┘      budget/early-stop/plateau/diverged
//                                                                                     ▼
//                                         stopped ──export──▶ exported
//
// `stopped` is not a final state: export acts on it and `run.resumed` continues an interrupted run.
import { assign, setup } from 'xstate';
import type {
  CheckpointCommitted,
  EvalFinished,
  StepFinished,
  StopReason,
  TrainingEvent,
  TrainingSettings,
} from './training.events.js';

export type TrainingStateName = 'idle' | 'warmup' | 'training' | 'checkpointing' | 'plateau' | 'stopped' | 'exported';

/** States a stop request may interrupt, and so where `run.resumed` returns to. */
export type ActiveState = 'warmup' | 'training' | 'plateau';

export interface Evaluation {
  step: number;
  valLoss: number;
  valAccuracy: number;
}

export interface CheckpointRef {
  index: number;
  step: number;
  weightsHash: string;
}

export interface TrainingContext {
  settings: TrainingSettings;
  /** Optimizer steps done. */
  step: number;
  examplesSeen: number;
  /** The learning rate the next step uses. */
  lr: number;
  /** The rate after warmup: baseLr, reduced by each plateau, never below minLr. */
  currentBaseLr: number;
  /** Epoch checkpoints committed (0 before the first). */
  epochCheckpoints: number;
  lastEval: Evaluation | null;
  /** The checkpoint with the best monitored metric so far (checkpoint 0 included). */
  best: (CheckpointRef & { metric: number }) | null;
  /** The last committed checkpoint of any kind. */
  lastCheckpoint: (CheckpointRef & { kind: CheckpointCommitted['kind'] }) | null;
  /** Evaluations since the best improved (early stopping's wait). */
  sinceImprovement: number;
  /** Evaluations without improvement since the last rate reduction (ReduceLROnPlateau's wait). */
  plateauWait: number;
  /** Evaluations left during which plateauWait does not grow after a reduction. */
  cooldownLeft: number;
  /** Whether the last evaluation improved on the best by more than minDelta. */
  improved: boolean;
  stopReason: StopReason | null;
  /** Where an interrupt was requested from: the state `run.resumed` returns to. */
  interruptedFrom: ActiveState | null;
  /** The last export, once exported. */
  exported: { checkpoint: number; out: string } | null;
}

/** The metric the monitor watches, oriented so that smaller is better. */
export function monitoredValue(settings: TrainingSettings, evaluation: Evaluation): number {
  return settings.monitor === 'valAccuracy' ? -evaluation.valAccuracy : evaluation.valLoss;
}

/** Linear warmup to the current base rate over warmupSteps, then the base rate. */
export function learningRateForStep(settings: TrainingSettings, currentBaseLr: number, step: number): number {
  if (step < settings.warmupSteps) return (currentBaseLr * (step + 1)) / settings.warmupSteps;
  return currentBaseLr;
}

export function initialContext(settings: TrainingSettings): TrainingContext {
  return {
    settings,
    step: 0,
    examplesSeen: 0,
    lr: learningRateForStep(settings, settings.baseLr, 0),
    currentBaseLr: settings.baseLr,
    epochCheckpoints: 0,
    lastEval: null,
    best: null,
    lastCheckpoint: null,
    sinceImprovement: 0,
    plateauWait: 0,
    cooldownLeft: 0,
    improved: false,
    stopReason: null,
    interruptedFrom: null,
    exported: null,
  };
}

type Ctx = { context: TrainingContext; event: TrainingEvent };

function isDivergedStep({ context, event }: Ctx): boolean {
  const e = event as StepFinished;
  if (!Number.isFinite(e.loss) || e.weightsFinite === false) return true;
  const threshold = context.settings.divergenceThreshold;
  return threshold !== null && e.loss > threshold;
}

/** After a step: the step that ended a virtual epoch goes to checkpointing. */
function reachedEpochBoundary({ context, event }: Ctx): boolean {
  const step = (event as StepFinished).step;
  return step > 0 && step % context.settings.stepsPerEpoch === 0;
}

function stillWarmingUp({ context, event }: Ctx): boolean {
  return (event as StepFinished).step < context.settings.warmupSteps;
}

function isKind(kind: CheckpointCommitted['kind']) {
  return ({ event }: Ctx) => (event as CheckpointCommitted).kind === kind;
}

/** Counters after an epoch checkpoint, computed once so guards and the action agree. */
function afterEpochCheckpoint(context: TrainingContext, event: CheckpointCommitted): TrainingContext {
  const improved = context.improved;
  const inCooldown = context.cooldownLeft > 0;
  const metric = context.lastEval ? monitoredValue(context.settings, context.lastEval) : Number.POSITIVE_INFINITY;
  return {
    ...context,
    epochCheckpoints: event.index,
    lastCheckpoint: { index: event.index, step: event.step, weightsHash: event.weightsHash, kind: event.kind },
    best: improved ? { index: event.index, step: event.step, weightsHash: event.weightsHash, metric } : context.best,
    sinceImprovement: improved ? 0 : context.sinceImprovement + 1,
    plateauWait: inCooldown || improved ? 0 : context.plateauWait + 1,
    cooldownLeft: inCooldown ? context.cooldownLeft - 1 : 0,
  };
}

function budgetReached({ context }: Ctx): boolean {
  return context.step >= context.settings.totalSteps;
}

function earlyStopDue({ context, event }: Ctx): boolean {
  const next = afterEpochCheckpoint(context, event as CheckpointCommitted);
  return context.settings.earlyStopping && next.sinceImprovement >= context.settings.earlyStopPatience;
}

function plateauDue({ context, event }: Ctx): boolean {
  const next = afterEpochCheckpoint(context, event as CheckpointCommitted);
  return next.plateauWait >= context.settings.plateauPatience;
}

function atMinLr({ context }: Ctx): boolean {
  return context.currentBaseLr <= context.settings.minLr;
}

export const trainingMachine = setup({
  types: {
    context: {} as TrainingContext,
    events: {} as TrainingEvent,
    input: {} as TrainingSettings,
  },
  guards: {
    isDivergedStep,
    reachedEpochBoundary,
    stillWarmingUp,
    isInitialCheckpoint: isKind('initial'),
    isEpochCheckpoint: isKind('epoch'),
    isInterruptCheckpoint: isKind('interrupt'),
    budgetReached,
    earlyStopDue,
    plateauDue: (args: Ctx) => plateauDue(args) && !atMinLr(args),
    plateauAtMinLr: (args: Ctx) => plateauDue(args) && atMinLr(args),
    warmupNotOver: ({ context }: Ctx) => context.step < context.settings.warmupSteps,
    wasInterrupted: ({ context }: Ctx) => context.stopReason === 'interrupted',
    resumeToWarmup: ({ context }: Ctx) => context.interruptedFrom === 'warmup',
    resumeToPlateau: ({ context }: Ctx) => context.interruptedFrom === 'plateau',
  },
  actions: {
    countStep: assign(({ context, event }) => {
      const e = event as StepFinished;
      return {
        step: e.step,
        examplesSeen: e.examplesSeen,
        lr: learningRateForStep(context.settings, context.currentBaseLr, e.step),
      };
    }),
    recordEval: assign(({ context, event }) => {
      const e = event as EvalFinished;
      const evaluation: Evaluation = { step: e.step, valLoss: e.valLoss, valAccuracy: e.valAccuracy };
      const metric = monitoredValue(context.settings, evaluation);
      // NaN never improves; the first evaluation (checkpoint 0) always sets the best.
      const improved = context.best === null ? Number.isFinite(metric) : metric < context.best.metric - context.settings.minDelta;
      return { lastEval: evaluation, improved };
    }),
    commitInitial: assign(({ context, event }) => {
      const e = event as CheckpointCommitted;
      const ref = { index: e.index, step: e.step, weightsHash: e.weightsHash };
      const metric = context.lastEval ? monitoredValue(context.settings, context.lastEval) : Number.POSITIVE_INFINITY;
      return {
        lastCheckpoint: { ...ref, kind: e.kind },
        best: { ...ref, metric },
        improved: false,
      };
    }),
    commitEpoch: assign(({ context, event }) => afterEpochCheckpoint(context, event as CheckpointCommitted)),
    commitInterrupt: assign(({ event }) => {
      const e = event as CheckpointCommitted;
      // An interrupt checkpoint moves no counter: a resumed run's schedule equals the uninterrupted one.
      return { lastCheckpoint: { index: e.index, step: e.step, weightsHash: e.weightsHash, kind: e.kind } };
    }),
    reduceLr: assign(({ context }) => {
      const currentBaseLr = Math.max(context.settings.minLr, context.currentBaseLr * context.settings.lrFactor);
      return {
        currentBaseLr,
        lr: learningRateForStep(context.settings, currentBaseLr, context.step),
        plateauWait: 0,
        cooldownLeft: context.settings.cooldown,
      };
    }),
    markInterruptedFrom: assign((_, params: { from: ActiveState }) => ({ interruptedFrom: params.from })),
    stopWith: assign((_, params: { reason: StopReason }) => ({ stopReason: params.reason })),
    clearStop: assign({ stopReason: null, interruptedFrom: null }),
    recordExport: assign(({ event }) => {
      const e = event as { checkpoint: number; out: string };
      return { exported: { checkpoint: e.checkpoint, out: e.out } };
    }),
  },
}).createMachine({
  id: 'training',
  initial: 'idle',
  context: ({ input }) => initialContext(input),
  states: {
    // Before checkpoint 0: the driver evaluates the starting weights and commits them.
    idle: {
      on: {
        'eval.finished': { actions: 'recordEval' },
        'checkpoint.committed': [
          { guard: { type: 'isInitialCheckpoint' }, target: 'warmup', actions: 'commitInitial' },
        ],
      },
    },
    warmup: {
      always: { guard: ({ context }) => context.step >= context.settings.warmupSteps, target: 'training' },
      on: {
        'step.finished': [
          { guard: 'isDivergedStep', target: 'stopped', actions: ['countStep', { type: 'stopWith', params: { reason: 'diverged' } }] },
          { guard: 'reachedEpochBoundary', target: 'checkpointing', actions: 'countStep' },
          { guard: 'stillWarmingUp', actions: 'countStep' },
          { target: 'training', actions: 'countStep' },
        ],
        'stop.requested': {
          target: 'checkpointing',
          actions: { type: 'markInterruptedFrom', params: { from: 'warmup' } },
        },
      },
    },
    training: {
      on: {
        'step.finished': [
          { guard: 'isDivergedStep', target: 'stopped', actions: ['countStep', { type: 'stopWith', params: { reason: 'diverged' } }] },
          { guard: 'reachedEpochBoundary', target: 'checkpointing', actions: 'countStep' },
          { actions: 'countStep' },
        ],
        'stop.requested': {
          target: 'checkpointing',
          actions: { type: 'markInterruptedFrom', params: { from: 'training' } },
        },
      },
    },
    // A virtual-epoch boundary (evaluate, commit, decide) or an interrupt (commit only).
    checkpointing: {
      on: {
        'eval.finished': { actions: 'recordEval' },
        'checkpoint.committed': [
          {
            guard: 'isInterruptCheckpoint',
            target: 'stopped',
            actions: ['commitInterrupt', { type: 'stopWith', params: { reason: 'interrupted' } }],
          },
          // Precedence when several hold: budget, then early stop, then plateau.
          {
            guard: 'budgetReached',
            target: 'stopped',
            actions: ['commitEpoch', { type: 'stopWith', params: { reason: 'budget' } }],
          },
          {
            guard: 'earlyStopDue',
            target: 'stopped',
            actions: ['commitEpoch', { type: 'stopWith', params: { reason: 'early-stop' } }],
          },
          {
            guard: 'plateauAtMinLr',
            target: 'stopped',
            actions: ['commitEpoch', { type: 'stopWith', params: { reason: 'plateau' } }],
          },
          { guard: 'plateauDue', target: 'plateau', actions: ['commitEpoch', 'reduceLr'] },
          { guard: 'warmupNotOver', target: 'warmup', actions: 'commitEpoch' },
          { target: 'training', actions: 'commitEpoch' },
        ],
      },
    },
    // The learning rate was just reduced; the next step runs at the new rate and training goes on.
    plateau: {
      on: {
        'step.finished': [
          { guard: 'isDivergedStep', target: 'stopped', actions: ['countStep', { type: 'stopWith', params: { reason: 'diverged' } }] },
          { guard: 'reachedEpochBoundary', target: 'checkpointing', actions: 'countStep' },
          { target: 'training', actions: 'countStep' },
        ],
        'stop.requested': {
          target: 'checkpointing',
          actions: { type: 'markInterruptedFrom', params: { from: 'plateau' } },
        },
      },
    },
    stopped: {
      on: {
        'run.resumed': [
          { guard: { type: 'resumeToWarmup' }, target: 'warmup', actions: 'clearStop' },
          { guard: { type: 'resumeToPlateau' }, target: 'plateau', actions: 'clearStop' },
          { guard: 'wasInterrupted', target: 'training', actions: 'clearStop' },
        ],
        'export.finished': { target: 'exported', actions: 'recordExport' },
      },
    },
    exported: {
      on: {
        'export.finished': { actions: 'recordExport' },
      },
    },
  },
});

export type TrainingMachine = typeof trainingMachine;
