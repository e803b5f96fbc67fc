// The data set's identity: resume and replay refuse to continue a run on different data, so the
// fingerprint must change with any byte of the examples and must NOT change with how the data
// was named (a CSV moved to another path is the same data).
import { createHash, type Hash } from 'node:crypto';
import { endianness } from 'node:os';
import type { Dataset, Split } from '../types.js';

/** Everything the fingerprint covers: a Dataset minus its name (and minus the fingerprint). */
export type FingerprintContent = Pick<Dataset, 'inputShape' | 'numClasses' | 'classNames' | 'train' | 'val'>;

/** Bump when the encoding below changes, so old and new fingerprints can never be confused. */
const FORMAT = 'retrace-dataset-fingerprint-v1';

const LITTLE_ENDIAN = endianness() === 'LE';

/** Writes an unsigned 64-bit little-endian length prefix. */
function updateLength(hash: Hash, n: number): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  hash.update(b);
}

/** Length-framed bytes: the frame makes the boundary between fields unambiguous. */
function updateFramed(hash: Hash, bytes: Uint8Array): void {
  updateLength(hash, bytes.byteLength);
  hash.update(bytes);
}

/** A typed array's bytes in little-endian order, whatever the host's endianness. */
function littleEndianBytes(a: Float32Array | Int32Array): Uint8Array {
  const view = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  if (LITTLE_ENDIAN) return view;
  const out = Uint8Array.from(view);
  for (let i = 0; i < out.length; i += 4) {
    [out[i], out[i + 1], out[i + 2], out[i + 3]] = [out[i + 3]!, out[i + 2]!, out[i + 1]!, out[i]!];
  }
  return out;
}

function updateSplit(hash: Hash, tag: string, split: Split): void {
  // The example count and both arrays are framed separately, so moving rows between train and
  // val, or bytes between x and y, always changes the stream.
  updateFramed(hash, Buffer.from(tag, 'utf8'));
  updateLength(hash, split.size);
  updateFramed(hash, littleEndianBytes(split.x));
  updateFramed(hash, littleEndianBytes(split.y));
}

/**
 * SHA-256 (hex) over a canonical encoding: a format tag, then the metadata as framed JSON
 * (inputShape, numClasses, classNames: JSON escapes strings, so names cannot run into each other),
 * then train and val (count, x bytes, y bytes, each length-framed). The name is deliberately left out.
 */
export function fingerprintDataset(content: FingerprintContent): string {
  const hash = createHash('sha256');
  updateFramed(hash, Buffer.from(FORMAT, 'utf8'));
  const meta = JSON.stringify({
    inputShape: content.inputShape,
    numClasses: content.numClasses,
    classNames: content.classNames,
  });
  updateFramed(hash, Buffer.from(meta, 'utf8'));
  updateSplit(hash, 'train', content.train);
  updateSplit(hash, 'val', content.val);
  return hash.digest('hex');
}

/** Assembles a Dataset and stamps its fingerprint: every loader ends here. */
export function makeDataset(name: string, content: FingerprintContent, featureNames: string[] | null = null): Dataset {
  return {
    name,
    featureNames: featureNames ? [...featureNames] : null,
    inputShape: [...content.inputShape],
    numClasses: content.numClasses,
    classNames: [...content.classNames],
    train: content.train,
    val: content.val,
    fingerprint: fingerprintDataset(content),
  };
}
