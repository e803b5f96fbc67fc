// Checkpoint bytes ↔ content-addressed blobs. Each large tensor is one blob named by the SHA-256 of
// its bytes, so a tensor that did not change (a frozen layer, a branch's shared history) costs
// nothing; the small ones of a checkpoint share one pack blob (src/log/packs.ts).
import { createHash } from 'node:crypto';
import type { BlobIntent } from '../storage/types.js';
import { sha256HexAsync, type BlobStore } from '../log/blobs.js';
import type { TensorRef } from '../log/events.js';
import { buildPack, PackReader, type BlobSource } from '../log/packs.js';
import type { TensorBytes, TrainerState } from '../train/types.js';
import { weightsHashOfBytesAsync } from '../train/weights-hash.js';

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function describeTensors(tensors: readonly TensorBytes[]): TensorRef[] {
  return tensors.map((t) => ({ name: t.name, shape: [...t.shape], dtype: t.dtype, hash: sha256(t.bytes), bytes: t.bytes.byteLength }));
}

/** The weightsHash of a trainer state's weights (weights-hash.ts); the name benchmarks import. */
export function hashWeightsAsync(weights: readonly TensorBytes[]): Promise<string> {
  return weightsHashOfBytesAsync(weights.map((w) => w.bytes));
}

/** Writes the tensors (durably, before the event that names them) and returns their refs, in
 * input order. Tensors below PACK_THRESHOLD go into one pack blob (packs.ts), the others are one
 * blob each. `intent`: the writer's intent for that event (BlobStore.intent), released once it is
 * durable. One group commit (BlobStore.putMany): the temp files are written while the tensors are
 * hashed, once each, one after the other in slices; then all are made durable together. */
export async function persistTensors(blobs: BlobStore, tensors: readonly TensorBytes[], intent?: BlobIntent): Promise<TensorRef[]> {
  const hashes: Array<Promise<string>> = [];
  let previous: Promise<unknown> = Promise.resolve();
  const hashInTurn = (parts: Uint8Array[]): Promise<string> => {
    const next = previous.then(() => sha256HexAsync(parts));
    previous = next.catch(() => {});
    return next;
  };
  for (const t of tensors) hashes.push(hashInTurn([t.bytes]));
  const { pack, offsets } = buildPack(tensors.map((t) => t.bytes));
  const alone = tensors.map((_, i) => i).filter((i) => offsets[i] === null);
  const packHash = pack ? hashInTurn([pack]) : null;
  const items = [...(pack ? [pack] : []), ...alone.map((i) => tensors[i]!.bytes)];
  const names = await blobs.putMany(items, [...(packHash ? [packHash] : []), ...alone.map((i) => hashes[i]!)], intent);
  const tensorHashes = await Promise.all(hashes);
  const packName = pack ? names[0]! : null;
  return tensors.map((t, i) => {
    const offset = offsets[i];
    const ref: TensorRef = { name: t.name, shape: [...t.shape], dtype: t.dtype, hash: tensorHashes[i]!, bytes: t.bytes.byteLength };
    if (offset !== null && offset !== undefined) ref.pack = { hash: packName!, offset };
    return ref;
  });
}

/** The tensors `refs` name, read and verified (packed ones from their pack, fetched once). */
export async function loadTensors(blobs: BlobSource, refs: readonly TensorRef[], reader = new PackReader(blobs)): Promise<TensorBytes[]> {
  return Promise.all(refs.map(async (ref) => ({ name: ref.name, shape: [...ref.shape], dtype: ref.dtype, bytes: await reader.read(ref) })));
}

export async function loadTrainerState(
  blobs: BlobSource,
  refs: { weights: readonly TensorRef[]; optimizer: readonly TensorRef[] },
): Promise<TrainerState> {
  const reader = new PackReader(blobs);
  const [weights, optimizer] = await Promise.all([loadTensors(blobs, refs.weights, reader), loadTensors(blobs, refs.optimizer, reader)]);
  return { weights, optimizer };
}

/**
 * Writes a trainer state's tensors as blobs (durable when this resolves, named by `intent` until
 * the caller's event is durable) and returns the refs and the weightsHash an event records: a
 * checkpoint's, or run.created's start state.
 */
export async function persistTrainerState(
  blobs: BlobStore,
  state: TrainerState,
  intent?: BlobIntent,
): Promise<{ weightsHash: string; weights: TensorRef[]; optimizer: TensorRef[] }> {
  // One call: the small tensors of weights and optimizer slots share one pack.
  const [weightsHash, refs] = await Promise.all([hashWeightsAsync(state.weights), persistTensors(blobs, [...state.weights, ...state.optimizer], intent)]);
  return { weightsHash, weights: refs.slice(0, state.weights.length), optimizer: refs.slice(state.weights.length) };
}
