// The machine as a specification: given settings and events, then the state and context.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromPlain, startMachine, stateName, step, toPlain, type TrainingSnapshot } from '../../machines/fold.js';
import { isPlanBoundary } from '../../machines/training.machine.js';
import type { TrainingEvent, TrainingSettings } from '../../machines/training.events.js';

const base: TrainingSettings = {
  stepsPerEpoch: 3,
  totalSteps: 12,
  batchSize: 2,
  warmupSteps: 0,
  baseLr: 0.1,
  minLr: 0.01,
  lrFactor: 0.5,
  minDelta: 0,
  plateauPatience: 2,
  cooldown: 0,
  earlyStopping: false,
  earlyStopPatience: 2,
  monitor: 'valLoss',
  divergenceThreshold: null,
};

/** A tiny driver: the events a real driver would send, with the validation losses given. */
class Given {
  snapshot: TrainingSnapshot;
  constructor(settings: Partial<TrainingSettings> = {}) {
    this.snapshot = startMachine({ ...base, ...settings });
  }
  send(event: TrainingEvent): this {
    const r = step(this.snapshot, event);
    expect(r.accepted, `${event.type} in ${stateName(this.snapshot)}`).toBe(true);
    this.snapshot = r.snapshot;
    return this;
  }
  get ctx() {
    return this.snapshot.context;
  }
  get state() {
    return stateName(this.snapshot);
  }
  started(valLoss = 1): this {
    return this.send({ type: 'eval.finished', data: { step: 0, valLoss, valAccuracy: 0 } }).send({
      type: 'checkpoint.committed',
      data: { kind: 'initial', index: 0, step: 0, weightsHash: 'h0' },
    });
  }
  steps(n: number, loss = 0.5): this {
    for (let i = 0; i < n; i += 1) {
      const s = this.ctx.step + 1;
      this.send({ type: 'step.finished', data: { step: s, loss, lr: this.ctx.lr, examplesSeen: s * this.ctx.settings.batchSize } });
    }
    return this;
  }
  /** Finishes a virtual epoch: steps to the boundary, evaluation, checkpoint. */
  epoch(valLoss: number): this {
    while (this.state !== 'checkpointing') this.steps(1);
    const index = this.ctx.epochCheckpoints + 1;
    return this.send({ type: 'eval.finished', data: { step: this.ctx.step, valLoss, valAccuracy: 1 - valLoss } }).send({
      type: 'checkpoint.committed',
      data: { kind: 'epoch', index, step: this.ctx.step, weightsHash: `h${index}` },
    });
  }
  interrupt(): this {
    return this.send({ type: 'stop.requested', data: { source: 'api' } }).send({
      type: 'checkpoint.committed',
      data: { kind: 'interrupt', index: this.ctx.interrupts !== undefined ? this.ctx.interrupts + 1 : this.ctx.epochCheckpoints, step: this.ctx.step, weightsHash: 'hi' },
    });
  }
}

describe('training machine', () => {
  it('starts idle and leaves it only with checkpoint 0, which is the first best', () => {
    const g = new Given();
    expect(g.state).toBe('idle');
    expect(step(g.snapshot, { type: 'step.finished', data: { step: 1, loss: 1, lr: 0.1, examplesSeen: 2 } }).accepted).toBe(false);
    g.started(0.9);
    expect(g.state).toBe('training');
    expect(g.ctx.best).toMatchObject({ index: 0, metric: 0.9 });
  });

  it('ramps the learning rate linearly over warmupSteps, then trains at the base rate', () => {
    const g = new Given({ warmupSteps: 4, stepsPerEpoch: 10, totalSteps: 20 }).started();
    expect(g.state).toBe('warmup');
    const lrs = [g.ctx.lr];
    for (let i = 0; i < 5; i += 1) lrs.push(g.steps(1).ctx.lr);
    [0.025, 0.05, 0.075, 0.1, 0.1, 0.1].forEach((lr, i) => expect(lrs[i]).toBeCloseTo(lr, 12));
    expect(g.state).toBe('training');
  });

  it('checkpoints at every virtual-epoch boundary and stops on budget', () => {
    const g = new Given().started();
    g.steps(2);
    expect(g.state).toBe('training');
    g.steps(1);
    expect(g.state).toBe('checkpointing');
    g.send({ type: 'eval.finished', data: { step: 3, valLoss: 0.5, valAccuracy: 0.5 } }).send({ type: 'checkpoint.committed', data: { kind: 'epoch', index: 1, step: 3, weightsHash: 'h1' } });
    expect(g.state).toBe('training');
    g.epoch(0.4).epoch(0.3).epoch(0.2);
    expect(g.state).toBe('stopped');
    expect(g.ctx.stopReason).toBe('budget');
    expect(g.ctx.best?.index).toBe(4);
  });

  it('on a plateau multiplies the rate by lrFactor, not below minLr, then stops at minLr', () => {
    const g = new Given({ totalSteps: 30, plateauPatience: 1, lrFactor: 0.25, minLr: 0.01 }).started(0.5);
    g.epoch(0.6);
    expect(g.state).toBe('plateau');
    expect(g.ctx.lr).toBeCloseTo(0.025);
    g.steps(1);
    expect(g.state).toBe('training');
    g.epoch(0.7);
    expect(g.ctx.lr).toBe(0.01); // 0.025 × 0.25 would be below minLr
    g.epoch(0.8);
    expect(g.state).toBe('stopped');
    expect(g.ctx.stopReason).toBe('plateau');
  });

  it('waits `cooldown` evaluations after a reduction before counting towards the next plateau', () => {
    const g = new Given({ totalSteps: 30, plateauPatience: 1, cooldown: 2 }).started(0.5);
    g.epoch(0.6);
    expect(g.state).toBe('plateau');
    g.epoch(0.6).epoch(0.6);
    expect(g.ctx.currentBaseLr).toBeCloseTo(0.05); // two evaluations in cooldown: no reduction
    g.epoch(0.6);
    expect(g.state).toBe('plateau');
    expect(g.ctx.currentBaseLr).toBeCloseTo(0.025);
  });

  it('stops early after earlyStopPatience evaluations without improvement, when early stopping is on', () => {
    const g = new Given({ totalSteps: 30, earlyStopping: true, earlyStopPatience: 2, plateauPatience: 5 }).started(0.5);
    g.epoch(0.4).epoch(0.45);
    expect(g.state).toBe('training');
    g.epoch(0.41);
    expect(g.state).toBe('stopped');
    expect(g.ctx.stopReason).toBe('early-stop');
    expect(g.ctx.best?.index).toBe(1);
  });

  it('gives budget precedence over early stop, and early stop over plateau', () => {
    const both = new Given({ totalSteps: 6, earlyStopping: true, earlyStopPatience: 1, plateauPatience: 1 }).started(0.5);
    both.epoch(0.6);
    expect(both.ctx.stopReason).toBe('early-stop');
    const budget = new Given({ totalSteps: 6, earlyStopping: true, earlyStopPatience: 1, plateauPatience: 1 }).started(0.5);
    budget.epoch(0.4).epoch(0.6);
    expect(budget.ctx.stopReason).toBe('budget');
  });

  it('requires an improvement larger than minDelta', () => {
    const g = new Given({ totalSteps: 30, minDelta: 0.05, plateauPatience: 9 }).started(0.5);
    g.epoch(0.47);
    expect(g.ctx.best?.index).toBe(0);
    expect(g.ctx.sinceImprovement).toBe(1);
    g.epoch(0.4);
    expect(g.ctx.best?.index).toBe(2);
  });

  it('monitors validation accuracy (maximised) when asked', () => {
    const g = new Given({ totalSteps: 30, monitor: 'valAccuracy', plateauPatience: 9 }).started(0.9); // accuracy 0
    g.epoch(0.5); // accuracy 0.5
    g.epoch(0.7); // accuracy 0.3: worse
    expect(g.ctx.best?.index).toBe(1);
  });

  it('stops as diverged on a non-finite loss, a loss above the threshold, or non-finite weights', () => {
    const nan = new Given().started();
    nan.send({ type: 'step.finished', data: { step: 1, loss: Number.NaN, lr: 0.1, examplesSeen: 2 } });
    expect([nan.state, nan.ctx.stopReason]).toEqual(['stopped', 'diverged']);
    const high = new Given({ divergenceThreshold: 10 }).started();
    high.send({ type: 'step.finished', data: { step: 1, loss: 11, lr: 0.1, examplesSeen: 2 } });
    expect(high.ctx.stopReason).toBe('diverged');
    const weights = new Given().started();
    weights.send({ type: 'step.finished', data: { step: 1, loss: 1, lr: 0.1, examplesSeen: 2, weightsFinite: false } });
    expect(weights.ctx.stopReason).toBe('diverged');
    expect(weights.ctx.best?.index).toBe(0); // the last good checkpoint stays the one to use
  });

  it('interrupts from warmup, training or plateau into stopped(interrupted) and resumes where it was', () => {
    for (const [settings, prepare, origin] of [
      [{ warmupSteps: 2 }, (g: Given) => g.steps(1), 'warmup'],
      [{}, (g: Given) => g.steps(1), 'training'],
      [{ totalSteps: 30, plateauPatience: 1 }, (g: Given) => g.epoch(2), 'plateau'],
    ] as const) {
      const g = prepare(new Given(settings).started(1));
      expect(g.state).toBe(origin);
      g.interrupt();
      expect([g.state, g.ctx.stopReason]).toEqual(['stopped', 'interrupted']);
      g.send({ type: 'run.resumed', data: {} });
      expect(g.state).toBe(origin);
      expect(g.ctx.stopReason).toBeNull();
    }
  });

  it('moves no counter with an interrupt checkpoint: an interrupted run decides like an uninterrupted one', () => {
    const straight = new Given({ totalSteps: 30, plateauPatience: 2 }).started(0.5);
    const interrupted = new Given({ totalSteps: 30, plateauPatience: 2 }).started(0.5);
    straight.epoch(0.6).steps(1).epoch(0.7).steps(1).epoch(0.4);
    interrupted.epoch(0.6).interrupt().send({ type: 'run.resumed', data: {} }).steps(1).interrupt().send({ type: 'run.resumed', data: {} });
    interrupted.epoch(0.7).steps(1).epoch(0.4);
    const { lastCheckpoint: _a, ...a } = straight.ctx;
    const { lastCheckpoint: _b, ...b } = interrupted.ctx;
    expect(b).toEqual(a);
    expect(interrupted.state).toBe(straight.state);
  });

  it('does not resume a run that stopped for any other reason; exports from stopped', () => {
    const g = new Given({ totalSteps: 3 }).started().epoch(0.5);
    expect(g.ctx.stopReason).toBe('budget');
    expect(step(g.snapshot, { type: 'run.resumed', data: {} }).accepted).toBe(false);
    g.send({ type: 'export.finished', data: { checkpoint: 1, out: '/tmp/m' } });
    expect(g.state).toBe('exported');
    g.send({ type: 'export.finished', data: { checkpoint: 0, out: '/tmp/m0' } });
    expect(g.ctx.exported).toEqual({ checkpoint: 0, out: '/tmp/m0' });
  });

  it('round-trips snapshots through plain data (what checkpoints store)', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0.01, max: 2, noNaN: true }), { minLength: 1, maxLength: 6 }), (losses) => {
        const g = new Given({ totalSteps: 30, plateauPatience: 1, earlyStopping: true, earlyStopPatience: 3 }).started(1);
        for (const loss of losses) {
          if (g.state === 'stopped') break;
          g.epoch(loss);
          const restored = fromPlain(structuredClone(toPlain(g.snapshot)));
          expect(stateName(restored)).toBe(g.state);
          expect(restored.context).toEqual(g.ctx);
        }
      }),
    );
  });
});

// Rules 2 (run.created records `rules: 2`): the settings above without `rules` are rules 1, as
// runs made by retrace 0.1.0 decide; these are the rules new runs decide by.
const rules2: Partial<TrainingSettings> = { rules: 2, checkpoints: 4, stepsPerEpoch: 3, totalSteps: 12 };

describe('training machine, rules 2', () => {
  it('spreads checkpoints over the budget as evenly as integers allow (10 steps, 3 checkpoints: 3, 6, 10)', () => {
    const g = new Given({ ...rules2, totalSteps: 10, checkpoints: 3, stepsPerEpoch: 4 }).started();
    const at: number[] = [];
    while (g.state !== 'stopped') {
      g.epoch(0.5);
      at.push(g.ctx.step);
    }
    expect(at).toEqual([3, 6, 10]);
    expect(g.ctx.stopReason).toBe('budget');
    expect(g.ctx.epochCheckpoints).toBe(3);
  });

  it('finds every checkpoint step of a plan, and no other, for any budget and count', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 400 }), fc.integer({ min: 1, max: 400 }), fc.integer({ min: -50, max: 50 }), (total, count, from) => {
        fc.pre(count <= total);
        const plan = { fromStep: from, fromCheckpoint: 0, toStep: from + total, toCheckpoint: count };
        const boundaries: number[] = [];
        for (let s = from - 2; s <= from + total + 2; s += 1) if (isPlanBoundary(plan, s)) boundaries.push(s);
        expect(boundaries).toHaveLength(count);
        expect(boundaries.at(-1)).toBe(from + total);
        const gaps = boundaries.map((b, i) => b - (i === 0 ? from : boundaries[i - 1]!));
        expect(Math.max(...gaps) - Math.min(...gaps)).toBeLessThanOrEqual(1);
      }),
    );
  });

  it('reduces the rate on a plateau only when reduceLrOnPlateau is on', () => {
    const off = new Given({ ...rules2, plateauPatience: 1 }).started(0.5);
    off.epoch(0.6).epoch(0.7).epoch(0.8).epoch(0.9);
    expect([off.state, off.ctx.stopReason, off.ctx.currentBaseLr]).toEqual(['stopped', 'budget', 0.1]);
    const on = new Given({ ...rules2, plateauPatience: 1, reduceLrOnPlateau: true }).started(0.5);
    on.epoch(0.6);
    expect(on.state).toBe('plateau');
    expect(on.ctx.currentBaseLr).toBeCloseTo(0.05);
  });

  it('stays stopped on export: an interrupted, exported run is still resumable', () => {
    const g = new Given(rules2).started().epoch(0.4).steps(1).interrupt();
    g.send({ type: 'export.finished', data: { checkpoint: 1, kind: 'interrupt', out: '/m' } });
    expect([g.state, g.ctx.stopReason]).toEqual(['stopped', 'interrupted']);
    expect(g.ctx.exported).toEqual({ checkpoint: 1, kind: 'interrupt', out: '/m' });
    g.send({ type: 'run.resumed', data: {} });
    expect(g.state).toBe('training');
    // Rules 1 (retrace 0.1.0) ended the run at export, and its logs keep meaning that.
    const old = new Given().started().steps(1).interrupt();
    old.send({ type: 'export.finished', data: { checkpoint: 0, out: '/m' } });
    expect(old.state).toBe('exported');
    expect(old.snapshot.can({ type: 'run.resumed', data: {} })).toBe(false);
  });

  it('numbers interrupt checkpoints apart; epoch checkpoints keep their indices', () => {
    const g = new Given(rules2).started().epoch(0.4).steps(1).interrupt();
    expect(g.ctx.lastCheckpoint).toMatchObject({ kind: 'interrupt', index: 1 });
    g.send({ type: 'run.resumed', data: {} }).steps(1).interrupt();
    expect(g.ctx.interrupts).toBe(2);
    g.send({ type: 'run.resumed', data: {} }).epoch(0.3);
    expect(g.ctx.lastCheckpoint).toMatchObject({ kind: 'epoch', index: 2, step: 6 });
    expect(g.ctx.best?.index).toBe(2);
  });

  it('extends a run stopped on budget: the plan goes on from where it stopped', () => {
    const g = new Given(rules2).started().epoch(0.5).epoch(0.4).epoch(0.3).epoch(0.2);
    expect([g.state, g.ctx.step]).toEqual(['stopped', 12]);
    expect(g.snapshot.can({ type: 'run.extended', data: { stopPoint: 2, checkpoints: 4, totalSteps: 24 } })).toBe(false); // no new checkpoint
    expect(g.snapshot.can({ type: 'run.extended', data: { stopPoint: 1, checkpoints: 8, totalSteps: 12 } })).toBe(false); // no new step
    g.send({ type: 'run.extended', data: { stopPoint: 2, checkpoints: 6, totalSteps: 24 } });
    expect([g.state, g.ctx.stopReason]).toEqual(['training', null]);
    expect(g.ctx.plan).toEqual({ fromStep: 12, fromCheckpoint: 4, toStep: 24, toCheckpoint: 6 });
    g.epoch(0.1).epoch(0.05);
    expect([g.state, g.ctx.stopReason, g.ctx.step, g.ctx.epochCheckpoints]).toEqual(['stopped', 'budget', 24, 6]);
  });

  it('extending an early-stopped run resets early stopping\'s wait and keeps every other counter', () => {
    const g = new Given({ ...rules2, totalSteps: 30, checkpoints: 10, earlyStopping: true, earlyStopPatience: 2, reduceLrOnPlateau: true, plateauPatience: 5 }).started(0.5);
    g.epoch(0.4).epoch(0.45).epoch(0.41);
    expect([g.state, g.ctx.stopReason, g.ctx.sinceImprovement, g.ctx.plateauWait]).toEqual(['stopped', 'early-stop', 2, 2]);
    g.send({ type: 'run.extended', data: { stopPoint: 1, checkpoints: 10, totalSteps: 30 } });
    expect([g.state, g.ctx.sinceImprovement, g.ctx.plateauWait, g.ctx.bestMetric]).toEqual(['training', 0, 2, 0.4]);
    g.epoch(0.42);
    expect(g.state).toBe('training'); // one evaluation without improvement: patience 2 not used up again
    // A diverged run cannot be extended.
    const d = new Given(rules2).started();
    d.send({ type: 'step.finished', data: { step: 1, loss: Number.NaN, lr: 0.1, examplesSeen: 2 } });
    expect(d.snapshot.can({ type: 'run.extended', data: { stopPoint: 9, checkpoints: 9, totalSteps: 99 } })).toBe(false);
  });

  it('extending a run stopped at minLr resets the plateau wait and keeps the reduced rate and cooldown', () => {
    const g = new Given({ ...rules2, totalSteps: 30, checkpoints: 10, reduceLrOnPlateau: true, plateauPatience: 1, lrFactor: 0.5, minLr: 0.05, cooldown: 0 }).started(0.5);
    g.epoch(0.6); // 0.1 → 0.05 (the floor)
    g.epoch(0.7);
    expect([g.state, g.ctx.stopReason, g.ctx.plateauWait, g.ctx.currentBaseLr]).toEqual(['stopped', 'plateau', 1, 0.05]);
    g.send({ type: 'run.extended', data: { stopPoint: 1, checkpoints: 10, totalSteps: 30 } });
    expect([g.state, g.ctx.plateauWait, g.ctx.currentBaseLr, g.ctx.sinceImprovement, g.ctx.lr]).toEqual(['training', 0, 0.05, 2, 0.05]);
    g.epoch(0.4); // an improvement: training goes on
    expect([g.state, g.ctx.best?.index]).toEqual(['training', 3]);
  });

  it('starts a branch from inherited controller state and schedule position', () => {
    // The parent did 7 steps of a 12-step, 4-checkpoint plan (checkpoints at 3, 6, 9, 12) with 2 checkpoints.
    const g = new Given({
      ...rules2,
      warmupSteps: 10,
      warmupOffset: 7,
      scheduleOffset: { step: 7, checkpoints: 2 },
      inherited: { currentBaseLr: 0.04, sinceImprovement: 1, plateauWait: 1, cooldownLeft: 0, bestMetric: 0.3 },
    });
    expect(g.ctx.lr).toBeCloseTo((0.04 * 8) / 10, 12);
    g.started(0.9); // the branch's own start evaluates worse than the parent's best: no counter moves
    expect([g.ctx.bestMetric, g.ctx.sinceImprovement, g.ctx.best?.index]).toEqual([0.3, 1, 0]);
    g.steps(1);
    expect(g.state).toBe('warmup'); // warmup step 8 of 10
    g.steps(1);
    expect(g.state).toBe('checkpointing'); // schedule step 9
    g.send({ type: 'eval.finished', data: { step: 2, valLoss: 0.35, valAccuracy: 0 } }).send({ type: 'checkpoint.committed', data: { kind: 'epoch', index: 1, step: 2, weightsHash: 'h' } });
    expect([g.state, g.ctx.sinceImprovement]).toEqual(['warmup', 2]);
    g.epoch(0.2);
    expect([g.state, g.ctx.stopReason, g.ctx.step]).toEqual(['stopped', 'budget', 5]); // schedule step 12
  });

  it('keeps the active states (warmup, training, plateau) under one parent, named flat everywhere a snapshot is stored or shown', () => {
    const g = new Given().started();
    expect(g.snapshot.value).toEqual({ active: 'training' });
    expect(g.state).toBe('training');
    expect(toPlain(g.snapshot).value).toBe('training');
    // A snapshot stored by any release names the state flat, and reads back into the parent.
    for (const value of ['warmup', 'training', 'plateau'] as const) {
      const restored = fromPlain({ value, context: structuredClone(g.ctx) });
      expect(restored.value).toEqual({ active: value });
      expect(stateName(restored)).toBe(value);
    }
    expect(fromPlain({ value: 'stopped', context: structuredClone(g.ctx) }).value).toBe('stopped');
  });

  it('leaves a plateau entered during warmup for training at the next step, as before the parent state', () => {
    // Rules 1: the plateau rule comes before the warmup rule at a checkpoint.
    const g = new Given({ warmupSteps: 100, plateauPatience: 1 }).started(0.5);
    expect(g.state).toBe('warmup');
    g.epoch(0.9);
    expect(g.state).toBe('plateau');
    g.steps(1);
    expect(g.state).toBe('training');
    // A stop request from each active state records where it came from.
    const w = new Given({ warmupSteps: 100 }).started();
    w.interrupt();
    expect(w.ctx.interruptedFrom).toBe('warmup');
    w.send({ type: 'run.resumed', data: {} });
    expect(w.state).toBe('warmup');
  });
});
