import { describe, expect, it } from 'vitest';
import { DatasetError, datasetFromSource, fingerprintDataset, loadDataset, type DatasetSource, type RandomAccess } from '../../src/train/data/index.js';

function access(examples: Array<{ x: ArrayLike<number>; y: number }>): RandomAccess {
  return { size: examples.length, get: (i) => examples[i]! };
}

const valid = (): DatasetSource => ({
  name: 'toy',
  inputShape: [2, 1],
  numClasses: 3,
  classNames: ['a', 'b', 'c'],
  train: access([
    { x: [0.5, 1], y: 0 },
    { x: new Float64Array([2, 3]), y: 2 },
    { x: [-1, 1e30], y: 1 },
  ]),
  val: access([{ x: [4, 5], y: 1 }]),
});

function expectError(fn: () => unknown, patterns: RegExp[]): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(DatasetError);
  expect((err as Error).name).toBe('DatasetError');
  expect((err as Error).message).not.toContain('\n');
  for (const p of patterns) expect((err as Error).message).toMatch(p);
}

describe('datasetFromSource', () => {
  it('round-trips a valid source into typed arrays', () => {
    const ds = datasetFromSource(valid());
    expect(ds.name).toBe('toy');
    expect(ds.inputShape).toEqual([2, 1]);
    expect(ds.numClasses).toBe(3);
    expect(ds.classNames).toEqual(['a', 'b', 'c']);
    expect(ds.train.size).toBe(3);
    expect(ds.train.x).toBeInstanceOf(Float32Array);
    expect(ds.train.y).toBeInstanceOf(Int32Array);
    expect(Array.from(ds.train.x)).toEqual([0.5, 1, 2, 3, -1, Math.fround(1e30)]);
    expect(Array.from(ds.train.y)).toEqual([0, 2, 1]);
    expect(Array.from(ds.val.x)).toEqual([4, 5]);
    expect(Array.from(ds.val.y)).toEqual([1]);
    expect(ds.fingerprint).toBe(fingerprintDataset(ds));
  });

  it('defaults classNames to the index strings', () => {
    const { classNames: _omit, ...rest } = valid();
    expect(datasetFromSource(rest).classNames).toEqual(['0', '1', '2']);
  });

  it('copies: later changes to the caller data do not change the dataset', () => {
    const row = [0.5, 1];
    const src = { ...valid(), train: access([{ x: row, y: 0 }]) };
    const ds = datasetFromSource(src);
    row[0] = 99;
    expect(ds.train.x[0]).toBe(0.5);
  });

  it('rejects a wrong feature count, naming split and index', () => {
    const src = { ...valid(), val: access([{ x: [1, 2], y: 0 }, { x: [1, 2, 3], y: 0 }]) };
    expectError(() => datasetFromSource(src), [/val example 1/, /3 features, expected 2/]);
  });

  it('rejects non-finite features, naming split, index and feature', () => {
    expectError(() => datasetFromSource({ ...valid(), train: access([{ x: [1, NaN], y: 0 }]) }), [/train example 0/, /feature 1 is NaN/]);
    expectError(() => datasetFromSource({ ...valid(), train: access([{ x: [1, 2], y: 0 }, { x: [Infinity, 2], y: 0 }]) }), [
      /train example 1/,
      /feature 0 is Infinity/,
    ]);
    // Finite as a double, Infinity as a float32.
    expectError(() => datasetFromSource({ ...valid(), val: access([{ x: [1e39, 2], y: 0 }]) }), [/val example 0/, /feature 0/]);
    const notNumber = [1, '2'] as unknown as number[];
    expectError(() => datasetFromSource({ ...valid(), val: access([{ x: notNumber, y: 0 }]) }), [/val example 0/, /feature 1 is 2/]);
  });

  it('rejects labels that are not integers in [0, numClasses)', () => {
    for (const y of [3, -1, 1.5, NaN]) {
      expectError(() => datasetFromSource({ ...valid(), train: access([{ x: [1, 2], y: 0 }, { x: [1, 2], y }]) }), [
        /train example 1/,
        new RegExp(`label ${String(y)} is not an integer class index in \\[0, 3\\)`),
      ]);
    }
  });

  it('rejects a missing x', () => {
    const bad = access([{ x: undefined as unknown as number[], y: 0 }]);
    expectError(() => datasetFromSource({ ...valid(), train: bad }), [/train example 0/, /x must be an array/]);
  });

  it('reports a throwing get()', () => {
    const bad: RandomAccess = {
      size: 2,
      get: (i) => {
        if (i === 1) throw new Error('disk gone');
        return { x: [1, 2], y: 0 };
      },
    };
    expectError(() => datasetFromSource({ ...valid(), val: bad }), [/val example 1/, /disk gone/]);
  });

  it('rejects empty or invalid splits and metadata', () => {
    expectError(() => datasetFromSource({ ...valid(), val: access([]) }), [/val split/, /positive integer, got 0/]);
    expectError(() => datasetFromSource({ ...valid(), train: { size: 1.5, get: () => ({ x: [1, 2], y: 0 }) } }), [/train split/]);
    expectError(() => datasetFromSource({ ...valid(), name: '' }), [/name/]);
    expectError(() => datasetFromSource({ ...valid(), inputShape: [2, 0] }), [/inputShape/]);
    expectError(() => datasetFromSource({ ...valid(), inputShape: [] }), [/inputShape/]);
    expectError(() => datasetFromSource({ ...valid(), numClasses: 0 }), [/numClasses/]);
    expectError(() => datasetFromSource({ ...valid(), classNames: ['a', 'b'] }), [/classNames must be 3 strings/]);
  });
});

describe('fingerprint', () => {
  it('ignores the name, sees every part of the content', () => {
    const base = datasetFromSource(valid());
    expect(datasetFromSource({ ...valid(), name: 'elsewhere' }).fingerprint).toBe(base.fingerprint);
    expect(datasetFromSource({ ...valid(), classNames: ['a', 'b', 'd'] }).fingerprint).not.toBe(base.fingerprint);
    expect(datasetFromSource({ ...valid(), inputShape: [1, 2] }).fingerprint).not.toBe(base.fingerprint);
    expect(datasetFromSource({ ...valid(), numClasses: 4, classNames: undefined }).fingerprint).not.toBe(
      datasetFromSource({ ...valid(), numClasses: 3, classNames: undefined }).fingerprint,
    );
  });

  it('cannot confuse a row moved between train and val', () => {
    const rows = [
      { x: [1, 2], y: 0 },
      { x: [3, 4], y: 1 },
      { x: [5, 6], y: 0 },
    ];
    const a = datasetFromSource({ ...valid(), train: access(rows.slice(0, 2)), val: access(rows.slice(2)) });
    const b = datasetFromSource({ ...valid(), train: access(rows.slice(0, 1)), val: access(rows.slice(1)) });
    expect(a.fingerprint).not.toBe(b.fingerprint);
  });

  it('cannot confuse class name boundaries', () => {
    const two = (classNames: string[]) =>
      datasetFromSource({ ...valid(), numClasses: 2, classNames, train: access([{ x: [1, 2], y: 0 }]), val: access([{ x: [1, 2], y: 1 }]) });
    expect(two(['ab', 'c']).fingerprint).not.toBe(two(['a', 'bc']).fingerprint);
  });
});

describe('loadDataset', () => {
  const opts = { label: 'label', valFraction: 0.2, seed: 1 };

  it('rejects an unknown spec with a one-line DatasetError', async () => {
    await expect(loadDataset('cifar', opts)).rejects.toThrow(DatasetError);
    await expect(loadDataset('cifar', opts)).rejects.toThrow(/unknown dataset "cifar": expected mnist, iris or csv:PATH/);
    await expect(loadDataset('MNIST', opts)).rejects.toThrow(/unknown dataset/);
  });

  it('rejects bad valFraction or seed from library callers', async () => {
    await expect(loadDataset('iris', { ...opts, valFraction: 1 })).rejects.toThrow(/valFraction/);
    await expect(loadDataset('iris', { ...opts, valFraction: 0 })).rejects.toThrow(/valFraction/);
    await expect(loadDataset('iris', { ...opts, seed: -1 })).rejects.toThrow(/seed/);
    await expect(loadDataset('iris', { ...opts, seed: 1.5 })).rejects.toThrow(/seed/);
  });
});
