// Shared pieces of the data loaders: the error type, the seeded train/validation split, and the
// row gather that turns index lists into typed-array splits.
//
// DatasetError lives here (and is re-exported by index.ts) because every loader needs it and
// index.ts imports the loaders: defining it in index.ts would make an import cycle.
import type { Split } from '../types.js';

/** A user-caused data problem (bad spec, unreadable or malformed file, invalid example): one line. */
export class DatasetError extends Error {
  override name = 'DatasetError';
}

/** Murmur3's 32-bit finalizer: spreads every input bit over the whole word. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A 32-bit hash of (seed, tag): FNV-1a over the seed's four little-endian bytes then the tag's
 * UTF-16 code units, finished with fmix32. The tag keeps this stream independent of any other
 * stream derived from the same run seed (weight init, batch order, ...).
 */
export function hashSeed(seed: number, tag: string): number {
  let h = 0x811c9dc5;
  const s = seed >>> 0;
  for (let shift = 0; shift < 32; shift += 8) {
    h ^= (s >>> shift) & 0xff;
    h = Math.imul(h, 0x01000193);
  }
  for (let i = 0; i < tag.length; i++) {
    h ^= tag.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

/** mulberry32: a tiny, well-mixed 32-bit PRNG. Returns uint32 values (not floats). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** How many examples go to validation: max(1, round(n × valFraction)), leaving train at least 1. */
export function validationCount(n: number, valFraction: number): number {
  return Math.min(n - 1, Math.max(1, Math.round(n * valFraction)));
}

export interface SplitIndices {
  /** Row indices of the training examples, ascending (source order). */
  readonly train: Int32Array;
  /** Row indices of the validation examples, ascending (source order). */
  readonly val: Int32Array;
}

/**
 * A seeded, deterministic split of n rows: a Fisher–Yates permutation driven by mulberry32 seeded
 * from hashSeed(seed, 'split'); its first validationCount(n, valFraction) entries are validation,
 * the rest train. Never Math.random: the same (n, valFraction, seed) gives the same split on every
 * machine. Each side is then sorted so rows keep their source order (the trainer shuffles per
 * pass anyway), and a larger valFraction only moves more rows into validation (nested splits).
 */
export function splitIndices(n: number, valFraction: number, seed: number): SplitIndices {
  if (!Number.isInteger(n) || n < 2) {
    throw new DatasetError(`need at least 2 examples to make a train and a validation split, got ${n}`);
  }
  if (!(valFraction > 0 && valFraction < 1)) {
    throw new DatasetError(`valFraction must be between 0 and 1 (exclusive), got ${valFraction}`);
  }
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const next = mulberry32(hashSeed(seed, 'split'));
  for (let i = n - 1; i > 0; i--) {
    // Integer j in [0, i]; the product stays exact in a double for any realistic n.
    const j = Math.floor((next() * (i + 1)) / 4294967296);
    const t = perm[i]!;
    perm[i] = perm[j]!;
    perm[j] = t;
  }
  const valCount = validationCount(n, valFraction);
  return {
    val: perm.slice(0, valCount).sort(),
    train: perm.slice(valCount).sort(),
  };
}

/** Copies the given rows (F features each) out of the full arrays into a new Split. */
export function gatherSplit(x: Float32Array, y: Int32Array, featureCount: number, rows: Int32Array): Split {
  const outX = new Float32Array(rows.length * featureCount);
  const outY = new Int32Array(rows.length);
  for (let r = 0; r < rows.length; r++) {
    const src = rows[r]!;
    outX.set(x.subarray(src * featureCount, (src + 1) * featureCount), r * featureCount);
    outY[r] = y[src]!;
  }
  return { size: rows.length, x: outX, y: outY };
}

/** Compares strings by Unicode code point (not UTF-16 code unit, which misorders astral chars). */
export function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const ca = ia.next();
    const cb = ib.next();
    if (ca.done || cb.done) return ca.done ? (cb.done ? 0 : -1) : 1;
    const d = ca.value.codePointAt(0)! - cb.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}
