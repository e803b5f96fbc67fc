// The public hash contract and weight I/O by canonical name.
import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/train/backend.js';
import { buildModel } from '../../src/train/models.js';
import type { Tf } from '../../src/train/types.js';
import { canonicalVariables, readWeights, weightsFinite, weightsHash, WeightsError, writeWeights } from '../../src/train/weights.js';

let tf: Tf;
beforeAll(async () => {
  ({ tf } = await initBackend('wasm'));
});

describe('weights', () => {
  it('weightsHash = SHA-256 of the float32 weights concatenated in model.layers order, frozen or not', async () => {
    const { model } = await buildModel('cnn', { tf, inputShape: [12, 12, 1], numClasses: 3, seed: 1 });
    const manual = (): string => {
      const hash = createHash('sha256');
      for (const layer of model.layers) {
        for (const w of layer.weights) {
          const data = w.read().dataSync() as Float32Array;
          hash.update(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
        }
      }
      return hash.digest('hex');
    };
    const expected = manual();
    expect(weightsHash(model)).toBe(expected);
    expect(weightsHash(readWeights(model))).toBe(expected);
    expect(canonicalVariables(model).map((v) => v.name)).toEqual([
      'conv1/kernel', 'conv1/bias', 'conv2/kernel', 'conv2/bias', 'dense_hidden/kernel', 'dense_hidden/bias', 'dense_out/kernel', 'dense_out/bias',
    ]);
    // Freezing reorders model.getWeights() (trainable first) but not the canonical order.
    model.getLayer('conv2').trainable = false;
    expect(model.getWeights()[2]!.shape).not.toEqual([3, 3, 8, 16]);
    expect(weightsHash(model)).toBe(expected);
    model.dispose();
  });

  it('readWeights/writeWeights round-trip by name and reject what does not fit', async () => {
    const opts = { tf, inputShape: [8], numClasses: 3 };
    const a = (await buildModel('mlp', { ...opts, seed: 1 })).model;
    const b = (await buildModel('mlp', { ...opts, seed: 2 })).model;
    const wa = readWeights(a);
    expect(wa.map((w) => [w.name, w.shape, w.dtype])).toEqual([
      ['dense_hidden/kernel', [8, 128], 'float32'],
      ['dense_hidden/bias', [128], 'float32'],
      ['dense_out/kernel', [128, 3], 'float32'],
      ['dense_out/bias', [3], 'float32'],
    ]);
    expect(weightsHash(b)).not.toBe(weightsHash(a));
    writeWeights(b, [...wa].reverse()); // by name, not position
    expect(weightsHash(b)).toBe(weightsHash(a));
    expect(weightsFinite(b)).toBe(true);

    const hashBefore = weightsHash(b);
    expect(() => writeWeights(b, wa.slice(1))).toThrow(WeightsError);
    expect(() => writeWeights(b, wa.slice(1))).toThrow(/missing "dense_hidden\/kernel"/);
    expect(() => writeWeights(b, [...wa, { ...wa[1]!, name: 'extra/bias' }])).toThrow(/unexpected "extra\/bias"/);
    expect(() => writeWeights(b, [wa[0]!, { ...wa[1]!, shape: [64], bytes: wa[1]!.bytes.slice(0, 256) }, wa[2]!, wa[3]!])).toThrow(
      /shape mismatch: "dense_hidden\/bias" is float32\[128\] but got float32\[64\]/,
    );
    expect(weightsHash(b)).toBe(hashBefore); // nothing written on error

    const nan = wa.map((w) => (w.name === 'dense_out/bias' ? { ...w, bytes: new Uint8Array(new Float32Array([0, Number.NaN, 0]).buffer) } : w));
    writeWeights(b, nan);
    expect(weightsFinite(b)).toBe(false);
    a.dispose();
    b.dispose();
  });
});
