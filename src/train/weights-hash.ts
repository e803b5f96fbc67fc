// The public weightsHash, defined once: SHA-256 (lowercase hex) of the weights' little-endian
// bytes concatenated in canonical order (weights.ts). Checkpoints, snapshots, run.created's start
// state, exports and replays all record this value, and fsck recomputes it from the blobs, so
// every writer and checker calls these two functions rather than hashing bytes itself: a second
// definition that drifted would make old logs fail to verify. No tfjs here: the store's checks use it.
import { createHash } from 'node:crypto';
import { sha256HexAsync } from '../log/blobs.js';

/**
 * The weightsHash of `weights`: each entry one weight's bytes (little-endian, as TensorBytes and
 * weight blobs hold them), in canonical order. Returns 64 lowercase hex digits.
 */
export function weightsHashOfBytes(weights: Iterable<Uint8Array>): string {
  const hash = createHash('sha256');
  for (const bytes of weights) hash.update(bytes);
  return hash.digest('hex');
}

/**
 * The same value as weightsHashOfBytes, hashed in slices with yields to the event loop (see
 * sha256HexAsync), for a checkpoint whose blob writes run alongside.
 */
export function weightsHashOfBytesAsync(weights: readonly Uint8Array[]): Promise<string> {
  return sha256HexAsync(weights);
}
