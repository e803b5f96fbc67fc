// The data sets' front door: the CLI names a data set by spec ('mnist', 'iris', 'csv:PATH'); the
// library API can also hand over its own examples by random access (datasetFromSource).
import type { Dataset, Split } from '../types.js';
import { loadCsv } from './csv.js';
import { makeDataset } from './fingerprint.js';
import { loadIris } from './iris.js';
import { loadMnist } from './mnist.js';
import { DatasetError } from './split.js';

export { DatasetError } from './split.js';
export { fingerprintDataset } from './fingerprint.js';

export interface LoadDatasetOptions {
  /** Label column for csv:PATH (config key `label`). */
  readonly label: string;
  /** Validation share for iris and csv (config key `valFraction`); MNIST's split is fixed. */
  readonly valFraction: number;
  /** Seeds the iris/csv split (config key `seed`); MNIST's split ignores it. */
  readonly seed: number;
  /** Directory a csv PATH is relative to (default: process.cwd()). */
  readonly cwd?: string;
}

/**
 * Loads a data set by spec. MNIST has a fixed, seed-independent split (see mnist.ts) and is built
 * once per process; iris and csv are split by valFraction with a split seeded by `seed`.
 */
export async function loadDataset(spec: string, opts: LoadDatasetOptions): Promise<Dataset> {
  if (!(opts.valFraction > 0 && opts.valFraction < 1)) {
    throw new DatasetError(`valFraction must be between 0 and 1 (exclusive), got ${opts.valFraction}`);
  }
  if (!Number.isInteger(opts.seed) || opts.seed < 0 || opts.seed > 0xffffffff) {
    throw new DatasetError(`seed must be an integer in [0, 2^32 - 1], got ${opts.seed}`);
  }
  if (spec === 'mnist') return loadMnist();
  if (spec === 'iris') return loadIris(opts);
  if (spec.startsWith('csv:')) return loadCsv(spec.slice('csv:'.length), opts);
  throw new DatasetError(`unknown dataset ${JSON.stringify(spec)}: expected mnist, iris or csv:PATH`);
}

/** Examples by index: get(i) for 0 <= i < size. */
export interface RandomAccess {
  readonly size: number;
  get(i: number): { x: ArrayLike<number>; y: number };
}

export interface DatasetSource {
  readonly name: string;
  readonly inputShape: number[];
  readonly numClasses: number;
  /** Defaults to the index strings '0', '1', ... */
  readonly classNames?: string[];
  /** Names of the features in x's order (recorded in exports); default none. */
  readonly featureNames?: string[];
  readonly train: RandomAccess;
  readonly val: RandomAccess;
}

/** Copies one split out of a RandomAccess into typed arrays, validating every example. */
function copySplit(which: 'train' | 'val', source: RandomAccess, features: number, numClasses: number): Split {
  const size = source?.size;
  if (!Number.isInteger(size) || size < 1) {
    throw new DatasetError(`${which} split: size must be a positive integer, got ${String(size)}`);
  }
  const x = new Float32Array(size * features);
  const y = new Int32Array(size);
  for (let i = 0; i < size; i++) {
    const where = `${which} example ${i}`;
    let example: { x: ArrayLike<number>; y: number };
    try {
      example = source.get(i);
    } catch (err) {
      throw new DatasetError(`${where}: get(${i}) threw: ${(err as Error)?.message ?? String(err)}`);
    }
    const ex = example?.x;
    if (ex === null || typeof ex !== 'object' || typeof ex.length !== 'number') {
      throw new DatasetError(`${where}: x must be an array of numbers`);
    }
    if (ex.length !== features) {
      throw new DatasetError(`${where}: x has ${ex.length} features, expected ${features} (the product of inputShape)`);
    }
    for (let f = 0; f < features; f++) {
      const raw = ex[f];
      // Checked after the float32 rounding: 1e39 is finite as a double but Infinity as a float32.
      const v = typeof raw === 'number' ? Math.fround(raw) : NaN;
      if (!Number.isFinite(v)) {
        throw new DatasetError(`${where}: feature ${f} is ${String(raw)}; features must be finite float32 numbers`);
      }
      x[i * features + f] = v;
    }
    const label = example.y;
    if (!Number.isInteger(label) || label < 0 || label >= numClasses) {
      throw new DatasetError(`${where}: label ${String(label)} is not an integer class index in [0, ${numClasses})`);
    }
    y[i] = label;
  }
  return { size, x, y };
}

/**
 * Builds a Dataset from the caller's own examples. Every example is copied and validated: feature
 * count = product(inputShape), features finite, label an integer in [0, numClasses). The copy means
 * later changes to the caller's data cannot change the run's data behind the fingerprint's back.
 */
export function datasetFromSource(source: DatasetSource): Dataset {
  if (typeof source?.name !== 'string' || source.name === '') {
    throw new DatasetError('dataset source: name must be a non-empty string');
  }
  const { name, inputShape, numClasses } = source;
  if (!Array.isArray(inputShape) || inputShape.length === 0 || !inputShape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new DatasetError(`dataset ${name}: inputShape must be a non-empty array of positive integers, got ${JSON.stringify(inputShape)}`);
  }
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new DatasetError(`dataset ${name}: numClasses must be a positive integer, got ${String(numClasses)}`);
  }
  const classNames = source.classNames ?? Array.from({ length: numClasses }, (_, i) => String(i));
  if (!Array.isArray(classNames) || classNames.length !== numClasses || !classNames.every((c) => typeof c === 'string')) {
    throw new DatasetError(`dataset ${name}: classNames must be ${numClasses} strings (one per class)`);
  }
  const features = inputShape.reduce((a, b) => a * b, 1);
  const featureNames = source.featureNames ?? null;
  if (featureNames !== null && (!Array.isArray(featureNames) || featureNames.length !== features || !featureNames.every((f) => typeof f === 'string'))) {
    throw new DatasetError(`dataset ${name}: featureNames must be ${features} strings (one per feature, the product of inputShape)`);
  }
  return makeDataset(name, {
    inputShape,
    numClasses,
    classNames,
    train: copySplit('train', source.train, features, numClasses),
    val: copySplit('val', source.val, features, numClasses),
  }, featureNames);
}
