// Checkpoint bytes ↔ content-addressed blobs. Each tensor is one blob named by the SHA-256 of its
// bytes, so a tensor that did not change (a frozen layer, a branch's shared history) costs nothing.
import { createHash } from 'node:crypto';
import type { BlobStore } from '../log/blobs.js';
import type { TensorRef } from '../log/events.js';
import type { TensorBytes, TrainerState } from '../train/types.js';

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The public weightsHash: SHA-256 of the concatenated float32 bytes in canonical order. */
export function hashWeights(weights: readonly TensorBytes[]): string {
  const h = createHash('sha256');
  for (const w of weights) h.update(w.bytes);
  return h.digest('hex');
}

export function describeTensors(tensors: readonly TensorBytes[]): TensorRef[] {
  return tensors.map((t) => ({ name: t.name, shape: [...t.shape], dtype: t.dtype, hash: sha256(t.bytes), bytes: t.bytes.byteLength }));
}

/** Writes every tensor's blob (durably, before the event that names them) and returns the refs. */
export async function persistTensors(blobs: BlobStore, tensors: readonly TensorBytes[]): Promise<TensorRef[]> {
  const refs = describeTensors(tensors);
  await Promise.all(tensors.map((t) => blobs.put(t.bytes)));
  return refs;
}

export async function loadTensors(blobs: BlobStore, refs: readonly TensorRef[]): Promise<TensorBytes[]> {
  return Promise.all(
    refs.map(async (ref) => ({ name: ref.name, shape: [...ref.shape], dtype: ref.dtype, bytes: await blobs.get(ref.hash) })),
  );
}

export async function loadTrainerState(
  blobs: BlobStore,
  refs: { weights: readonly TensorRef[]; optimizer: readonly TensorRef[] },
): Promise<TrainerState> {
  const [weights, optimizer] = await Promise.all([loadTensors(blobs, refs.weights), loadTensors(blobs, refs.optimizer)]);
  return { weights, optimizer };
}
