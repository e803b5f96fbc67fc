// No tensor leaks: the count is flat over many steps, evaluations, captures and restores, and back
// to zero after dispose.
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/train/backend.js';
import { createSession } from '../../src/train/session.js';
import type { BackendInfo, Tf } from '../../src/train/types.js';
import { syntheticDataset, testConfig } from './helpers.js';

let tf: Tf;
let backend: BackendInfo;
beforeAll(async () => {
  ({ tf, info: backend } = await initBackend('wasm'));
});

describe('memory', () => {
  for (const optimizer of ['adam', 'momentum'] as const) {
    it(`${optimizer}: tf.memory().numTensors is flat over 200 steps + evaluations`, async () => {
      const baseline = tf.memory().numTensors;
      const dataset = syntheticDataset({ valSize: 2100 }); // several evaluation chunks, a partial last one
      const session = await createSession({ tf, backend, dataset, config: testConfig({ optimizer, l2: 1e-4 }) });
      session.step(0, 0, 0.01); // optimizer slots are created lazily on the first step
      session.evaluate();
      const settled = tf.memory().numTensors;
      const counts: number[] = [];
      for (let step = 1; step <= 200; step++) {
        session.step(step, step * 16, step % 2 ? 0.01 : 0.005); // lr changes every step
        if (step % 50 === 0) {
          const { valLoss, valAccuracy } = session.evaluate();
          expect(Number.isFinite(valLoss)).toBe(true);
          expect(valAccuracy).toBeGreaterThanOrEqual(0);
          session.weightsHash();
          session.weightsFinite();
          const state = session.capture();
          session.restore(state);
          counts.push(tf.memory().numTensors);
        }
      }
      expect(counts).toEqual(counts.map(() => settled));
      session.dispose();
      expect(tf.memory().numTensors).toBe(baseline);
    });
  }
});
