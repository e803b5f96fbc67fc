import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hashKey, passOrder, rng, withSeededMathRandom } from '../../src/train/random.js';

describe('random', () => {
  it('rng is a pure function of (seed, key) and keys are typed', () => {
    const a = rng(42, 'step', 17);
    const b = rng(42, 'step', 17);
    const xs = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(xs);
    for (const x of xs) expect(x >= 0 && x < 1).toBe(true);
    expect(rng(42, 'step', 18)()).not.toBe(xs[0]);
    expect(rng(43, 'step', 17)()).not.toBe(xs[0]);
    expect(hashKey([1, 'a'])).not.toBe(hashKey(['1', 'a']));
    expect(hashKey(['ab', 'c'])).not.toBe(hashKey(['a', 'bc']));
    // Pinned: the streams are part of the on-disk contract (a later version must replay old logs).
    expect(hashKey([42, 'step', 17])).toBe(1798755103);
    expect(hashKey([1, 'é', 'x'])).toBe(2563100363); // non-ASCII keys hash their UTF-8 bytes
    expect(rng(42, 'init').uint32()).toBe(264557823);
    expect(Array.from(passOrder(10, 42, 0))).toEqual([4, 0, 3, 7, 5, 1, 6, 8, 9, 2]);
  });

  it('passOrder is a permutation, deterministic per (n, seed, pass)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 1000 }), (n, seed, pass) => {
        const order = passOrder(n, seed, pass);
        expect(order.length).toBe(n);
        expect([...order].sort((x, y) => x - y)).toEqual(Array.from({ length: n }, (_, i) => i));
        expect(passOrder(n, seed, pass)).toEqual(order);
      }),
      { numRuns: 60 },
    );
    expect(passOrder(1000, 1, 0)).not.toEqual(passOrder(1000, 1, 1));
  });

  it('withSeededMathRandom patches only for the synchronous call and restores', () => {
    const original = Math.random;
    const first = withSeededMathRandom(5, ['init'], () => [Math.random(), Math.random()]);
    expect(Math.random).toBe(original);
    expect(withSeededMathRandom(5, ['init'], () => [Math.random(), Math.random()])).toEqual(first);
    expect(() => withSeededMathRandom(5, ['x'], () => { throw new Error('boom'); })).toThrow('boom');
    expect(Math.random).toBe(original);
    expect(() => withSeededMathRandom(5, ['x'], async () => 1)).toThrow(/Promise/);
    expect(Math.random).toBe(original);
  });
});
