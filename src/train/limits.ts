// What one training step of a batch needs in memory, checked before a run exists: a batch the
// backend cannot allocate used to fail at step 1 ("memory access out of bounds" on wasm for
// `--batch-size 1e8`) and leave a created run behind.
import type * as tfTypes from '@tensorflow/tfjs';
import { ConfigError } from '../config.js';
import type { BackendInfo } from './types.js';

const GiB = 2 ** 30;

/**
 * Bytes a step's batch may need, per backend. wasm's memory is one linear memory of at most 4 GiB
 * (tfjs-backend-wasm 4.22's heap maximum) holding weights, optimizer slots and every kernel's
 * temporaries as well, so a batch gets a quarter of it. cpu and tensorflow hold each tensor in a
 * typed array (at most 2^32 elements in Node 20); 4 GiB keeps a step well inside that.
 */
export const BATCH_MEMORY_LIMIT: Record<BackendInfo['name'], number> = { wasm: 1 * GiB, cpu: 4 * GiB, tensorflow: 4 * GiB };

/**
 * float32 values one example of a batch occupies in a step: its input, its one-hot target and
 * every layer's output, each once forward and once as a gradient.
 */
export function floatsPerExample(model: tfTypes.LayersModel, features: number, numClasses: number): number {
  let activations = 0;
  for (const layer of model.layers) {
    let shapes: unknown;
    try {
      shapes = layer.outputShape;
    } catch {
      continue; // a layer with no single output shape (not built yet): not counted
    }
    const list = Array.isArray(shapes) && Array.isArray(shapes[0]) ? (shapes as unknown[][]) : [shapes as unknown[]];
    for (const shape of list) {
      if (!Array.isArray(shape)) continue;
      activations += shape.slice(1).reduce<number>((a, d) => a * (typeof d === 'number' && d > 0 ? d : 1), 1);
    }
  }
  return features + numClasses + 2 * activations;
}

/**
 * Throws ConfigError naming `batchSize` and its largest allowed value when a step of `batchSize`
 * examples of `perExample` float32 values (bytes = batchSize × perExample × 4) would exceed the
 * backend's BATCH_MEMORY_LIMIT.
 */
export function checkBatchFits(batchSize: number, perExample: number, backend: BackendInfo['name']): void {
  const limit = BATCH_MEMORY_LIMIT[backend];
  const bytes = batchSize * perExample * 4;
  if (bytes <= limit) return;
  const max = Math.max(1, Math.floor(limit / (perExample * 4)));
  throw new ConfigError(
    `config field "batchSize": ${batchSize} examples need about ${formatBytes(bytes)} per step with this data and model, ` +
      `more than the ${backend} backend's ${formatBytes(limit)} batch limit; use --batch-size ${max} or less`,
  );
}

function formatBytes(n: number): string {
  if (n >= GiB) return `${(n / GiB).toFixed(n >= 10 * GiB ? 0 : 1)} GiB`;
  return `${(n / 2 ** 20).toFixed(0)} MiB`;
}
