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
//                                         stopped ──export (rules 1)──▶ exported
//
// warmup, training and plateau are children of one parent state, `active`, which handles what
// they share (a step, a divergence, an export); stored snapshots and logs name them flat.
//
// `stopped` is not a final state: `run.resumed` continues an interrupted run, `run.extended` gives
// a run a longer budget, and export records itself (rules 1: export moved the run to `exported`).
//
// Rule versions: a run records the rules it was made with (settings.rules; absent = 1, retrace
// 0.1.0) and every guard below that changed consults it, so old logs fold exactly as they were
// written. Rules 2: the schedule is a plan of checkpoints spread evenly over a step budget (and can
// be extended), ReduceLROnPlateau is opt-in, export leaves a stopped run stopped, interrupt
// checkpoints are numbered apart, a branch may start from inherited controller state.
import { and, assertEvent, assign, setup, stateIn } from 'xstate';
import type { CheckpointCommitted, CheckpointKind, RunExtended, SchedulePlan, StopReason, TrainingEvent, TrainingSettings } from './training.events.js';

export type { SchedulePlan } from './training.events.js';

/** The rule version new runs are made with (recorded in run.created and in their settings). */
export const CURRENT_RULES = 2;

/** The rule version a run decides with (absent = 1: retrace 0.1.0's rules). */
export function rulesOf(settings: TrainingSettings): number {
  return settings.rules ?? 1;
}

/** Whether schedule step `s` ends a virtual epoch of `plan` (exact integer arithmetic). */
export function isPlanBoundary(plan: SchedulePlan, s: number): boolean {
  const length = plan.toStep - plan.fromStep;
  const count = plan.toCheckpoint - plan.fromCheckpoint;
  if (s <= plan.fromStep || s > plan.toStep || length <= 0 || count <= 0) return false;
  const j = Math.ceil(((s - plan.fromStep) * count) / length);
  return plan.fromStep + Math.floor((j * length) / count) === s;
}

/** The plan a run of these settings starts with. */
export function initialPlan(settings: TrainingSettings): SchedulePlan {
  return { fromStep: 0, fromCheckpoint: 0, toStep: settings.totalSteps, toCheckpoint: settings.checkpoints ?? settings.totalSteps / settings.stepsPerEpoch };
}

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
  lastCheckpoint: (CheckpointRef & { kind: CheckpointKind }) | null;
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
  exported: { checkpoint: number; kind?: CheckpointKind; out: string } | null;
  /** Rules 2: the schedule being followed (absent under rules 1: stepsPerEpoch and totalSteps). */
  plan?: SchedulePlan;
  /** Rules 2: the best monitored value (smaller is better) improvement is measured against; for
   * a branch it starts at its parent's, so the branch decides as the parent would have. */
  bestMetric?: number | null;
  /** Rules 2: interrupt checkpoints committed (the last one is `int:N`). */
  interrupts?: number;
}

/** The metric the monitor watches, oriented so that smaller is better. */
export function monitoredValue(settings: TrainingSettings, evaluation: Evaluation): number {
  return settings.monitor === 'valAccuracy' ? -evaluation.valAccuracy : evaluation.valLoss;
}

/** Steps of warmup done after `step` steps of this run (a branch may inherit a position). */
function warmupPosition(settings: TrainingSettings, step: number): number {
  return (settings.warmupOffset ?? 0) + step;
}

/** Linear warmup to the current base rate over warmupSteps, then the base rate. */
export function learningRateForStep(settings: TrainingSettings, currentBaseLr: number, step: number): number {
  const position = warmupPosition(settings, step);
  if (position < settings.warmupSteps) return (currentBaseLr * (position + 1)) / settings.warmupSteps;
  return currentBaseLr;
}

function warmingUp(settings: TrainingSettings, step: number): boolean {
  return warmupPosition(settings, step) < settings.warmupSteps;
}

/** The schedule step after `step` steps of this run. */
export function scheduleStep(settings: TrainingSettings, step: number): number {
  return (settings.scheduleOffset?.step ?? 0) + step;
}

/** Whether the step that brought the run to `step` steps ends a virtual epoch (a checkpoint is due). */
export function isCheckpointStep(context: TrainingContext, step: number): boolean {
  if (!context.plan) return step > 0 && step % context.settings.stepsPerEpoch === 0;
  return step > 0 && isPlanBoundary(context.plan, scheduleStep(context.settings, step));
}

/** The step budget a run starts with, in its own steps (a branch continuing its parent's schedule
 * has what the parent had left). */
export function initialBudget(settings: TrainingSettings): number {
  return (settings.plan?.toStep ?? settings.totalSteps) - (settings.scheduleOffset?.step ?? 0);
}

/** The step budget in this run's steps: where the current plan ends. */
export function budgetSteps(context: TrainingContext): number {
  if (!context.plan) return context.settings.totalSteps;
  return context.plan.toStep - (context.settings.scheduleOffset?.step ?? 0);
}

export function initialContext(settings: TrainingSettings): TrainingContext {
  const inherited = settings.inherited;
  const currentBaseLr = inherited?.currentBaseLr ?? settings.baseLr;
  const context: TrainingContext = {
    settings,
    step: 0,
    examplesSeen: 0,
    lr: learningRateForStep(settings, currentBaseLr, 0),
    currentBaseLr,
    epochCheckpoints: 0,
    lastEval: null,
    best: null,
    lastCheckpoint: null,
    sinceImprovement: inherited?.sinceImprovement ?? 0,
    plateauWait: inherited?.plateauWait ?? 0,
    cooldownLeft: inherited?.cooldownLeft ?? 0,
    improved: false,
    stopReason: null,
    interruptedFrom: null,
    exported: null,
  };
  // Rules 1 contexts keep exactly their old shape: their stored snapshots must still match a fold.
  if (rulesOf(settings) >= 2) {
    context.plan = inheritedPlan(settings);
    context.bestMetric = inherited?.bestMetric ?? null;
    context.interrupts = 0;
  }
  return context;
}

function inheritedPlan(settings: TrainingSettings): SchedulePlan {
  return settings.plan ?? initialPlan(settings);
}

type Ctx = { context: TrainingContext; event: TrainingEvent };

function isDivergedStep({ context, event }: Ctx): boolean {
  assertEvent(event, 'step.finished');
  const e = event.data;
  if (!Number.isFinite(e.loss) || e.weightsFinite === false) return true;
  const threshold = context.settings.divergenceThreshold;
  return threshold !== null && e.loss > threshold;
}

/** After a step: the step that ended a virtual epoch goes to checkpointing. */
function reachedEpochBoundary({ context, event }: Ctx): boolean {
  assertEvent(event, 'step.finished');
  return isCheckpointStep(context, event.data.step);
}

function stillWarmingUp({ context, event }: Ctx): boolean {
  assertEvent(event, 'step.finished');
  return warmingUp(context.settings, event.data.step);
}

function isKind(kind: CheckpointKind) {
  return ({ event }: Ctx) => {
    assertEvent(event, 'checkpoint.committed');
    return event.data.kind === kind;
  };
}

/** Counters after an epoch checkpoint, computed once so guards and the action agree. */
function afterEpochCheckpoint(context: TrainingContext, { data: event }: CheckpointCommitted): TrainingContext {
  const improved = context.improved;
  const inCooldown = context.cooldownLeft > 0;
  const metric = context.lastEval ? monitoredValue(context.settings, context.lastEval) : Number.POSITIVE_INFINITY;
  const next: TrainingContext = {
    ...context,
    epochCheckpoints: event.index,
    lastCheckpoint: { index: event.index, step: event.step, weightsHash: event.weightsHash, kind: event.kind },
    best: improved ? { index: event.index, step: event.step, weightsHash: event.weightsHash, metric } : context.best,
    sinceImprovement: improved ? 0 : context.sinceImprovement + 1,
    plateauWait: inCooldown || improved ? 0 : context.plateauWait + 1,
    cooldownLeft: inCooldown ? context.cooldownLeft - 1 : 0,
  };
  if (context.bestMetric !== undefined && improved) next.bestMetric = metric;
  return next;
}

function budgetReached({ context }: Ctx): boolean {
  return context.step >= budgetSteps(context);
}

function earlyStopDue({ context, event }: Ctx): boolean {
  assertEvent(event, 'checkpoint.committed');
  const next = afterEpochCheckpoint(context, event);
  return context.settings.earlyStopping && next.sinceImprovement >= context.settings.earlyStopPatience;
}

function plateauDue({ context, event }: Ctx): boolean {
  // Rules 2: ReduceLROnPlateau is a policy, on only when asked for.
  if (rulesOf(context.settings) >= 2 && !context.settings.reduceLrOnPlateau) return false;
  assertEvent(event, 'checkpoint.committed');
  const next = afterEpochCheckpoint(context, event);
  return next.plateauWait >= context.settings.plateauPatience;
}

/** Rules 2: a run stopped on budget, early stop, plateau or by an interrupt may be given a longer
 * budget, if the new end is after the current step and has room for each new checkpoint. */
function canExtend({ context, event }: Ctx): boolean {
  assertEvent(event, 'run.extended');
  const e = event.data;
  if (rulesOf(context.settings) < 2 || !context.plan) return false;
  if (!['budget', 'early-stop', 'plateau', 'interrupted'].includes(String(context.stopReason))) return false;
  const at = scheduleStep(context.settings, context.step);
  const done = (context.settings.scheduleOffset?.checkpoints ?? 0) + context.epochCheckpoints;
  const newCheckpoints = e.checkpoints - done;
  return Number.isInteger(e.totalSteps) && Number.isInteger(e.checkpoints) && e.totalSteps > at && newCheckpoints >= 1 && newCheckpoints <= e.totalSteps - at;
}

/** The schedule step of the last epoch checkpoint (or the plan's start if it has none yet). */
function lastBoundary(context: TrainingContext, plan: SchedulePlan): number {
  const j = (context.settings.scheduleOffset?.checkpoints ?? 0) + context.epochCheckpoints - plan.fromCheckpoint;
  if (j <= 0) return plan.fromStep;
  return plan.fromStep + Math.floor((j * (plan.toStep - plan.fromStep)) / (plan.toCheckpoint - plan.fromCheckpoint));
}

/** The plan after an extension: the new checkpoints are spread from the last epoch checkpoint (so
 * an interrupted run extended keeps the spacing an uninterrupted one would have), or from the
 * current step when that would put a new checkpoint at or before it. */
function extendedPlan(context: TrainingContext, { data: e }: RunExtended): SchedulePlan {
  const plan = context.plan!;
  // A run stopped early inside its plan and given that same plan's end keeps its checkpoint steps.
  if (plan.toStep === e.totalSteps && plan.toCheckpoint === e.checkpoints) return plan;
  const at = scheduleStep(context.settings, context.step);
  const fromCheckpoint = (context.settings.scheduleOffset?.checkpoints ?? 0) + context.epochCheckpoints;
  let fromStep = lastBoundary(context, plan);
  if (fromStep + Math.floor((e.totalSteps - fromStep) / (e.checkpoints - fromCheckpoint)) <= at) fromStep = at;
  return { fromStep, fromCheckpoint, toStep: e.totalSteps, toCheckpoint: e.checkpoints };
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
    warmupNotOver: ({ context }: Ctx) => warmingUp(context.settings, context.step),
    wasInterrupted: ({ context }: Ctx) => context.stopReason === 'interrupted',
    exportEndsRun: ({ context }: Ctx) => rulesOf(context.settings) < 2,
    exportObserves: ({ context }: Ctx) => rulesOf(context.settings) >= 2,
    canExtend,
    canExtendInterrupted: (args: Ctx) => canExtend(args) && args.context.stopReason === 'interrupted',
    canExtendIntoWarmup: (args: Ctx) => canExtend(args) && warmingUp(args.context.settings, args.context.step),
    resumeToWarmup: ({ context }: Ctx) => context.interruptedFrom === 'warmup',
    resumeToPlateau: ({ context }: Ctx) => context.interruptedFrom === 'plateau',
  },
  actions: {
    countStep: assign(({ context, event }) => {
      assertEvent(event, 'step.finished');
      const e = event.data;
      return {
        step: e.step,
        examplesSeen: e.examplesSeen,
        lr: learningRateForStep(context.settings, context.currentBaseLr, e.step),
      };
    }),
    recordEval: assign(({ context, event }) => {
      assertEvent(event, 'eval.finished');
      const e = event.data;
      const evaluation: Evaluation = { step: e.step, valLoss: e.valLoss, valAccuracy: e.valAccuracy };
      const metric = monitoredValue(context.settings, evaluation);
      // NaN never improves; the first evaluation (checkpoint 0) always sets the best.
      // Rules 2 measure against bestMetric (a branch's starts at its parent's); rules 1 against best.
      const reference = context.bestMetric !== undefined ? context.bestMetric : (context.best?.metric ?? null);
      const improved = reference === null ? Number.isFinite(metric) : metric < reference - context.settings.minDelta;
      return { lastEval: evaluation, improved };
    }),
    commitInitial: assign(({ context, event }) => {
      assertEvent(event, 'checkpoint.committed');
      const e = event.data;
      const ref = { index: e.index, step: e.step, weightsHash: e.weightsHash };
      const metric = context.lastEval ? monitoredValue(context.settings, context.lastEval) : Number.POSITIVE_INFINITY;
      const next: Partial<TrainingContext> = {
        lastCheckpoint: { ...ref, kind: e.kind },
        best: { ...ref, metric },
        improved: false,
      };
      // A branch keeps its parent's best value: its own start was already weighed by the parent.
      if (context.bestMetric !== undefined) next.bestMetric = context.bestMetric ?? metric;
      return next;
    }),
    commitEpoch: assign(({ context, event }) => {
      assertEvent(event, 'checkpoint.committed');
      return afterEpochCheckpoint(context, event);
    }),
    commitInterrupt: assign(({ context, event }) => {
      assertEvent(event, 'checkpoint.committed');
      const e = event.data;
      // An interrupt checkpoint moves no training counter: a resumed run's schedule equals the
      // uninterrupted one. Rules 2 count interrupts apart (`int:N`).
      const next: Partial<TrainingContext> = { lastCheckpoint: { index: e.index, step: e.step, weightsHash: e.weightsHash, kind: e.kind } };
      if (context.interrupts !== undefined) next.interrupts = e.index;
      return next;
    }),
    extend: assign(({ context, event }) => {
      assertEvent(event, 'run.extended');
      const plan = extendedPlan(context, event);
      // The counter of the rule that stopped the run starts again (else it would stop at the next
      // evaluation); every other counter is kept.
      return {
        plan,
        ...(context.stopReason === 'early-stop' ? { sinceImprovement: 0 } : {}),
        ...(context.stopReason === 'plateau' ? { plateauWait: 0 } : {}),
      };
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
      assertEvent(event, 'export.finished');
      const e = event.data;
      return { exported: { checkpoint: e.checkpoint, ...(e.kind ? { kind: e.kind } : {}), out: e.out } };
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
          { guard: { type: 'isInitialCheckpoint' }, target: 'active.warmup', actions: 'commitInitial' },
        ],
      },
    },
    // The states a run trains in. What they share is handled once, here: a step (diverged, at a
    // virtual-epoch boundary, or going on: warmup stays in warmup while it lasts, plateau goes
    // back to training) and an export of a crashed run. A stop request records which one it came
    // from, so each keeps its own.
    active: {
      initial: 'warmup',
      on: {
        'step.finished': [
          { guard: 'isDivergedStep', target: 'stopped', actions: ['countStep', { type: 'stopWith', params: { reason: 'diverged' } }] },
          { guard: 'reachedEpochBoundary', target: 'checkpointing', actions: 'countStep' },
          { guard: and([stateIn({ active: 'warmup' }), 'stillWarmingUp']), actions: 'countStep' },
          { guard: stateIn({ active: 'training' }), actions: 'countStep' },
          { target: '.training', actions: 'countStep' },
        ],
        // Rules 2: a crashed run (its log stops here) may be exported; resume then goes on.
        'export.finished': { guard: 'exportObserves', actions: 'recordExport' },
      },
      states: {
        warmup: {
          always: { guard: ({ context }) => !warmingUp(context.settings, context.step), target: 'training' },
          on: { 'stop.requested': { target: '#training.checkpointing', actions: { type: 'markInterruptedFrom', params: { from: 'warmup' } } } },
        },
        training: {
          on: { 'stop.requested': { target: '#training.checkpointing', actions: { type: 'markInterruptedFrom', params: { from: 'training' } } } },
        },
        // The learning rate was just reduced; the next step runs at the new rate and training goes on.
        plateau: {
          on: { 'stop.requested': { target: '#training.checkpointing', actions: { type: 'markInterruptedFrom', params: { from: 'plateau' } } } },
        },
      },
    },
    // A virtual-epoch boundary (evaluate, commit, decide) or an interrupt (commit only).
    checkpointing: {
      on: {
        'eval.finished': { actions: 'recordEval' },
        // Rules 2: a crashed run (its log stops here) may be exported; resume then goes on.
        'export.finished': { guard: 'exportObserves', actions: 'recordExport' },
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
          { guard: 'plateauDue', target: 'active.plateau', actions: ['commitEpoch', 'reduceLr'] },
          { guard: 'warmupNotOver', target: 'active.warmup', actions: 'commitEpoch' },
          { target: 'active.training', actions: 'commitEpoch' },
        ],
      },
    },
    stopped: {
      on: {
        'run.resumed': [
          { guard: { type: 'resumeToWarmup' }, target: 'active.warmup', actions: 'clearStop' },
          { guard: { type: 'resumeToPlateau' }, target: 'active.plateau', actions: 'clearStop' },
          { guard: 'wasInterrupted', target: 'active.training', actions: 'clearStop' },
        ],
        // Rules 2: exporting is an observation; the run stays stopped (and resumable if it was).
        'export.finished': [{ guard: 'exportEndsRun', target: 'exported', actions: 'recordExport' }, { actions: 'recordExport' }],
        'run.extended': [
          { guard: 'canExtendInterrupted', actions: 'extend' },
          { guard: 'canExtendIntoWarmup', target: 'active.warmup', actions: ['extend', 'clearStop'] },
          { guard: 'canExtend', target: 'active.training', actions: ['extend', 'clearStop'] },
        ],
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
