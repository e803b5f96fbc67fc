// The run's domain rules, asked of the machine and decided here once: whether a run can be
// resumed, extended, exported or branched from a point. The CLI, the library and the dashboard
// all ask these functions; none re-decides from state names. Each answer comes from the machine
// itself (`snapshot.can(event)`, so its own guards decide) plus, where the machine has no event
// for the question, the one fact of its state that decides it; a refusal carries the reason in
// words for the user.
import { stateName, type TrainingSnapshot } from './fold.js';
import { rulesOf, scheduleStep } from './training.machine.js';

/** An answer: yes, or no with a reason that names the state and what would work instead. */
export type Answer = { ok: true } | { ok: false; reason: string };

const YES: Answer = { ok: true };

function describe(snapshot: TrainingSnapshot): string {
  const reason = snapshot.context.stopReason;
  return `${stateName(snapshot)}${reason ? ` (${reason})` : ''}`;
}

/** Whether the log ends mid-run: the machine is in a state a live run passes through, so a run
 * whose log ends here and that no process holds crashed, and resume continues it. */
export function endsMidRun(snapshot: TrainingSnapshot): boolean {
  const state = stateName(snapshot);
  return state !== 'stopped' && state !== 'exported';
}

/**
 * Whether `retrace resume` continues a run whose log ends in `snapshot` (the caller checks that no
 * process holds it): an interrupted run (the machine accepts `run.resumed`) or a crashed one (its
 * log ends mid-run: resume re-verifies the steps after the last checkpoint and goes on). A run that
 * finished (budget, early stop, plateau, diverged) or was exported under rules 1 does not resume.
 */
export function canResume(snapshot: TrainingSnapshot): Answer {
  if (snapshot.can({ type: 'run.resumed', data: {} })) return YES;
  if (endsMidRun(snapshot)) return YES;
  return { ok: false, reason: `it is ${describe(snapshot)}: only an interrupted or crashed run resumes` };
}

/**
 * Whether the machine accepts a longer budget now (`run.extended`), asked with the smallest
 * extension that could fit (one more step, one more checkpoint), so its own guard decides:
 * rules 2, stopped on budget, early stop, plateau or an interrupt.
 */
export function canExtend(snapshot: TrainingSnapshot): Answer {
  const ctx = snapshot.context;
  const at = scheduleStep(ctx.settings, ctx.step);
  const done = (ctx.settings.scheduleOffset?.checkpoints ?? 0) + ctx.epochCheckpoints;
  if (snapshot.can({ type: 'run.extended', data: { stopPoint: 1, checkpoints: done + 1, totalSteps: at + 1 } })) return YES;
  if (rulesOf(ctx.settings) < 2) return { ok: false, reason: 'it was made by retrace 0.1.0 (rules 1), whose budget cannot be extended' };
  if (endsMidRun(snapshot)) return { ok: false, reason: `it is ${describe(snapshot)}, not stopped (it crashed while training): resume it first` };
  if (ctx.stopReason === 'diverged') return { ok: false, reason: `it diverged at step ${ctx.step}; a longer budget would not help` };
  return { ok: false, reason: `it is ${describe(snapshot)}` };
}

/**
 * Whether a checkpoint of the run can be exported now: the machine accepts `export.finished`
 * (any stopped or exported run; under rules 2 also a crashed one, whose checkpoints are durable).
 */
export function canExport(snapshot: TrainingSnapshot): Answer {
  if (snapshot.can({ type: 'export.finished', data: { checkpoint: 0, out: '' } })) return YES;
  return { ok: false, reason: `it is ${describe(snapshot)}, not stopped: resume it or let it finish before exporting` };
}

/**
 * Whether a branch can start from the state `snapshot` (the machine after the point's event): a
 * branch starts from a committed state, so the run must have left `idle` (checkpoint 0 committed).
 */
export function canBranchAt(snapshot: TrainingSnapshot): Answer {
  if (snapshot.context.lastCheckpoint !== null) return YES;
  return { ok: false, reason: 'the run had committed no checkpoint there (not even checkpoint 0)' };
}
