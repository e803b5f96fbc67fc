// The two sides of the step-overhead comparison: retrace's train() with full event logging, and the
// fastest honest bare tfjs loop over the same model, data, batch size, optimizer and backend.
import type * as tfTypes from '@tensorflow/tfjs';
import { train } from '../../src/run/train.js';
import { Store } from '../../src/log/store.js';
import type { ConfigInput } from '../../src/config.js';
import { buildFromFactory, buildModel, type ModelFactory } from '../../src/train/models.js';
import type { Dataset, Tf } from '../../src/train/types.js';
import { cpuMs, gc } from './common.js';

export interface Throughput {
  /** Steady-state optimizer steps per second (warm-up steps excluded). */
  stepsPerSec: number;
  /** CPU time (all threads) per step over the same window, ms. */
  cpuMsPerStep: number;
  steps: number;
}

/** The tiny model where per-step overhead dominates: iris 4→8→3. */
export const tinyModel: ModelFactory = ({ tf, inputShape, numClasses }) =>
  tf.sequential({
    name: 'tiny',
    layers: [tf.layers.dense({ inputShape, units: 8, activation: 'relu', name: 'hidden' }), tf.layers.dense({ units: numClasses, activation: 'softmax', name: 'out' })],
  });

export interface ModelCase {
  /** 'mlp' | 'cnn' (built-in) or a factory. */
  spec: 'mlp' | 'cnn' | ModelFactory;
  dataset: Dataset;
  datasetName: string;
  batchSize: number;
}

async function build(tf: Tf, c: ModelCase, seed: number): Promise<tfTypes.LayersModel> {
  const opts = { tf, inputShape: c.dataset.inputShape, numClasses: c.dataset.numClasses, seed };
  return typeof c.spec === 'string' ? (await buildModel(c.spec, opts)).model : (await buildFromFactory(c.spec, opts, 'bench model')).model;
}

/**
 * The bare loop: batches are contiguous rows of the split's typed arrays (no tensor slicing), one
 * optimizer.minimize(loss, true, varList) in tf.tidy per step, and the loss read back with dataSync
 * (retrace reads every loss too). Same loss formula as retrace's session (clipped cross-entropy).
 */
export async function bareLoop(tf: Tf, c: ModelCase, steps: number, warmup: number): Promise<Throughput> {
  const model = await build(tf, c, 42);
  const optimizer = tf.train.adam(0.001);
  const { train: split, inputShape, numClasses } = c.dataset;
  const B = c.batchSize;
  const F = inputShape.reduce((a, b) => a * b, 1);
  const oneHot = new Float32Array(split.size * numClasses);
  for (let i = 0; i < split.size; i++) oneHot[i * numClasses + split.y[i]!] = 1;
  const varList = model.trainableWeights.map((w) => w.read() as tfTypes.Variable);
  const batches = Math.floor(split.size / B);
  const shape = [B, ...inputShape];
  const loss = (xs: tfTypes.Tensor, ys: tfTypes.Tensor): tfTypes.Scalar => {
    const probs = model.apply(xs, { training: true }) as tfTypes.Tensor;
    return tf.div(tf.sum(tf.mul(ys, tf.log(tf.clipByValue(probs, 1e-7, 1 - 1e-7)))), -B) as tfTypes.Scalar;
  };
  gc();
  let t0 = 0;
  let c0 = 0;
  let sink = 0;
  for (let s = 0; s < warmup + steps; s++) {
    if (s === warmup) {
      t0 = performance.now();
      c0 = cpuMs();
    }
    const b = s % batches;
    sink += tf.tidy(() => {
      const xs = tf.tensor(split.x.subarray(b * B * F, (b + 1) * B * F), shape, 'float32');
      const ys = tf.tensor2d(oneHot.subarray(b * B * numClasses, (b + 1) * B * numClasses), [B, numClasses], 'float32');
      const cost = optimizer.minimize(() => loss(xs, ys), true, varList);
      return cost!.dataSync()[0]!;
    });
  }
  const ms = performance.now() - t0;
  const cpu = cpuMs() - c0;
  if (!Number.isFinite(sink)) throw new Error('bare loop diverged');
  optimizer.dispose();
  model.dispose();
  return { stepsPerSec: (steps * 1000) / ms, cpuMsPerStep: cpu / steps, steps };
}

/**
 * retrace's train() for warmup + steps steps in one virtual epoch (initial evaluation and checkpoint,
 * then the steps, then the final evaluation and checkpoint). The window is timed from the
 * warmup-th step.finished record to the last one, as delivered by onRecord, so it covers the steady
 * state: every step's machine transition, event encoding, buffered LevelDB append and flushes.
 */
export async function retraceTrain(
  store: Store,
  runId: string,
  c: ModelCase,
  backend: 'wasm' | 'cpu',
  steps: number,
  warmup: number,
  extra: ConfigInput = {},
): Promise<Throughput & { totalMs: number }> {
  const total = warmup + steps;
  let t0 = 0;
  let c0 = 0;
  let t1 = 0;
  let c1 = 0;
  let seen = 0;
  gc();
  const start = performance.now();
  await train({
    store,
    model: typeof c.spec === 'string' ? undefined : c.spec,
    dataset: c.dataset,
    config: {
      runId,
      dataset: c.datasetName,
      model: typeof c.spec === 'string' ? c.spec : 'module:bench',
      backend,
      batchSize: c.batchSize,
      checkpoints: 1,
      stopPoint: 1,
      trainingExamples: total * c.batchSize,
      ...extra,
    },
    onRecord: (r) => {
      if (r.type !== 'step.finished') return;
      seen++;
      if (seen === warmup) {
        t0 = performance.now();
        c0 = cpuMs();
      } else if (seen === total) {
        t1 = performance.now();
        c1 = cpuMs();
      }
    },
  });
  const totalMs = performance.now() - start;
  if (seen !== total) throw new Error(`retrace run ${runId} did ${seen} steps, expected ${total}`);
  return { stepsPerSec: (steps * 1000) / (t1 - t0), cpuMsPerStep: (c1 - c0) / steps, steps, totalMs };
}

/** One bare training step, set up once: the same loop as bareLoop, one step per call. */
export async function bareStepper(tf: Tf, c: ModelCase): Promise<{ step: () => number; dispose: () => void }> {
  const model = await build(tf, c, 7);
  const optimizer = tf.train.adam(0.001);
  const { train: split, inputShape, numClasses } = c.dataset;
  const B = c.batchSize;
  const F = inputShape.reduce((a, b) => a * b, 1);
  const oneHot = new Float32Array(split.size * numClasses);
  for (let i = 0; i < split.size; i++) oneHot[i * numClasses + split.y[i]!] = 1;
  const varList = model.trainableWeights.map((w) => w.read() as tfTypes.Variable);
  const batches = Math.floor(split.size / B);
  const shape = [B, ...inputShape];
  const loss = (xs: tfTypes.Tensor, ys: tfTypes.Tensor): tfTypes.Scalar => {
    const probs = model.apply(xs, { training: true }) as tfTypes.Tensor;
    return tf.div(tf.sum(tf.mul(ys, tf.log(tf.clipByValue(probs, 1e-7, 1 - 1e-7)))), -B) as tfTypes.Scalar;
  };
  let s = 0;
  return {
    step: () => {
      const b = s++ % batches;
      return tf.tidy(() => {
        const xs = tf.tensor(split.x.subarray(b * B * F, (b + 1) * B * F), shape, 'float32');
        const ys = tf.tensor2d(oneHot.subarray(b * B * numClasses, (b + 1) * B * numClasses), [B, numClasses], 'float32');
        const cost = optimizer.minimize(() => loss(xs, ys), true, varList);
        return cost!.dataSync()[0]!;
      });
    },
    dispose: () => {
      optimizer.dispose();
      model.dispose();
    },
  };
}

export interface Interleaved {
  /** (Σ bare step time ÷ bare steps) ÷ (Σ retrace step time ÷ retrace steps) over the window (1 = no overhead). */
  ratio: number;
  /** Median over blocks of (bare block ÷ the retrace block just before it), per step. */
  medianPairRatio: number;
  bareStepsPerSec: number;
  retraceStepsPerSec: number;
  steps: number;
  block: number;
}

/**
 * Interleaving in blocks: retrace's train() runs, and after every `block` of its steps (on the
 * step.finished record, inside onRecord, synchronously) the bare loop takes `block` steps of its
 * own model. Retrace's time is everything between the end of one bare block and the record that
 * ends its next block; the bare block's time is its own. Both sides see the same seconds of the
 * machine's load, so bursts of other work cancel out of the ratio instead of landing on one
 * side; blocks (rather than single steps) keep each side's code and data warm in the caches as a
 * real training loop's are.
 */
export async function interleaved(
  store: Store,
  runId: string,
  c: ModelCase,
  backend: 'wasm' | 'cpu',
  tf: Tf,
  steps: number,
  warmup: number,
  block = 8,
): Promise<Interleaved> {
  const bare = await bareStepper(tf, c);
  const blocks = Math.max(1, Math.floor(steps / block));
  const total = warmup + blocks * block;
  const retraceBlocks: number[] = [];
  const bareBlocks: number[] = [];
  let resumeAt = 0;
  let seen = 0;
  gc();
  try {
    await train({
      store,
      model: typeof c.spec === 'string' ? undefined : c.spec,
      dataset: c.dataset,
      config: {
        runId,
        dataset: c.datasetName,
        model: typeof c.spec === 'string' ? c.spec : 'module:bench',
        backend,
        batchSize: c.batchSize,
        checkpoints: 1,
        stopPoint: 1,
        trainingExamples: total * c.batchSize,
      },
      onRecord: (r) => {
        if (r.type !== 'step.finished') return;
        seen++;
        if (seen < warmup || (seen - warmup) % block !== 0) return;
        const t0 = performance.now();
        if (seen > warmup) retraceBlocks.push(t0 - resumeAt);
        if (seen < total) {
          for (let i = 0; i < block; i++) bare.step();
          bareBlocks.push(performance.now() - t0);
        }
        resumeAt = performance.now();
      },
    });
  } finally {
    bare.dispose();
  }
  const n = Math.min(bareBlocks.length, retraceBlocks.length);
  const sum = (xs: number[]) => xs.slice(0, n).reduce((a, b) => a + b, 0);
  const pairs = Array.from({ length: n }, (_, i) => bareBlocks[i]! / retraceBlocks[i]!).sort((a, b) => a - b);
  return {
    ratio: sum(bareBlocks) / sum(retraceBlocks),
    medianPairRatio: pairs[n >> 1]!,
    bareStepsPerSec: (n * block * 1000) / sum(bareBlocks),
    retraceStepsPerSec: (n * block * 1000) / sum(retraceBlocks),
    steps: n * block,
    block,
  };
}
