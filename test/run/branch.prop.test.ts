// Issue #9, item 1. Property: for random small iris configs (warmup, ReduceLROnPlateau with
// cooldown, early stopping, any optimizer) and random branch points (a checkpoint, or any step,
// even one between checkpoints), a branch with no overrides (and a branch of it) reproduces its parent's remaining
// steps (loss bits and learning rate), checkpoints (absolute step and weightsHash) and stop,
// bit-exactly: it inherits the parent's controller state and continues its schedule.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config.js';
import { branch } from '../../src/run/branch.js';
import type { RunHistory } from '../../src/run/history.js';
import { train } from '../../src/run/train.js';
import { tempDir, history } from './helpers.js';

/** [absolute step, loss, lr] of every step; [absolute step, weightsHash] of every epoch checkpoint. */
function facts(h: RunHistory) {
  const o = h.created.origin.step;
  return {
    steps: h.records.flatMap((r) => (r.type === 'step.finished' ? [[o + r.data.step, r.data.loss, r.data.lr] as const] : [])),
    checkpoints: h.checkpoints.filter((c) => c.data.kind === 'epoch').map((c) => [o + c.data.step, c.data.weightsHash] as const),
    stopReason: h.snapshotAt().snapshot.context.stopReason,
  };
}

const configs = fc.record({
  optimizer: fc.constantFrom('sgd', 'momentum', 'adam', 'rmsprop'),
  batchSize: fc.integer({ min: 8, max: 24 }),
  stopPoint: fc.integer({ min: 15, max: 40 }).map((x) => x / 10),
  checkpoints: fc.integer({ min: 2, max: 6 }),
  warmupSteps: fc.integer({ min: 0, max: 25 }),
  lr: fc.constantFrom(0.01, 0.05, 0.2),
  reduceLrOnPlateau: fc.boolean(),
  plateauPatience: fc.integer({ min: 1, max: 2 }),
  cooldown: fc.integer({ min: 0, max: 1 }),
  earlyStopping: fc.boolean(),
  earlyStopPatience: fc.integer({ min: 1, max: 3 }),
  minDelta: fc.constantFrom(0, 0.01),
  minLr: fc.constantFrom(0.001, 0.02),
  seed: fc.integer({ min: 0, max: 1000 }),
});

describe('branch with no overrides ≡ parent', () => {
  it('holds for random configs and branch points (checkpoints and step:N)', async () => {
    await fc.assert(
      fc.asyncProperty(configs, fc.constantFrom('ckpt', 'step'), fc.double({ min: 0, max: 0.999, noNaN: true }), async (c, kind, f) => {
        const config: ConfigInput = { dataset: 'iris', model: 'mlp', backend: 'wasm', ...c } as ConfigInput;
        const store = await tempDir();
        const parent = await train({ store, config: { ...config, runId: 'p' } });
        const ph = await history(store, 'p');
        let point: string;
        let at: number;
        if (kind === 'ckpt') {
          const before = ph.checkpoints.filter((k) => k.data.kind !== 'interrupt' && k.data.step < parent.step);
          const k = before[Math.floor(f * before.length)]!;
          point = `ckpt:${k.data.index}`;
          at = k.data.step;
        } else {
          at = Math.floor(f * parent.step);
          point = `step:${at}`;
        }
        const child = await branch(`p@${point}`, { store, overrides: { runId: 'b' } });
        const a = facts(ph);
        const b = facts(await history(store, 'b'));
        expect(b.steps).toEqual(a.steps.filter(([s]) => s > at));
        expect(b.checkpoints).toEqual(a.checkpoints.filter(([s]) => s > at));
        expect(b.stopReason).toBe(a.stopReason);
        expect(child.step).toBe(parent.step - at);
        expect(child.weightsHash).toBe(parent.weightsHash);
        // A branch of that branch (its offsets add up) still reproduces the first parent.
        if (child.step >= 2) {
          const mid = Math.floor(child.step / 2);
          await branch(`b@step:${mid}`, { store, overrides: { runId: 'g' } });
          const g = facts(await history(store, 'g'));
          expect(g.steps).toEqual(a.steps.filter(([s]) => s > at + mid));
          expect(g.checkpoints).toEqual(a.checkpoints.filter(([s]) => s > at + mid));
          expect(g.stopReason).toBe(a.stopReason);
        }
      }),
      { numRuns: 8, verbose: true },
    );
  });
});
