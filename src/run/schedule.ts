// The resolved schedule of a run, as people and `state --json` see it: how many training examples
// a virtual epoch has, how many examples the run sees, and the steps between checkpoints.
import { budgetSteps as runBudgetSteps, initialBudget, initialPlan, type TrainingContext } from '../../machines/training.machine.js';
import type { RunCreated } from '../log/events.js';

export interface ScheduleView {
  /** The examples a pass over the data has (config trainingExamples, default the training split's size). */
  trainingExamples: number;
  stopPoint: number;
  batchSize: number;
  /** trainingExamples × stopPoint: what the run is asked to see. */
  targetExamples: number;
  /** The examples between two checkpoints: targetExamples / checkpoints. */
  examplesPerEpoch: number;
  /** Epoch checkpoints in the whole schedule. */
  checkpoints: number;
  /** Steps between checkpoints: gaps differ by at most one step (after `spacedFrom`, when set). */
  stepsPerCheckpoint: { min: number; max: number };
  /** Where the current spacing starts when it does not start at the run's start (an extension, or
   * a branch continuing its parent's schedule): the checkpoint and step; null otherwise. */
  spacedFrom: { checkpoint: number; step: number } | null;
  /** The step budget of this run, in its own steps (an extension moves it; a branch continuing its
   * parent's schedule has what the parent had left). */
  totalSteps: number;
  /** The examples the budget trains: totalSteps × batchSize. */
  examples: number;
  /** Whether the run decides by rules 1 (retrace 0.1.0: ceil(stepsPerEpoch) × checkpoints). */
  rules: number;
}

/** The schedule of a run from its creation record, after extensions when a context is given. */
export function scheduleView(created: RunCreated, context?: TrainingContext): ScheduleView {
  const s = created.schedule;
  const settings = created.settings;
  const rules = created.rules ?? 1;
  const plan = context?.plan ?? (rules >= 2 ? (settings.plan ?? initialPlan(settings)) : undefined);
  let stopPoint = s.stopPoint;
  let checkpoints = s.checkpoints;
  let totalSteps = initialBudget(settings);
  let min = settings.stepsPerEpoch;
  let max = settings.stepsPerEpoch;
  if (plan) {
    totalSteps = context ? runBudgetSteps(context) : initialBudget(settings);
    checkpoints = plan.toCheckpoint;
    stopPoint = (plan.toStep * s.batchSize) / s.trainingExamples;
    if (plan.toStep === settings.totalSteps && plan.toCheckpoint === (settings.checkpoints ?? s.checkpoints)) stopPoint = s.stopPoint;
    const length = plan.toStep - plan.fromStep;
    const count = plan.toCheckpoint - plan.fromCheckpoint;
    min = Math.floor(length / count);
    max = Math.ceil(length / count);
  }
  const targetExamples = s.trainingExamples * stopPoint;
  return {
    trainingExamples: s.trainingExamples,
    stopPoint,
    batchSize: s.batchSize,
    targetExamples,
    examplesPerEpoch: targetExamples / checkpoints,
    checkpoints,
    stepsPerCheckpoint: { min, max },
    spacedFrom: plan && plan.fromCheckpoint > 0 ? { checkpoint: plan.fromCheckpoint, step: plan.fromStep } : null,
    totalSteps,
    examples: totalSteps * s.batchSize,
    rules,
  };
}

function round(x: number): string {
  return String(Number(x.toPrecision(6)));
}

/** One line: `schedule: 120 training examples × stopPoint 14.3 = 1716 examples → 107 steps of 16 (1712 examples); 10 checkpoints, every 10–11 steps (171.6 examples per virtual epoch)`. */
export function formatSchedule(v: ScheduleView): string {
  const gap = v.stepsPerCheckpoint.min === v.stepsPerCheckpoint.max ? `${v.stepsPerCheckpoint.min}` : `${v.stepsPerCheckpoint.min}–${v.stepsPerCheckpoint.max}`;
  return (
    `schedule: ${v.trainingExamples} training examples × stopPoint ${round(v.stopPoint)} = ${round(v.targetExamples)} examples → ` +
    `${v.totalSteps} steps of ${v.batchSize} (${v.examples} examples); ${v.checkpoints} checkpoints, every ${gap} steps` +
    `${v.spacedFrom ? ` after checkpoint ${v.spacedFrom.checkpoint} at step ${v.spacedFrom.step}` : ''} ` +
    `(${round(v.examplesPerEpoch)} examples per virtual epoch)${v.rules < 2 ? ' [rules 1]' : ''}`
  );
}
