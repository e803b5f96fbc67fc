// The Conv2DBackpropFilter kernel retrace registers for wasm (tfjs-backend-wasm 4.22 has none, so
// no convolutional model could train there): same gradients as the cpu backend, no leaked tensors,
// and the built-in CNN trains on wasm.
import { describe, expect, it } from 'vitest';
import type * as tfTypes from '@tensorflow/tfjs';
import { initBackend } from '../../src/train/backend.js';
import { createSession } from '../../src/train/session.js';
import { syntheticDataset, testConfig } from './helpers.js';

type Case = { x: [number, number, number, number]; f: [number, number, number, number]; s: number | [number, number]; p: 'valid' | 'same' };

const CASES: Case[] = [
  { x: [4, 12, 12, 1], f: [3, 3, 1, 8], s: 1, p: 'valid' },
  { x: [3, 9, 10, 2], f: [3, 2, 2, 5], s: 2, p: 'valid' },
  { x: [3, 9, 10, 2], f: [3, 3, 2, 5], s: 2, p: 'same' },
  { x: [2, 7, 8, 3], f: [2, 3, 3, 4], s: [3, 2], p: 'same' },
];

async function filterGradient(backend: 'wasm' | 'cpu', c: Case, x: Float32Array, dy: Float32Array): Promise<Float32Array> {
  const { tf } = await initBackend(backend);
  return tf.tidy(() => {
    const xs = tf.tensor4d(x, c.x);
    const probe = tf.conv2d(xs, tf.zeros(c.f) as tfTypes.Tensor4D, c.s, c.p);
    const dys = tf.tensor(dy, probe.shape);
    const g = tf.grad((f: tfTypes.Tensor) => tf.sum(tf.mul(tf.conv2d(xs, f as tfTypes.Tensor4D, c.s, c.p), dys)))(tf.zeros(c.f));
    return g.dataSync() as Float32Array;
  });
}

describe('wasm Conv2DBackpropFilter', () => {
  it('matches the cpu backend for strides, paddings and channel counts', async () => {
    for (const c of CASES) {
      const { tf } = await initBackend('cpu');
      const outShape = tf.tidy(() => tf.conv2d(tf.zeros(c.x) as tfTypes.Tensor4D, tf.zeros(c.f) as tfTypes.Tensor4D, c.s, c.p).shape);
      const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
      const x = Float32Array.from({ length: size(c.x) }, (_, i) => Math.sin(i * 0.7));
      const dy = Float32Array.from({ length: size(outShape) }, (_, i) => Math.cos(i * 0.3));
      const expected = await filterGradient('cpu', c, x, dy);
      const actual = await filterGradient('wasm', c, x, dy);
      expect(actual.length).toBe(expected.length);
      for (let i = 0; i < expected.length; i++) expect(actual[i]).toBeCloseTo(expected[i]!, 3);
    }
  });

  it('leaves no tensor data behind', async () => {
    const { tf } = await initBackend('wasm');
    const backend = tf.engine().backend as unknown as { numDataIds(): number };
    const before = backend.numDataIds();
    tf.tidy(() => {
      tf.grad((f: tfTypes.Tensor) => tf.sum(tf.conv2d(tf.ones([2, 6, 6, 1]) as tfTypes.Tensor4D, f as tfTypes.Tensor4D, 2, 'same')))(tf.ones([3, 3, 1, 3]));
    });
    expect(backend.numDataIds()).toBe(before);
  });

  it('lets the built-in CNN train on wasm', async () => {
    const { tf, info } = await initBackend('wasm');
    const dataset = syntheticDataset({ inputShape: [12, 12, 1], trainSize: 32, valSize: 8 });
    const session = await createSession({ tf, backend: info, dataset, config: testConfig({ model: 'cnn', batchSize: 8 }) });
    try {
      const first = session.step(0, 0, 0.01).loss;
      const second = session.step(1, 8, 0.01).loss;
      expect(Number.isFinite(first) && Number.isFinite(second)).toBe(true);
    } finally {
      session.dispose();
    }
  });
});
