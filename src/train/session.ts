// A training session: one model + one optimizer + the data, stepping SYNCHRONOUSLY so that the
// seeded Math.random stream of a step cannot interleave with anything else. Each step is a pure
// function of (state, seed, step, examplesSeen, lr), which is what makes resume, replay and
// branching bit-exact.
import type * as tfTypes from '@tensorflow/tfjs';
import type { Config } from '../config.js';
import { buildFromFactory, buildModel, loadInitModel, ModelError, type ModelFactory } from './models.js';
import { checkBatchFits, floatsPerExample } from './limits.js';
import {
  captureOptimizerState,
  createOptimizer,
  disposeOptimizer,
  restoreOptimizerState,
  setLearningRate,
  type OptimizerRestoreOutcome,
} from './optimizer.js';
import { passOrder, withSeededMathRandom } from './random.js';
import type { BackendInfo, Dataset, EvalResult, StepResult, Tf, TrainerState } from './types.js';
import { canonicalVariables, readWeights, weightsFinite, weightsHash, writeWeights, type CanonicalVariable } from './weights.js';

export interface TrainingSession {
  readonly model: tfTypes.LayersModel;
  /** model.toJSON(null, false): the Keras-format topology. */
  readonly topology: unknown;
  /** Canonical names of all weights, in canonical order. */
  readonly variableNames: string[];
  /** Canonical names of the weights the optimizer updates (all but frozen layers), in order. */
  readonly trainableVariableNames: string[];
  /** SHA-256 of the module file for module:PATH models, else null. */
  readonly sourceHash: string | null;
  /** False when an async model factory built the model (initial weights not reproducible). */
  readonly deterministicInit: boolean;
  readonly backend: BackendInfo;
  readonly optimizer: tfTypes.Optimizer;
  /**
   * One SYNCHRONOUS training step on examples [examplesSeen, examplesSeen + batchSize) of the
   * infinite stream in which pass p visits the training split in passOrder(N, seed, p).
   * Loss = mean categorical cross-entropy (+ l2 × sum of squared kernels). Returns the float32 loss.
   */
  step(step: number, examplesSeen: number, lr: number): StepResult;
  /** Mean cross-entropy and accuracy over the whole validation split (no dropout, no l2 term). */
  evaluate(): EvalResult;
  /** Weights in canonical order and the full optimizer state. */
  capture(): TrainerState;
  /** Restores captured state; the optimizer is recreated, fresh when the state is of another kind. */
  restore(state: TrainerState): OptimizerRestoreOutcome;
  weightsHash(): string;
  weightsFinite(): boolean;
  dispose(): void;
}

export interface CreateSessionOptions {
  readonly tf: Tf;
  readonly backend: BackendInfo;
  readonly dataset: Dataset;
  readonly config: Config;
  /** A library caller's model factory; replaces config.model (and config.initFrom). */
  readonly modelFactory?: ModelFactory;
  /** Base for relative module:PATH and initFrom paths; defaults to process.cwd(). */
  readonly cwd?: string;
}

/** Probabilities are floored at this before the log (tfjs-layers clips at the same epsilon). */
const EPSILON = 1e-7;
const EVAL_CHUNK = 1024;
const KERNEL = /(^|\/|_)kernel$/;

function checkSplit(name: string, split: Dataset['train'], features: number, numClasses: number): void {
  if (split.x.length !== split.size * features) {
    throw new ModelError(`dataset ${name} split: x has ${split.x.length} values, expected ${split.size} × ${features}`);
  }
  if (split.y.length !== split.size) throw new ModelError(`dataset ${name} split: y has ${split.y.length} labels, expected ${split.size}`);
  for (let i = 0; i < split.y.length; i++) {
    const label = split.y[i]!;
    if (!(label >= 0 && label < numClasses)) throw new ModelError(`dataset ${name} split: label ${label} at example ${i} is outside [0, ${numClasses})`);
  }
}

export async function createSession(options: CreateSessionOptions): Promise<TrainingSession> {
  const { tf, backend, dataset, config } = options;
  const { inputShape, numClasses } = dataset;
  const features = inputShape.reduce((a, b) => a * b, 1);
  checkSplit('train', dataset.train, features, numClasses);
  checkSplit('val', dataset.val, features, numClasses);
  if (dataset.train.size === 0) throw new ModelError('the training split is empty');

  const buildOptions = { tf, inputShape, numClasses, seed: config.seed, cwd: options.cwd };
  const built = options.modelFactory
    ? await buildFromFactory(options.modelFactory, buildOptions, 'model factory')
    : config.initFrom != null
      ? await loadInitModel(tf, config.initFrom, buildOptions)
      : await buildModel(config.model, buildOptions);
  const model = built.model;

  try {
    // Freeze: trainable = false, and excluded from the var list given to minimize.
    const layerNames = model.layers.map((l) => l.name);
    for (const name of config.freeze) {
      const layer = model.layers.find((l) => l.name === name);
      if (!layer) throw new ModelError(`freeze: no layer named "${name}"; the model's layers are ${layerNames.map((n) => `"${n}"`).join(', ')}`);
      layer.trainable = false;
    }
    // Before the batch buffers are allocated, and before any run exists.
    checkBatchFits(config.batchSize, floatsPerExample(model, features, numClasses), backend.name);
    const all = canonicalVariables(model);
    const trainableIds = new Set(model.trainableWeights.map((w) => w.id));
    const trainable = all.filter((v) => trainableIds.has(v.layerVariable.id));
    if (trainable.length === 0) throw new ModelError(`freeze: no trainable weights left (frozen: ${config.freeze.join(', ') || 'none'})`);
    return makeSession(options, built, all, trainable, features);
  } catch (error) {
    model.dispose();
    throw error;
  }
}

function makeSession(
  options: CreateSessionOptions,
  built: { model: tfTypes.LayersModel; sourceHash: string | null; deterministicInit: boolean },
  all: CanonicalVariable[],
  trainable: CanonicalVariable[],
  features: number,
): TrainingSession {
  const { tf, backend, dataset, config } = options;
  const { model } = built;
  const { numClasses, inputShape } = dataset;
  const { seed, batchSize } = config;
  const train = dataset.train;
  const n = train.size;

  const variableNames = all.map((v) => v.name);
  const trainableVariableNames = trainable.map((v) => v.name);
  const varList = trainable.map((v) => v.variable);
  const kernels = config.l2 > 0 ? trainable.filter((v) => KERNEL.test(v.name)).map((v) => v.variable) : [];
  const l2 = config.l2;
  if (l2 > 0 && kernels.length === 0) throw new ModelError('l2 > 0 but the model has no trainable kernel weights');

  let optimizer = createOptimizer(tf, config.optimizer, config.lr, config.momentum);
  const topology = model.toJSON(null, false) as object;

  // Batch buffers, reused every step: rows gathered from the split's typed arrays.
  const batchShape = [batchSize, ...inputShape];
  const xBuf = new Float32Array(batchSize * features);
  // Targets hold -1/batchSize instead of 1, so sum(targets × log p) IS the mean cross-entropy:
  // one op (and its gradient) less per step than dividing afterwards.
  const yBuf = new Float32Array(batchSize * numClasses);
  const target = -1 / batchSize;
  const tx = train.x;
  const ty = train.y;

  // The two most recent pass orders (a batch can straddle two passes).
  const orders = new Map<number, Uint32Array>();
  const orderFor = (pass: number): Uint32Array => {
    let order = orders.get(pass);
    if (!order) {
      order = passOrder(n, seed, pass);
      if (orders.size >= 2) {
        const oldest = Math.min(...orders.keys());
        orders.delete(oldest);
      }
      orders.set(pass, order);
    }
    return order;
  };

  const fillBatch = (examplesSeen: number): void => {
    yBuf.fill(0);
    let pass = Math.floor(examplesSeen / n);
    let pos = examplesSeen - pass * n;
    let order = orderFor(pass);
    for (let j = 0; j < batchSize; j++) {
      if (pos === n) {
        pass += 1;
        pos = 0;
        order = orderFor(pass);
      }
      const idx = order[pos++]!;
      const from = idx * features;
      if (features >= 32) {
        xBuf.set(tx.subarray(from, from + features), j * features);
      } else {
        // Tiny rows: a plain loop beats allocating a subarray view per row.
        for (let f = 0, to = j * features; f < features; f++) xBuf[to + f] = tx[from + f]!;
      }
      yBuf[j * numClasses + ty[idx]!] = target;
    }
  };

  const loss = (xs: tfTypes.Tensor, ys: tfTypes.Tensor): tfTypes.Scalar => {
    const probs = model.apply(xs, { training: true }) as tfTypes.Tensor;
    // max(p, ε) guards log(0); probabilities never exceed 1, so no upper clip (its gradient
    // would cost five small ops per step where this costs two).
    const logp = tf.log(tf.maximum(probs, EPSILON));
    let total = tf.sum(tf.mul(ys, logp)) as tfTypes.Scalar;
    if (l2 > 0) {
      const squares = kernels.map((k) => tf.sum(tf.square(k)));
      const reg = squares.length === 1 ? squares[0]! : tf.addN(squares);
      total = tf.add(total, tf.mul(reg, l2));
    }
    return total;
  };

  let disposed = false;
  const live = (): void => {
    if (disposed) throw new Error('the training session is disposed');
  };

  const session: TrainingSession = {
    model,
    topology,
    variableNames,
    trainableVariableNames,
    sourceHash: built.sourceHash,
    deterministicInit: built.deterministicInit,
    backend,
    get optimizer() {
      return optimizer;
    },

    step(step: number, examplesSeen: number, lr: number): StepResult {
      live();
      if (!Number.isSafeInteger(step) || step < 0) throw new RangeError(`step must be a non-negative integer, got ${step}`);
      if (!Number.isSafeInteger(examplesSeen) || examplesSeen < 0) throw new RangeError(`examplesSeen must be a non-negative integer, got ${examplesSeen}`);
      if (!(lr > 0) || !Number.isFinite(lr)) throw new RangeError(`lr must be a positive finite number, got ${lr}`);
      fillBatch(examplesSeen);
      setLearningRate(optimizer, lr);
      const value = tf.tidy(() => {
        const xs = tf.tensor(xBuf, batchShape, 'float32');
        const ys = tf.tensor2d(yBuf, [batchSize, numClasses], 'float32');
        const cost = withSeededMathRandom(seed, ['step', step], () => optimizer.minimize(() => loss(xs, ys), true, varList));
        return cost!.dataSync()[0]!;
      });
      return { loss: value };
    },

    evaluate(): EvalResult {
      live();
      const val = dataset.val;
      if (val.size === 0) return { valLoss: Number.NaN, valAccuracy: Number.NaN };
      let lossSum = 0;
      let correct = 0;
      withSeededMathRandom(seed, ['eval'], () => {
        for (let start = 0; start < val.size; start += EVAL_CHUNK) {
          const count = Math.min(EVAL_CHUNK, val.size - start);
          const sums = tf.tidy(() => {
            const xs = tf.tensor(val.x.subarray(start * features, (start + count) * features), [count, ...inputShape], 'float32');
            const labels = tf.tensor1d(val.y.subarray(start, start + count), 'int32');
            const probs = model.apply(xs, { training: false }) as tfTypes.Tensor2D;
            const logp = tf.log(tf.maximum(probs, EPSILON));
            const ce = tf.neg(tf.sum(tf.mul(tf.oneHot(labels, numClasses), logp)));
            const hits = tf.sum(tf.cast(tf.equal(tf.argMax(probs, 1), labels), 'float32'));
            return tf.stack([ce, hits]).dataSync();
          });
          lossSum += sums[0]!;
          correct += sums[1]!;
        }
      });
      return { valLoss: lossSum / val.size, valAccuracy: correct / val.size };
    },

    capture(): TrainerState {
      live();
      return { weights: readWeights(model), optimizer: captureOptimizerState(optimizer, trainableVariableNames) };
    },

    restore(state: TrainerState): OptimizerRestoreOutcome {
      live();
      writeWeights(model, state.weights);
      // A fresh optimizer, so nothing of the current state survives.
      const next = createOptimizer(tf, config.optimizer, config.lr, config.momentum);
      let outcome: OptimizerRestoreOutcome;
      try {
        outcome = restoreOptimizerState(next, state.optimizer, trainableVariableNames);
      } catch (error) {
        disposeOptimizer(next);
        throw error;
      }
      disposeOptimizer(optimizer);
      optimizer = next;
      return outcome;
    },

    weightsHash(): string {
      live();
      return weightsHash(model);
    },

    weightsFinite(): boolean {
      live();
      return weightsFinite(model);
    },

    dispose(): void {
      if (disposed) return;
      disposed = true;
      disposeOptimizer(optimizer);
      model.dispose();
    },
  };
  return session;
}
