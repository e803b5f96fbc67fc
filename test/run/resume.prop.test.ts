// Property: for random small configs and random interruption points, interrupting a run (as
// Ctrl-C does, through the AbortSignal) and resuming it, any number of times, gives bit-identical
// final weights and the very same step events as the run done without interruption.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ConfigInput } from '../../src/config.js';
import { Store } from '../../src/log/store.js';
import { readRun } from '../../src/run/inspect.js';
import { resume } from '../../src/run/resume.js';
import { train } from '../../src/run/train.js';
import { tempDir } from './helpers.js';

async function facts(store: string, runId: string) {
  const s = await Store.open(store);
  try {
    const h = await readRun(s, runId);
    const pick = (type: string) => h.records.filter((r) => r.type === type).map((r) => r.data);
    return {
      steps: pick('step.finished'),
      evals: pick('eval.finished'),
      checkpoints: h.checkpoints.filter((c) => c.data.kind !== 'interrupt').map((c) => [c.data.index, c.data.step, c.data.weightsHash]),
      context: h.snapshotAt().snapshot.context,
    };
  } finally {
    await s.close();
  }
}

/** Trains with stops requested after each of `stops` steps, resuming after each. */
async function interruptedRun(store: string, config: ConfigInput, stops: number[]) {
  let pending = [...stops].sort((a, b) => a - b);
  const stopper = () => {
    const controller = new AbortController();
    const at = pending.shift();
    return {
      signal: controller.signal,
      onRecord: (r: { type: string; data: unknown }) => {
        if (at !== undefined && r.type === 'step.finished' && (r.data as { step: number }).step === at) controller.abort();
      },
    };
  };
  let summary = await train({ store, config: { ...config, runId: 'cut' }, ...stopper() });
  let interruptions = 0;
  while (summary.stopReason === 'interrupted') {
    interruptions += 1;
    summary = await resume('cut', { store, ...stopper() });
    pending = pending.filter((s) => s > summary.step);
  }
  return { summary, interruptions };
}

const configs = fc.record({
  optimizer: fc.constantFrom('sgd', 'momentum', 'adam', 'rmsprop'),
  batchSize: fc.integer({ min: 4, max: 24 }),
  stopPoint: fc.double({ min: 1, max: 4, noNaN: true }).map((x) => Math.round(x * 10) / 10),
  checkpoints: fc.integer({ min: 1, max: 4 }),
  warmupSteps: fc.integer({ min: 0, max: 12 }),
  lr: fc.constantFrom(0.003, 0.01, 0.05),
  reduceLrOnPlateau: fc.boolean(),
  plateauPatience: fc.integer({ min: 1, max: 2 }),
  seed: fc.integer({ min: 0, max: 1000 }),
});

describe('resume ≡ uninterrupted', () => {
  it('holds for random configs and interruption points', async () => {
    await fc.assert(
      fc.asyncProperty(configs, fc.array(fc.double({ min: 0.02, max: 0.98, noNaN: true }), { minLength: 1, maxLength: 3 }), async (c, fractions) => {
        const config: ConfigInput = { dataset: 'iris', model: 'mlp', backend: 'wasm', ...c } as ConfigInput;
        const store = await tempDir();
        const straight = await train({ store, config: { ...config, runId: 'straight' } });
        const stops = [...new Set(fractions.map((f) => Math.max(1, Math.floor(f * straight.step))))];
        const { summary, interruptions } = await interruptedRun(store, config, stops);
        expect(interruptions).toBeGreaterThan(0);
        expect(summary.weightsHash).toBe(straight.weightsHash);
        expect({ ...summary, runId: 'x' }).toEqual({ ...straight, runId: 'x' });
        const a = await facts(store, 'straight');
        const b = await facts(store, 'cut');
        expect(b.steps).toEqual(a.steps);
        expect(b.evals).toEqual(a.evals);
        expect(b.checkpoints).toEqual(a.checkpoints);
        // Only the interrupted run has interrupt checkpoints (lastCheckpoint, interrupts count them).
        const { lastCheckpoint: _la, interrupts: _ia, ...ca } = a.context;
        const { lastCheckpoint: _lb, interrupts: _ib, ...cb } = b.context;
        expect(cb).toEqual(ca);
      }),
      { numRuns: 12, verbose: true },
    );
  });
});
