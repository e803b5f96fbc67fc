// The domain questions asked of the machine (machines/queries.ts): given a run's events, then
// whether it can be resumed, extended, exported or branched from, and the reason when not.
import { describe, expect, it } from 'vitest';
import { startMachine, step, type TrainingSnapshot } from '../../machines/fold.js';
import { canBranchAt, canExport, canExtend, canResume } from '../../machines/queries.js';
import type { TrainingEvent, TrainingSettings } from '../../machines/training.events.js';

const rules1: TrainingSettings = {
  stepsPerEpoch: 2,
  totalSteps: 4,
  batchSize: 2,
  warmupSteps: 0,
  baseLr: 0.1,
  minLr: 0.01,
  lrFactor: 0.5,
  minDelta: 0,
  plateauPatience: 5,
  cooldown: 0,
  earlyStopping: false,
  earlyStopPatience: 2,
  monitor: 'valLoss',
  divergenceThreshold: null,
};
const rules2: TrainingSettings = { ...rules1, rules: 2, checkpoints: 2, reduceLrOnPlateau: false };

function run(settings: TrainingSettings, ...events: TrainingEvent[]): TrainingSnapshot {
  let s = startMachine(settings);
  for (const e of events) {
    const r = step(s, e);
    expect(r.accepted, e.type).toBe(true);
    s = r.snapshot;
  }
  return s;
}

const started: TrainingEvent[] = [
  { type: 'eval.finished', data: { step: 0, valLoss: 1, valAccuracy: 0 } },
  { type: 'checkpoint.committed', data: { kind: 'initial', index: 0, step: 0, weightsHash: 'h0' } },
];
const stepTo = (n: number, loss = 0.5): TrainingEvent => ({ type: 'step.finished', data: { step: n, loss, lr: 0.1, examplesSeen: 2 * n } });
const epoch = (n: number, index: number): TrainingEvent[] => [
  { type: 'eval.finished', data: { step: n, valLoss: 0.5, valAccuracy: 0.5 } },
  { type: 'checkpoint.committed', data: { kind: 'epoch', index, step: n, weightsHash: `h${n}` } },
];
const interrupted = (settings: TrainingSettings) =>
  run(settings, ...started, stepTo(1), { type: 'stop.requested', data: { source: 'api' } }, { type: 'checkpoint.committed', data: { kind: 'interrupt', index: settings.rules ? 1 : 0, step: 1, weightsHash: 'hi' } });
const finished = (settings: TrainingSettings) => run(settings, ...started, stepTo(1), stepTo(2), ...epoch(2, 1), stepTo(3), stepTo(4), ...epoch(4, 2));

describe('questions asked of the machine', () => {
  it('resumes an interrupted run and a crashed one (its log ends mid-run), never a finished one', () => {
    for (const settings of [rules1, rules2]) {
      expect(canResume(interrupted(settings))).toEqual({ ok: true });
      expect(canResume(run(settings, ...started, stepTo(1)))).toEqual({ ok: true }); // crashed while training
      expect(canResume(run(settings))).toEqual({ ok: true }); // crashed before checkpoint 0
      expect(canResume(run(settings, ...started, stepTo(1), stepTo(2)))).toEqual({ ok: true }); // crashed while checkpointing
      expect(canResume(finished(settings))).toEqual({ ok: false, reason: 'it is stopped (budget): only an interrupted or crashed run resumes' });
      expect(canResume(run(settings, ...started, stepTo(1, Number.NaN)))).toEqual({ ok: false, reason: 'it is stopped (diverged): only an interrupted or crashed run resumes' });
    }
    // Rules 1 ended a run at export, even an interrupted one.
    const exported = step(interrupted(rules1), { type: 'export.finished', data: { checkpoint: 0, out: '/m' } }).snapshot;
    expect(canResume(exported).ok).toBe(false);
    const exported2 = step(interrupted(rules2), { type: 'export.finished', data: { checkpoint: 1, kind: 'interrupt', out: '/m' } }).snapshot;
    expect(canResume(exported2)).toEqual({ ok: true });
  });

  it('extends a stopped rules-2 run, not a rules-1 one, a crashed one or a diverged one', () => {
    expect(canExtend(finished(rules2))).toEqual({ ok: true });
    expect(canExtend(interrupted(rules2))).toEqual({ ok: true });
    expect(canExtend(finished(rules1))).toEqual({ ok: false, reason: 'it was made by retrace 0.1.0 (rules 1), whose budget cannot be extended' });
    expect(canExtend(run(rules2, ...started, stepTo(1)))).toEqual({ ok: false, reason: 'it is training, not stopped (it crashed while training): resume it first' });
    expect(canExtend(run(rules2, ...started, stepTo(1, Number.POSITIVE_INFINITY)))).toEqual({ ok: false, reason: 'it diverged at step 1; a longer budget would not help' });
  });

  it('exports a stopped run, and a crashed one only under rules 2 (never before checkpoint 0)', () => {
    expect(canExport(finished(rules1))).toEqual({ ok: true });
    expect(canExport(finished(rules2))).toEqual({ ok: true });
    expect(canExport(run(rules2, ...started, stepTo(1)))).toEqual({ ok: true });
    expect(canExport(run(rules1, ...started, stepTo(1)))).toEqual({ ok: false, reason: 'it is training, not stopped: resume it or let it finish before exporting' });
    expect(canExport(run(rules2)).ok).toBe(false);
  });

  it('branches from any state after checkpoint 0, never from before it', () => {
    expect(canBranchAt(run(rules2))).toEqual({ ok: false, reason: 'the run had committed no checkpoint there (not even checkpoint 0)' });
    expect(canBranchAt(run(rules2, started[0]!)).ok).toBe(false);
    expect(canBranchAt(run(rules2, ...started))).toEqual({ ok: true });
    expect(canBranchAt(finished(rules1))).toEqual({ ok: true });
  });
});
