// What a branch inherits from its parent (rules 2). A branch with no overrides reproduces its
// parent: it starts from the parent's exact weights, optimizer state, data cursor and step keys
// (its origin), and from the parent's controller state too (the learning rate after plateau
// reductions, warmup position, plateau wait and cooldown, early stopping's wait, the best value)
// and its schedule (the same absolute checkpoint steps and what is left of the budget). An
// override changes only what it names: a budget key starts a fresh schedule from the branch point,
// `lr` a fresh rate, `warmupSteps` a fresh warmup, `monitor` fresh improvement counting.
import { initialPlan, scheduleStep, type TrainingContext } from '../../machines/training.machine.js';
import { ConfigError, type ConfigInput, type Schedule } from '../config.js';
import type { RunCreated } from '../log/events.js';
import type { BranchStart } from './environment.js';

/** Config keys that set the budget: overriding any of them gives the branch a schedule of its own. */
export const BUDGET_KEYS = ['stopPoint', 'checkpoints', 'batchSize', 'trainingExamples'] as const;

export interface Inheritance {
  /** The config keys the branch overrode. */
  overridden: string[];
  /** `continued`: the parent's schedule goes on; `fresh`: the branch's own budget from its point. */
  schedule: 'continued' | 'fresh';
  /** The controller state carried over (what is not listed starts fresh). */
  controller: string[];
}

export interface BranchPlan {
  start: BranchStart;
  /** The schedule to record when the parent's is continued (else the branch computes its own). */
  schedule: Schedule | null;
  inheritance: Inheritance;
}

/**
 * The branch's starting settings from the parent's creation record and machine context at the
 * branch point. Throws ConfigError when the schedule would be continued but the parent had no
 * budget left at that point.
 */
export function planBranch(parent: RunCreated, ctx: TrainingContext, overrides: ConfigInput, point: string): BranchPlan {
  const overridden = Object.keys(overrides).filter((k) => k !== 'runId' && overrides[k as keyof ConfigInput] !== undefined);
  const has = (key: string) => overridden.includes(key);
  const freshMonitor = has('monitor');
  const parentBest = ctx.bestMetric !== undefined ? ctx.bestMetric : (ctx.best?.metric ?? null);
  const controller: string[] = [];
  if (!has('lr')) controller.push('currentBaseLr');
  if (!freshMonitor) controller.push('sinceImprovement', 'plateauWait', 'bestMetric');
  controller.push('cooldownLeft');
  if (!has('warmupSteps')) controller.push('warmupPosition');
  const start: BranchStart = {
    inherited: {
      currentBaseLr: has('lr') ? Number(overrides.lr) : ctx.currentBaseLr,
      sinceImprovement: freshMonitor ? 0 : ctx.sinceImprovement,
      plateauWait: freshMonitor ? 0 : ctx.plateauWait,
      cooldownLeft: ctx.cooldownLeft,
      bestMetric: freshMonitor || parentBest === null || !Number.isFinite(parentBest) ? null : parentBest,
    },
    warmupOffset: has('warmupSteps') ? 0 : (parent.settings.warmupOffset ?? 0) + ctx.step,
  };
  const fresh = BUDGET_KEYS.some((k) => has(k));
  if (fresh) return { start, schedule: null, inheritance: { overridden, schedule: 'fresh', controller } };

  const plan = ctx.plan ?? initialPlan(parent.settings);
  const at = scheduleStep(parent.settings, ctx.step);
  if (at >= plan.toStep) {
    throw new ConfigError(
      `${parent.runId}@${point} is at the end of its budget (step ${ctx.step}): give the branch a budget of its own, e.g. --stop-point ${parent.schedule.stopPoint}`,
    );
  }
  start.plan = plan;
  start.scheduleOffset = { step: at, checkpoints: (parent.settings.scheduleOffset?.checkpoints ?? 0) + ctx.epochCheckpoints };
  const s = parent.schedule;
  const schedule: Schedule = { ...s, examplesPerEpoch: s.examplesPerEpoch ?? (s.trainingExamples * s.stopPoint) / s.checkpoints };
  return { start, schedule, inheritance: { overridden, schedule: 'continued', controller } };
}
