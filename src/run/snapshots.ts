// Checkpoint bytes ↔ content-addressed blobs. Each tensor is one blob named by the SHA-256 of its
// bytes, so a tensor that did not change (a frozen layer, a branch's shared history) costs nothing.
import { createHash } from 'node:crypto';
import type { BlobIntent } from '../storage/types.js';
import { sha256HexAsync, type BlobStore } from '../log/blobs.js';
import type { TensorRef } from '../log/events.js';
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

/** Writes every tensor's blob (durably, before the event that names them) and returns the refs.
 * `intent`: the writer's intent for that event (BlobStore.intent), released once it is durable.
 * One group commit (BlobStore.putMany): the temp files are written while the tensors are hashed,
 * once each, one after the other in slices; then all are made durable together. */
export async function persistTensors(blobs: BlobStore, tensors: readonly TensorBytes[], intent?: BlobIntent): Promise<TensorRef[]> {
  const hashes: Array<Promise<string>> = [];
  let previous: Promise<unknown> = Promise.resolve();
  for (const t of tensors) {
    const next = previous.then(() => sha256HexAsync([t.bytes]));
    hashes.push(next);
    previous = next.catch(() => {});
  }
  const names = await blobs.putMany(
    tensors.map((t) => t.bytes),
    hashes,
    intent,
  );
  return tensors.map((t, i) => ({ name: t.name, shape: [...t.shape], dtype: t.dtype, hash: names[i]!, bytes: t.bytes.byteLength }));
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
  const [weightsHash, weights, optimizer] = await Promise.all([
    hashWeightsAsync(state.weights),
    persistTensors(blobs, state.weights, intent),
    persistTensors(blobs, state.optimizer, intent),
  ]);
  return { weightsHash, weights, optimizer };
}
