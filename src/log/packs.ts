// Packs: the small tensors of one checkpoint (or start state, or snapshot) stored as ONE
// content-addressed blob instead of one blob file each.
//
// Why: a blob file costs at least one filesystem block (4 KiB on ext4) plus a directory entry and
// an fsync, so a checkpoint of many small tensors (biases, Adam's scalars, a small model's
// kernels) allocated several times its bytes. Large tensors stay one blob each: rounding wastes
// little on them, and they are what a frozen layer or a branch shares across checkpoints by hash.
//
// Format: a pack is the plain concatenation of its tensors' bytes in the order the checkpoint
// lists them (weights, then optimizer slots: the canonical order), no header. Every packed
// TensorRef keeps its own `hash` (SHA-256 of the tensor's bytes: weightsHash and every check keep
// working) and says where its bytes are: `pack: {hash, offset}`, length = `bytes`. The same
// tensors give the same pack, so a start state and its checkpoint 0 share one pack blob.
// A reader fetches a pack once per read (PackReader), slices it and verifies the slice against
// the tensor's own hash. Refs without `pack` (logs written before packs) name their own blob.
import { createHash } from 'node:crypto';
import { CorruptBlobError, MissingBlobError } from './errors.js';
import type { TensorRef } from './events.js';

/**
 * Tensors strictly smaller than this many bytes are packed. 64 KiB: below it a file's block
 * rounding and per-file fsync cost up to 16× a tensor's bytes (a 4-byte scalar takes 4 KiB); above
 * it rounding wastes at most 6 %, and such tensors (layer kernels and their optimizer slots) are
 * the ones worth deduplicating on their own (a frozen layer's kernel is one blob for every
 * checkpoint and branch). A whole pack stays small: a re-packed frozen bias costs its bytes only.
 */
export const PACK_THRESHOLD = 64 * 1024;

/** Where a packed tensor's bytes are. */
export interface PackLocation {
  hash: string;
  offset: number;
}

/** Whether a tensor of `bytes` bytes goes into its checkpoint's pack. */
export function isPackable(bytes: number, threshold = PACK_THRESHOLD): boolean {
  return bytes < threshold;
}

/**
 * The pack of `tensors` (byte arrays in canonical order): the packable ones concatenated, and for
 * each input its offset in the pack (null when it stays a blob of its own). `pack` is null when
 * no tensor is packable.
 */
export function buildPack(tensors: readonly Uint8Array[], threshold = PACK_THRESHOLD): { pack: Uint8Array | null; offsets: Array<number | null> } {
  const offsets: Array<number | null> = [];
  let size = 0;
  for (const t of tensors) {
    if (isPackable(t.byteLength, threshold)) {
      offsets.push(size);
      size += t.byteLength;
    } else offsets.push(null);
  }
  if (offsets.every((o) => o === null)) return { pack: null, offsets };
  const pack = new Uint8Array(size);
  tensors.forEach((t, i) => {
    const off = offsets[i];
    if (off !== null && off !== undefined) pack.set(t, off);
  });
  return { pack, offsets };
}

/** The blob a ref's bytes live in: its pack, or its own blob (refs written before packs). */
export function blobOf(ref: TensorRef): string {
  return ref.pack ? ref.pack.hash : ref.hash;
}

/** A packed tensor's bytes are not what its ref says: its pack blob is damaged, or the ref's slice
 * of an intact pack is out of it or hashes to something else. */
export class CorruptPackedTensorError extends CorruptBlobError {
  constructor(
    readonly tensor: string,
    readonly pack: string,
    detail: string,
    /** What the pack's bytes hash to when the pack itself is damaged (else its own name). */
    actualHash = pack,
  ) {
    super(pack, actualHash);
    this.message = `tensor ${tensor} in pack blob ${pack} is corrupt: ${detail}; run \`retrace fsck\``;
    this.name = 'CorruptPackedTensorError';
  }
}

/** A packed tensor's pack blob is not in the store. */
export class MissingPackError extends MissingBlobError {
  constructor(
    readonly tensor: string,
    readonly pack: string,
  ) {
    super(pack);
    this.message = `pack blob ${pack} holding tensor ${tensor} is missing from the store; run \`retrace fsck\``;
    this.name = 'MissingPackError';
  }
}

/** The error of reading a packed tensor's pack, naming the tensor (same class family and code). */
function namingTensor(err: unknown, ref: TensorRef & { pack: PackLocation }): unknown {
  if (err instanceof CorruptPackedTensorError) return err;
  if (err instanceof CorruptBlobError) return new CorruptPackedTensorError(ref.name, ref.pack.hash, `the pack's bytes hash to ${err.actualHash}`, err.actualHash);
  if (err instanceof MissingBlobError) return new MissingPackError(ref.name, ref.pack.hash);
  return err;
}

/**
 * The bytes of packed `ref` cut from its pack's bytes, in a fresh ArrayBuffer of their own
 * (so `new Float32Array(b.buffer, 0, n)` works), verified against the tensor's hash.
 * Throws CorruptPackedTensorError (naming tensor and pack) when the slice is out of the pack or
 * hashes to something else; TypeError for a ref that is not packed.
 */
export function slicePack(ref: TensorRef, pack: Uint8Array): Uint8Array {
  if (!ref.pack) throw new TypeError(`tensor ${ref.name} is not packed`);
  const { hash, offset } = ref.pack;
  if (offset + ref.bytes > pack.byteLength) {
    throw new CorruptPackedTensorError(ref.name, hash, `bytes ${offset}..${offset + ref.bytes} are past the pack's end (${pack.byteLength} bytes)`);
  }
  const bytes = pack.slice(offset, offset + ref.bytes);
  const actual = createHash('sha256').update(bytes).digest('hex');
  if (actual !== ref.hash) throw new CorruptPackedTensorError(ref.name, hash, `its ${ref.bytes} bytes hash to ${actual}, the log says ${ref.hash}`);
  return bytes;
}

/** What reading needs of a blob store: verified bytes by hash (MissingBlobError, CorruptBlobError). */
export interface BlobSource {
  get(hash: string): Promise<Uint8Array>;
}

/**
 * Reads tensors of one checkpoint (or a few): each pack blob is fetched once and kept for the
 * life of this reader, so make one per read, not one per process.
 */
export class PackReader {
  private readonly packs = new Map<string, Promise<Uint8Array>>();
  constructor(private readonly blobs: BlobSource) {}

  /** The tensor's bytes, verified: MissingBlobError, CorruptBlobError, UnreadableBlobError, and
   * for a packed tensor MissingPackError / CorruptPackedTensorError naming the tensor and its pack. */
  async read(ref: TensorRef): Promise<Uint8Array> {
    if (!ref.pack) return this.blobs.get(ref.hash);
    let pack = this.packs.get(ref.pack.hash);
    if (!pack) {
      pack = this.blobs.get(ref.pack.hash);
      pack.catch(() => {}); // observed by every read() awaiting it
      this.packs.set(ref.pack.hash, pack);
    }
    let bytes: Uint8Array;
    try {
      bytes = await pack;
    } catch (err) {
      throw namingTensor(err, { ...ref, pack: ref.pack });
    }
    return slicePack(ref, bytes);
  }
}

/** A ref without where its bytes are stored: what a tensor is, the same however it is stored. */
export function withoutPack(ref: TensorRef): TensorRef {
  if (!ref.pack) return ref;
  const { pack: _pack, ...rest } = ref;
  void _pack;
  return rest;
}

/** One blob's check as fsck makes it: its verified bytes, or why it has none. */
export interface BlobCheckResult {
  ok: boolean;
  message: string | null;
  bytes: Uint8Array | null;
}

/**
 * fsck's check of a packed tensor from the check of its pack blob: the tensor's verified bytes,
 * or a message naming the pack and what is wrong (pack missing or damaged, slice out of the pack,
 * slice hashing to something else than the tensor's hash).
 */
export function checkPackedTensor(ref: TensorRef, pack: BlobCheckResult): BlobCheckResult {
  if (!ref.pack) throw new TypeError(`tensor ${ref.name} is not packed`);
  if (!pack.ok || !pack.bytes) return { ok: false, message: `its pack: ${pack.message ?? `blob ${ref.pack.hash} cannot be read`}`, bytes: null };
  try {
    return { ok: true, message: null, bytes: slicePack(ref, pack.bytes) };
  } catch (err) {
    if (err instanceof CorruptPackedTensorError) return { ok: false, message: err.message.replace(/; run `retrace fsck`$/, ''), bytes: null };
    throw err;
  }
}
