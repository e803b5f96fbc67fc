// Seeded randomness. Every random stream of a run is a pure function of (seed, key...): the data
// order of each pass, and the Math.random stream tfjs falls back to for unseeded random ops
// (initializers, dropout: tf-core uses `seed ? seed : Math.random()`), which we replace for the
// duration of synchronous code only.

/** A seeded generator: call it for a float in [0, 1) with 32 random bits; uint32() for the raw word. */
export interface Rng {
  (): number;
  uint32(): number;
}

export type RandomKeyPart = string | number;

const encoder = new TextEncoder();

/** FNV-1a (32-bit) over the UTF-8 bytes of a string (ASCII is hashed without encoding). */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) return fnv1aBytes(encoder.encode(text));
    h ^= c;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function fnv1aBytes(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The stable text form of a key tuple: numbers and strings are told apart ('1' vs 1). */
function encodeKey(parts: readonly RandomKeyPart[]): string {
  let text = '';
  for (const part of parts) {
    if (typeof part === 'number') {
      if (!Number.isFinite(part)) throw new RangeError(`random key part must be finite, got ${part}`);
      text += `n${part};`;
    } else {
      text += `s${part.length}:${part};`;
    }
  }
  return text;
}

/** Stable 32-bit hash of a key tuple (FNV-1a over its UTF-8 form, then a murmur3 finalizer). */
export function hashKey(parts: readonly RandomKeyPart[]): number {
  let h = fnv1a(encodeKey(parts));
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** splitmix32: expands one 32-bit hash into well-mixed state words. */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** sfc32 generator seeded by hashing (seed, ...key). */
export function rng(seed: number, ...key: RandomKeyPart[]): Rng {
  const sm = { s: hashKey([seed, ...key]) };
  let a = splitmix32(sm);
  let b = splitmix32(sm);
  let c = splitmix32(sm);
  let d = splitmix32(sm);
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 12; i++) next();
  const gen = (() => next() / 4294967296) as Rng;
  gen.uint32 = next;
  return gen;
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * Replaces Math.random with rng(seed, ...key) until the returned function is called. Only for
 * callers that must straddle a sync boundary themselves (an async model factory's sync part);
 * prefer withSeededMathRandom.
 */
export function patchMathRandom(seed: number, key: readonly RandomKeyPart[]): () => void {
  const original = Math.random;
  const gen = rng(seed, ...key);
  Math.random = gen;
  return () => {
    Math.random = original;
  };
}

/**
 * Runs fn with Math.random replaced by rng(seed, ...key), restoring it afterwards. fn must be
 * synchronous: async code would interleave with other code using the patched stream (or run after
 * the restore), so a returned Promise is an error.
 */
export function withSeededMathRandom<T>(seed: number, key: readonly RandomKeyPart[], fn: () => T): T {
  const restore = patchMathRandom(seed, key);
  let result: T;
  try {
    result = fn();
  } finally {
    restore();
  }
  if (isPromiseLike(result)) {
    // Keep the abandoned promise from surfacing as an unhandled rejection.
    result.then(undefined, () => undefined);
    throw new TypeError('withSeededMathRandom: fn returned a Promise; only synchronous code can run under the seeded Math.random');
  }
  return result;
}

/**
 * The order in which pass `pass` over n examples visits them: a Fisher–Yates permutation drawn
 * from rng(seed, 'pass', pass). Index draws use multiply-shift on one 32-bit word for n < 2^21
 * (exact in float64), on a 53-bit fraction from two words above.
 */
export function passOrder(n: number, seed: number, pass: number): Uint32Array {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`passOrder: n must be a non-negative integer, got ${n}`);
  if (n > 2 ** 32) throw new RangeError(`passOrder: n must be at most 2^32, got ${n}`);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const r = rng(seed, 'pass', pass);
  const wide = n >= 2 ** 21;
  for (let i = n - 1; i > 0; i--) {
    // Below 2^21 one 32-bit word suffices (the product stays exact); above, a 53-bit fraction.
    const j = wide
      ? Math.floor((((r.uint32() >>> 5) * 67108864 + (r.uint32() >>> 6)) / 9007199254740992) * (i + 1))
      : Math.floor((r.uint32() * (i + 1)) / 4294967296);
    const tmp = order[i]!;
    order[i] = order[j]!;
    order[j] = tmp;
  }
  return order;
}
