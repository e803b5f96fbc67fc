// Model weights as bytes, in ONE canonical order used everywhere (capture, restore, hashing,
// optimizer slots): model.layers in order, each layer's weights in the order the layer created
// them. tfjs's own model.getWeights() puts trainable weights first, so its order changes when a
// layer is frozen; ours does not.
//
// A weight's canonical name is its LayerVariable.originalName ("<layer name>/<weight name>",
// e.g. "dense_hidden/kernel"): unlike the tf.Variable's name it carries no process-wide "_1"
// de-duplication suffix, and it is the name tfjs writes in a saved model's weightsManifest.
import { endianness } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import type { TensorBytes } from './types.js';
import { weightsHashOfBytes } from './weights-hash.js';

type LayersModel = tf.LayersModel;
type Layer = tf.layers.Layer;
type LayerVariable = tf.LayerVariable;

/** Weights do not fit a model: names missing or extra, or shapes/dtypes differ. One line. */
export class WeightsError extends Error {
  override name = 'WeightsError';
}

export interface CanonicalVariable {
  /** Canonical name: the LayerVariable's originalName ("layer/weight"). */
  readonly name: string;
  /** Name of the top-level layer (an entry of model.layers) the weight belongs to. */
  readonly layerName: string;
  readonly layerVariable: LayerVariable;
  /** The tf.Variable that optimizers update (layerVariable.read()). */
  readonly variable: tf.Variable;
  readonly shape: number[];
  readonly dtype: 'float32' | 'int32';
}

const BIG_ENDIAN = endianness() === 'BE';

/** Copies a typed array's bytes in little-endian order. */
function toLittleEndianBytes(data: Float32Array | Int32Array): Uint8Array {
  const bytes = new Uint8Array(data.byteLength);
  bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  if (BIG_ENDIAN) swap32(bytes);
  return bytes;
}

function swap32(bytes: Uint8Array): void {
  for (let i = 0; i + 3 < bytes.length; i += 4) {
    const a = bytes[i]!;
    const b = bytes[i + 1]!;
    bytes[i] = bytes[i + 3]!;
    bytes[i + 1] = bytes[i + 2]!;
    bytes[i + 2] = b;
    bytes[i + 3] = a;
  }
}

/** Decodes little-endian bytes into a fresh, aligned typed array. */
export function bytesToTypedArray(bytes: Uint8Array, dtype: 'float32' | 'int32'): Float32Array | Int32Array {
  if (bytes.byteLength % 4 !== 0) throw new WeightsError(`tensor byte length ${bytes.byteLength} is not a multiple of 4`);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  if (BIG_ENDIAN) swap32(copy);
  return dtype === 'int32' ? new Int32Array(copy.buffer) : new Float32Array(copy.buffer);
}

/** A tensor's current value as TensorBytes (a copy: later updates do not show through). */
export function tensorToBytes(name: string, tensor: tf.Tensor): TensorBytes {
  const dtype = tensor.dtype;
  if (dtype !== 'float32' && dtype !== 'int32') throw new WeightsError(`tensor "${name}" has unsupported dtype ${dtype}`);
  const data = tensor.dataSync() as Float32Array | Int32Array;
  return { name, shape: tensor.shape.slice(), dtype, bytes: toLittleEndianBytes(data) };
}

/** A new tensor holding TensorBytes' value (the caller owns and disposes it). */
export function bytesToTensor(entry: TensorBytes): tf.Tensor {
  const size = entry.shape.reduce((a, b) => a * b, 1);
  if (entry.bytes.byteLength !== size * 4) {
    throw new WeightsError(`tensor "${entry.name}": ${entry.bytes.byteLength} bytes do not fit shape [${entry.shape.join(',')}]`);
  }
  return tf.tensor(bytesToTypedArray(entry.bytes, entry.dtype), entry.shape, entry.dtype);
}

interface LayerInternals {
  readonly _trainableWeights?: LayerVariable[];
  readonly _nonTrainableWeights?: LayerVariable[];
  readonly layers?: Layer[];
}

/** A leaf layer's weights in creation order, whatever its trainable flags. */
function leafWeights(layer: Layer): LayerVariable[] {
  const internals = layer as unknown as LayerInternals;
  if (Array.isArray(internals._trainableWeights) && Array.isArray(internals._nonTrainableWeights)) {
    return [...internals._trainableWeights, ...internals._nonTrainableWeights];
  }
  return layer.weights;
}

function collect(layer: Layer, out: LayerVariable[], seen: Set<Layer>): void {
  if (seen.has(layer)) return;
  seen.add(layer);
  const nested = (layer as unknown as LayerInternals).layers;
  if (Array.isArray(nested)) {
    // A nested model: its own layers in order (its .weights would put trainable ones first).
    for (const inner of nested) collect(inner, out, seen);
    return;
  }
  out.push(...leafWeights(layer));
}

/** Every weight of the model, in canonical order, with its canonical name. */
export function canonicalVariables(model: LayersModel): CanonicalVariable[] {
  const result: CanonicalVariable[] = [];
  const seenVariables = new Set<number>();
  const usedNames = new Map<string, number>();
  const seenLayers = new Set<Layer>();
  for (const layer of model.layers) {
    const weights: LayerVariable[] = [];
    collect(layer, weights, seenLayers);
    for (const lv of weights) {
      if (seenVariables.has(lv.id)) continue; // a weight shared between layers counts once
      seenVariables.add(lv.id);
      const base = (lv as unknown as { originalName?: string }).originalName ?? lv.name;
      const count = usedNames.get(base) ?? 0;
      usedNames.set(base, count + 1);
      const name = count === 0 ? base : `${base}#${count + 1}`;
      const variable = lv.read() as tf.Variable;
      const dtype = variable.dtype;
      if (dtype !== 'float32' && dtype !== 'int32') throw new WeightsError(`weight "${name}" has unsupported dtype ${dtype}`);
      result.push({ name, layerName: layer.name, layerVariable: lv, variable, shape: variable.shape.slice(), dtype });
    }
  }
  return result;
}

/** All weights as bytes, in canonical order, named canonically. */
export function readWeights(model: LayersModel): TensorBytes[] {
  return canonicalVariables(model).map((v) => tensorToBytes(v.name, v.variable));
}

function listNames(names: string[]): string {
  const shown = names.slice(0, 6).map((n) => `"${n}"`).join(', ');
  return names.length > 6 ? `${shown} and ${names.length - 6} more` : shown;
}

/**
 * Assigns weights by canonical name. Every model weight must be given exactly once with the same
 * shape and dtype; otherwise nothing is written and a WeightsError lists the differences.
 */
export function writeWeights(model: LayersModel, weights: readonly TensorBytes[]): void {
  const variables = canonicalVariables(model);
  const byName = new Map<string, TensorBytes>();
  const duplicates: string[] = [];
  for (const w of weights) {
    if (byName.has(w.name)) duplicates.push(w.name);
    byName.set(w.name, w);
  }
  const known = new Set(variables.map((v) => v.name));
  const missing = variables.filter((v) => !byName.has(v.name)).map((v) => v.name);
  const extra = [...byName.keys()].filter((n) => !known.has(n));
  const mismatched: string[] = [];
  for (const v of variables) {
    const w = byName.get(v.name);
    if (!w) continue;
    const size = w.shape.reduce((a, b) => a * b, 1);
    if (w.shape.length !== v.shape.length || w.shape.some((d, i) => d !== v.shape[i]) || w.dtype !== v.dtype) {
      mismatched.push(`"${v.name}" is ${v.dtype}[${v.shape.join(',')}] but got ${w.dtype}[${w.shape.join(',')}]`);
    } else if (w.bytes.byteLength !== size * 4) {
      mismatched.push(`"${v.name}" needs ${size * 4} bytes but got ${w.bytes.byteLength}`);
    }
  }
  const problems: string[] = [];
  if (missing.length) problems.push(`missing ${listNames(missing)}`);
  if (extra.length) problems.push(`unexpected ${listNames(extra)}`);
  if (duplicates.length) problems.push(`given twice ${listNames(duplicates)}`);
  if (mismatched.length) problems.push(`shape mismatch: ${mismatched.slice(0, 4).join('; ')}${mismatched.length > 4 ? `; and ${mismatched.length - 4} more` : ''}`);
  if (problems.length) {
    // Same structure under other names: tfjs numbers unnamed layers per process (dense_Dense1,
    // then dense_Dense3 for the next model built), so a caller's model rebuilt in the same
    // process gets other weight names than the ones recorded. Say how to fix it.
    const renamedOnly =
      missing.length === variables.length &&
      weights.length === variables.length &&
      variables.every((v, i) => weights[i]!.dtype === v.dtype && weights[i]!.shape.join(',') === v.shape.join(','));
    if (renamedOnly) {
      throw new WeightsError(
        `the model's weights are named ${listNames(variables.map((v) => v.name))} but were recorded as ${listNames(weights.map((w) => w.name))}: ` +
          'tfjs numbers unnamed layers per process, so give every layer of the model a name (tf.layers.dense({ name: "hidden", … }))',
      );
    }
    throw new WeightsError(`weights do not fit the model (model has ${listNames(variables.map((v) => v.name))}): ${problems.join('; ')}`);
  }
  for (const v of variables) {
    const value = bytesToTensor(byName.get(v.name)!);
    try {
      v.variable.assign(value);
    } finally {
      value.dispose();
    }
  }
}

/**
 * The weightsHash (weights-hash.ts) of a model's weights or of a TensorBytes list. For a list the
 * list's own order is used (readWeights returns canonical order).
 */
export function weightsHash(source: LayersModel | readonly TensorBytes[]): string {
  if (Array.isArray(source)) return weightsHashOfBytes((source as readonly TensorBytes[]).map((w) => w.bytes));
  return weightsHashOfBytes(
    canonicalVariables(source as LayersModel).map((v) => {
      const data = v.variable.dataSync() as Float32Array | Int32Array;
      return BIG_ENDIAN ? toLittleEndianBytes(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    }),
  );
}

/** True when no float weight is NaN or ±Infinity. */
export function weightsFinite(model: LayersModel): boolean {
  for (const v of canonicalVariables(model)) {
    if (v.dtype !== 'float32') continue;
    const data = v.variable.dataSync() as Float32Array;
    for (let i = 0; i < data.length; i++) {
      const x = data[i]!;
      // x - x is 0 for finite x and NaN for NaN/±Infinity.
      if (x - x !== 0) return false;
    }
  }
  return true;
}
