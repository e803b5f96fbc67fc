// The weightsHash, defined once (src/train/weights-hash.ts): the sync and async forms and the
// model form agree, and the value is SHA-256 of the bytes concatenated (how it is split into
// weights does not matter), so every hash already stored in a log still matches.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/train/backend.js';
import { buildModel } from '../../src/train/models.js';
import type { Tf } from '../../src/train/types.js';
import { readWeights, weightsHash } from '../../src/train/weights.js';
import { weightsHashOfBytes, weightsHashOfBytesAsync } from '../../src/train/weights-hash.js';
import { hashWeightsAsync } from '../../src/run/snapshots.js';

const concatHash = (parts: readonly Uint8Array[]): string => createHash('sha256').update(Buffer.concat(parts)).digest('hex');

let tf: Tf;
beforeAll(async () => {
  ({ tf } = await initBackend('wasm'));
});

describe('weightsHash', () => {
  it('is SHA-256 of the concatenated bytes, sync and async alike, however the bytes are split into weights', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), async (parts) => {
        const want = concatHash(parts);
        expect(weightsHashOfBytes(parts)).toBe(want);
        expect(await weightsHashOfBytesAsync(parts)).toBe(want);
        // One weight holding all the bytes hashes the same as the bytes split over many.
        expect(weightsHashOfBytes([Buffer.concat(parts)])).toBe(want);
      }),
      { numRuns: 200 },
    );
  });

  it('agrees across its sliced async form for a weight larger than one slice (4 MiB)', async () => {
    const big = new Uint8Array((4 << 20) + 12345);
    for (let i = 0; i < big.length; i += 1) big[i] = (i * 131) & 255;
    const parts = [new Uint8Array([1, 2, 3]), big];
    expect(await weightsHashOfBytesAsync(parts)).toBe(concatHash(parts));
    expect(weightsHashOfBytes(parts)).toBe(concatHash(parts));
  });

  it('a model, its TensorBytes and what a checkpoint records (hashWeightsAsync) give one value', async () => {
    const { model } = await buildModel('mlp', { tf, inputShape: [6], numClasses: 3, seed: 3 });
    const weights = readWeights(model);
    const want = concatHash(weights.map((w) => w.bytes));
    expect(weightsHash(model)).toBe(want);
    expect(weightsHash(weights)).toBe(want);
    expect(await hashWeightsAsync(weights)).toBe(want);
    model.dispose();
  });
});
