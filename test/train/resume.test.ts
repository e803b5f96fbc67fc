// Resume exactness: 2N steps straight == N steps, capture, restore into a FRESH session (new model
// and optimizer), N more steps. For every optimizer. And the proof that capturing Adam's accBeta
// matters: tfjs's own getWeights()/setWeights() round trip is not exact.
import { beforeAll, describe, expect, it } from 'vitest';
import { OPTIMIZERS } from '../../src/config.js';
import { initBackend } from '../../src/train/backend.js';
import { createSession, type TrainingSession } from '../../src/train/session.js';
import type { BackendInfo, Tf, TrainerState } from '../../src/train/types.js';
import { syntheticDataset, testConfig } from './helpers.js';

let tf: Tf;
let backend: BackendInfo;
beforeAll(async () => {
  ({ tf, info: backend } = await initBackend('wasm'));
});

const dataset = syntheticDataset({ trainSize: 200 }); // 200 / 16: batches straddle passes

/** A learning-rate schedule that changes, so setLearningRate's caching is exercised. */
const lrAt = (base: number, step: number): number => (step < 30 ? base * ((step + 1) / 30) : base * 0.5 ** Math.floor(step / 60));

function run(session: TrainingSession, from: number, to: number, base: number, batchSize: number): number[] {
  const losses: number[] = [];
  for (let step = from; step < to; step++) losses.push(session.step(step, step * batchSize, lrAt(base, step)).loss);
  return losses;
}

/** TrainerState through a structured clone, as if it had been written to disk and read back. */
const roundTrip = (state: TrainerState): TrainerState => structuredClone(state);

describe('resume is bit-exact', () => {
  for (const optimizer of OPTIMIZERS) {
    it(`${optimizer}: 2N straight == N + capture/restore into a fresh session + N`, async () => {
      const N = optimizer === 'adam' ? 100 : 60;
      const base = optimizer === 'sgd' || optimizer === 'momentum' ? 0.05 : 0.01;
      const config = testConfig({ optimizer, momentum: 0.9, l2: optimizer === 'momentum' ? 1e-3 : 0 });
      const straight = await createSession({ tf, backend, dataset, config });
      const straightLosses = run(straight, 0, 2 * N, base, config.batchSize);

      const first = await createSession({ tf, backend, dataset, config });
      expect(first.weightsHash()).not.toBe(straight.weightsHash());
      const firstLosses = run(first, 0, N, base, config.batchSize);
      const state = roundTrip(first.capture());
      first.dispose();

      const second = await createSession({ tf, backend, dataset, config });
      const outcome = second.restore(state);
      expect(outcome).toEqual({ restored: true, reason: null, missingSlots: [], droppedSlots: [] });
      expect(second.capture()).toEqual(state);
      const secondLosses = run(second, N, 2 * N, base, config.batchSize);

      expect([...firstLosses, ...secondLosses]).toEqual(straightLosses);
      expect(second.weightsHash()).toBe(straight.weightsHash());
      expect(second.capture()).toEqual(straight.capture());
      straight.dispose();
      second.dispose();
    });
  }

  it("adam: restoring through tfjs's getWeights/setWeights (accBeta recomputed) is NOT exact", async () => {
    const config = testConfig({ optimizer: 'adam' });
    const N = 100;
    const straight = await createSession({ tf, backend, dataset, config });
    run(straight, 0, 2 * N, 0.01, config.batchSize);

    const first = await createSession({ tf, backend, dataset, config });
    run(first, 0, N, 0.01, config.batchSize);
    const state = first.capture();
    const tfjsWeights = (await first.optimizer.getWeights()).map((w) => ({ name: w.name, tensor: tf.clone(w.tensor) }));

    // Ours: exact.
    const ours = await createSession({ tf, backend, dataset, config });
    ours.restore(state);
    run(ours, N, 2 * N, 0.01, config.batchSize);
    expect(ours.weightsHash()).toBe(straight.weightsHash());

    // Naive: same weights, same slots and iteration count, accBeta = pow(beta, iterations + 1).
    const naive = await createSession({ tf, backend, dataset, config });
    const fresh = naive.restore({ weights: state.weights, optimizer: [] });
    expect(fresh.restored).toBe(false);
    await naive.optimizer.setWeights(tfjsWeights);
    for (const w of tfjsWeights) w.tensor.dispose();
    const accBeta = (s: TrainingSession): number[] => ['adam/accBeta1', 'adam/accBeta2'].map((name) => {
      const entry = s.capture().optimizer.find((e) => e.name === name)!;
      return new Float32Array(entry.bytes.slice().buffer)[0]!;
    });
    const exact = state.optimizer.filter((e) => e.name.startsWith('adam/accBeta')).map((e) => new Float32Array(e.bytes.slice().buffer)[0]!);
    expect(accBeta(naive)).not.toEqual(exact); // the product of 100 float32 multiplies is not pow()
    run(naive, N, 2 * N, 0.01, config.batchSize);
    expect(naive.weightsHash()).not.toBe(straight.weightsHash());

    for (const s of [straight, first, ours, naive]) s.dispose();
  });

  it('restoring state of another optimizer kind starts the optimizer fresh and says so', async () => {
    const adam = await createSession({ tf, backend, dataset, config: testConfig({ optimizer: 'adam' }) });
    run(adam, 0, 5, 0.01, 16);
    const state = adam.capture();
    const sgd = await createSession({ tf, backend, dataset, config: testConfig({ optimizer: 'sgd' }) });
    const outcome = sgd.restore(state);
    expect(outcome.restored).toBe(false);
    expect(outcome.reason).toMatch(/adam.*sgd/);
    expect(sgd.weightsHash()).toBe(adam.weightsHash());
    expect(sgd.capture().optimizer.map((e) => e.name)).toEqual(['sgd/iterations']);
    adam.dispose();
    sgd.dispose();
  });
});
