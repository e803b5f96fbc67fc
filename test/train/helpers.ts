// Shared fixtures for the training-side tests: small synthetic data sets and configs.
import { createHash } from 'node:crypto';
import { DEFAULTS, type Config } from '../../src/config.js';
import { rng } from '../../src/train/random.js';
import type { Dataset, Split } from '../../src/train/types.js';

/** Class-dependent Gaussian-ish blobs: learnable, deterministic in `seed`. */
export function syntheticDataset(options: {
  trainSize?: number;
  valSize?: number;
  inputShape?: number[];
  numClasses?: number;
  seed?: number;
  name?: string;
} = {}): Dataset {
  const { trainSize = 256, valSize = 64, inputShape = [8], numClasses = 3, seed = 7, name = 'synthetic' } = options;
  const features = inputShape.reduce((a, b) => a * b, 1);
  const r = rng(seed, 'dataset');
  const centers = Array.from({ length: numClasses }, () => Float32Array.from({ length: features }, () => r() * 2 - 1));
  const split = (size: number): Split => {
    const x = new Float32Array(size * features);
    const y = new Int32Array(size);
    for (let i = 0; i < size; i++) {
      const label = Math.floor(r() * numClasses);
      y[i] = label;
      for (let f = 0; f < features; f++) x[i * features + f] = centers[label]![f]! + (r() + r() + r() - 1.5) * 2;
    }
    return { size, x, y };
  };
  const train = split(trainSize);
  const val = split(valSize);
  const hash = createHash('sha256');
  hash.update(JSON.stringify({ inputShape, numClasses }));
  hash.update(new Uint8Array(train.x.buffer));
  hash.update(new Uint8Array(train.y.buffer));
  hash.update(new Uint8Array(val.x.buffer));
  hash.update(new Uint8Array(val.y.buffer));
  return {
    name,
    inputShape,
    numClasses,
    classNames: Array.from({ length: numClasses }, (_, i) => `c${i}`),
    train,
    val,
    fingerprint: hash.digest('hex'),
  };
}

export function testConfig(overrides: Partial<Config> = {}): Config {
  return { ...DEFAULTS, dataset: 'iris', batchSize: 16, lr: 0.01, optimizer: 'adam', ...overrides };
}
