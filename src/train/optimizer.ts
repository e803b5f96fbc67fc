// Optimizers with their COMPLETE state captured and restored, keyed by canonical variable name.
//
// Facts about tfjs-core 4.22 optimizers this relies on (see tfjs-core/dist/optimizers/*.js):
// - Slot variables are arrays indexed by the POSITION of a variable in the list given to
//   applyGradients (i.e. minimize's varList), created lazily as zeros on first use.
// - Adam keeps accBeta1/accBeta2 as tf.Variables multiplied by beta once per step; its
//   setWeights() recomputes them as pow(beta, iterations + 1), which is not bit-identical to the
//   running product, so getWeights()/setWeights() cannot resume bit-exactly.
// - SGD and Momentum cache -learningRate in a kept scalar `c`; only setLearningRate() refreshes
//   it. Adam and RMSProp read the JS number `learningRate` on every step.
// - `iterations_` is a JS number; no update rule of these four reads it, but we keep it exact.
import * as tf from '@tensorflow/tfjs';
import type { OPTIMIZERS } from '../config.js';
import type { Tf, TensorBytes } from './types.js';
import { bytesToTensor, tensorToBytes } from './weights.js';

export type OptimizerName = (typeof OPTIMIZERS)[number];

/** What restoreOptimizerState did. */
export interface OptimizerRestoreOutcome {
  /** False when the optimizer starts fresh (no state, or state of another optimizer kind). */
  readonly restored: boolean;
  /** Why it starts fresh, or null when restored. */
  readonly reason: string | null;
  /** Trainable variables without saved slots: they start from zero slots. */
  readonly missingSlots: string[];
  /** Saved slots of variables that are not trainable now (e.g. frozen in a branch): dropped. */
  readonly droppedSlots: string[];
}

interface OptimizerVariable {
  originalName: string;
  variable: tf.Variable;
}

interface SgdInternals {
  learningRate: number;
  c?: tf.Scalar;
  iterations_?: number;
  setLearningRate(lr: number): void;
}
interface MomentumInternals extends SgdInternals {
  m?: tf.Scalar;
  accumulations: OptimizerVariable[];
}
interface AdamInternals {
  learningRate: number;
  iterations_?: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: OptimizerVariable[];
  accumulatedSecondMoment: OptimizerVariable[];
}
interface RmspropInternals {
  learningRate: number;
  iterations_?: number;
  centered: boolean;
  accumulatedMeanSquares: OptimizerVariable[];
  accumulatedMoments: OptimizerVariable[];
  accumulatedMeanGrads: OptimizerVariable[];
}

/** Slot arrays per kind: state-entry slot name → optimizer field. */
const SLOTS: Record<OptimizerName, ReadonlyArray<readonly [string, string]>> = {
  sgd: [],
  momentum: [['momentum', 'accumulations']],
  adam: [
    ['m', 'accumulatedFirstMoment'],
    ['v', 'accumulatedSecondMoment'],
  ],
  rmsprop: [
    ['rms', 'accumulatedMeanSquares'],
    ['momentum', 'accumulatedMoments'],
    ['mg', 'accumulatedMeanGrads'],
  ],
};

const CLASS_TO_KIND: Record<string, OptimizerName> = {
  SGD: 'sgd',
  Momentum: 'momentum',
  Adam: 'adam',
  RMSProp: 'rmsprop',
};

/** One of our four kinds, from the optimizer's tfjs class name. */
export function optimizerKind(opt: tf.Optimizer): OptimizerName {
  const kind = CLASS_TO_KIND[opt.getClassName()];
  if (!kind) throw new Error(`unsupported optimizer class ${opt.getClassName()}; retrace supports sgd, momentum, adam, rmsprop`);
  return kind;
}

/**
 * A new optimizer. Adam and RMSProp use tfjs defaults (beta1 0.9, beta2 0.999; decay 0.9,
 * momentum 0) and the backend epsilon; `momentum` only applies to 'momentum'.
 * Call outside tf.tidy (Momentum's scalar `m` is not kept by tfjs).
 */
export function createOptimizer(tfx: Tf, name: OptimizerName, lr: number, momentum: number): tf.Optimizer {
  switch (name) {
    case 'sgd':
      return tfx.train.sgd(lr);
    case 'momentum':
      return tfx.train.momentum(lr, momentum);
    case 'adam':
      return tfx.train.adam(lr);
    case 'rmsprop':
      return tfx.train.rmsprop(lr);
    default:
      throw new Error(`unknown optimizer "${String(name)}"`);
  }
}

/** Sets the learning rate so the next step uses it. A no-op when unchanged (no scalar churn). */
export function setLearningRate(opt: tf.Optimizer, lr: number): void {
  const kind = optimizerKind(opt);
  if (kind === 'sgd' || kind === 'momentum') {
    const o = opt as unknown as SgdInternals;
    if (o.learningRate === lr && o.c && !o.c.isDisposed) return;
    o.setLearningRate(lr); // disposes the cached -lr scalar and keeps a new one
  } else {
    (opt as unknown as { learningRate: number }).learningRate = lr;
  }
}

/** The learning rate the optimizer will use next. */
export function getLearningRate(opt: tf.Optimizer): number {
  return (opt as unknown as { learningRate: number }).learningRate;
}

/** Disposes an optimizer and everything tfjs forgets to (Momentum's cached `c`). */
export function disposeOptimizer(opt: tf.Optimizer): void {
  const kind = optimizerKind(opt);
  opt.dispose();
  if (kind === 'momentum') {
    const c = (opt as unknown as SgdInternals).c;
    if (c && !c.isDisposed) c.dispose();
  }
}

function scalarEntry(name: string, value: number, dtype: 'float32' | 'int32'): TensorBytes {
  const data = dtype === 'int32' ? new Int32Array([value]) : new Float32Array([value]);
  const bytes = new Uint8Array(4);
  bytes.set(new Uint8Array(data.buffer));
  // Little-endian per the TensorBytes contract (typed arrays are platform-endian).
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 0) bytes.reverse();
  return { name, shape: [], dtype, bytes };
}

function slotArrays(opt: tf.Optimizer, kind: OptimizerName): Array<{ slot: string; field: string; list: OptimizerVariable[] }> {
  const o = opt as unknown as Record<string, OptimizerVariable[] | undefined>;
  const centered = kind === 'rmsprop' && (opt as unknown as RmspropInternals).centered;
  return SLOTS[kind]
    .filter(([slot]) => !(kind === 'rmsprop' && slot === 'mg' && !centered))
    .map(([slot, field]) => {
      if (!Array.isArray(o[field])) o[field] = [];
      return { slot, field, list: o[field]! };
    });
}

/**
 * The optimizer's full state. `variableNames` are the canonical names of the variables in the
 * order they are passed to minimize (the trainable var list): slot i belongs to variableNames[i].
 * Entry names: "<kind>/iterations", "adam/accBeta1", "adam/accBeta2", "<kind>/<slot>/<variable>".
 */
export function captureOptimizerState(opt: tf.Optimizer, variableNames: readonly string[]): TensorBytes[] {
  const kind = optimizerKind(opt);
  const state: TensorBytes[] = [];
  const iterations = (opt as unknown as { iterations_?: number }).iterations_ ?? 0;
  state.push(scalarEntry(`${kind}/iterations`, iterations, 'int32'));
  if (kind === 'adam') {
    const a = opt as unknown as AdamInternals;
    state.push(tensorToBytes('adam/accBeta1', a.accBeta1));
    state.push(tensorToBytes('adam/accBeta2', a.accBeta2));
  }
  for (const { slot, list } of slotArrays(opt, kind)) {
    if (list.length > variableNames.length) {
      throw new Error(`optimizer has ${list.length} ${slot} slots but only ${variableNames.length} variable names were given`);
    }
    list.forEach((entry, i) => {
      if (entry == null) return;
      state.push(tensorToBytes(`${kind}/${slot}/${variableNames[i]!}`, entry.variable));
    });
  }
  return state;
}

function readScalar(entry: TensorBytes): number {
  const t = bytesToTensor(entry);
  try {
    return t.dataSync()[0]!;
  } finally {
    t.dispose();
  }
}

/** The optimizer kind a captured state belongs to, or null for an empty state. */
export function optimizerStateKind(state: readonly TensorBytes[]): OptimizerName | null {
  const first = state[0];
  if (!first) return null;
  const kind = first.name.split('/')[0] as OptimizerName;
  return kind in SLOTS ? kind : null;
}

/**
 * Restores state captured by captureOptimizerState into a freshly created optimizer.
 * `trainableVariableNames` is the var list order the optimizer will be used with; slots are
 * matched by variable name, so a session that trains fewer variables (a frozen layer) keeps the
 * slots of the others. State of another optimizer kind leaves the optimizer fresh.
 */
export function restoreOptimizerState(
  opt: tf.Optimizer,
  state: readonly TensorBytes[],
  trainableVariableNames: readonly string[],
): OptimizerRestoreOutcome {
  const kind = optimizerKind(opt);
  const fresh = (reason: string): OptimizerRestoreOutcome => ({ restored: false, reason, missingSlots: [], droppedSlots: [] });
  if (state.length === 0) return fresh('no optimizer state to restore');
  const stateKind = optimizerStateKind(state);
  if (stateKind !== kind) {
    return fresh(`optimizer state is for ${stateKind ?? 'an unknown optimizer'}, this run uses ${kind}: starting it fresh`);
  }
  const byName = new Map(state.map((e) => [e.name, e] as const));
  const iterationsEntry = byName.get(`${kind}/iterations`);
  if (!iterationsEntry) throw new Error(`optimizer state has no "${kind}/iterations" entry`);

  const slots = slotArrays(opt, kind);
  const position = new Map(trainableVariableNames.map((n, i) => [n, i] as const));
  const knownSlots = new Set(slots.map((s) => s.slot));
  const dropped = new Set<string>();
  for (const e of state) {
    const parts = e.name.split('/');
    if (parts.length < 3) continue;
    const slot = parts[1]!;
    const variable = parts.slice(2).join('/');
    if (!knownSlots.has(slot)) throw new Error(`optimizer state entry "${e.name}" is not a ${kind} slot`);
    if (!position.has(variable)) dropped.add(variable);
  }

  // Build everything first so a bad entry leaves the optimizer untouched.
  const built: Array<{ list: OptimizerVariable[]; index: number; value: OptimizerVariable }> = [];
  const missing = new Set<string>();
  try {
    for (const { slot, list } of slots) {
      trainableVariableNames.forEach((variableName, index) => {
        const entry = byName.get(`${kind}/${slot}/${variableName}`);
        if (!entry) {
          missing.add(variableName);
          return;
        }
        const t = bytesToTensor(entry);
        const variable = tf.variable(t, false);
        t.dispose();
        built.push({ list, index, value: { originalName: `${variableName}/${slot}`, variable } });
      });
    }
  } catch (error) {
    for (const b of built) b.value.variable.dispose();
    throw error;
  }

  // Replace whatever the optimizer had (a fresh one has nothing).
  for (const { list } of slots) {
    for (const old of list) old?.variable.dispose();
    list.length = 0;
  }
  for (const b of built) b.list[b.index] = b.value;
  (opt as unknown as { iterations_?: number }).iterations_ = readScalar(iterationsEntry);
  if (kind === 'adam') {
    const a = opt as unknown as AdamInternals;
    for (const key of ['accBeta1', 'accBeta2'] as const) {
      const entry = byName.get(`adam/${key}`);
      if (!entry) throw new Error(`optimizer state has no "adam/${key}" entry`);
      const t = bytesToTensor(entry);
      a[key].assign(t as tf.Scalar);
      t.dispose();
    }
  }
  return { restored: true, reason: null, missingSlots: [...missing], droppedSlots: [...dropped] };
}
