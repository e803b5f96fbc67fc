// Models on disk in the standard TF.js Layers format: model.json (topology + weightsManifest)
// next to one binary shard, so stock tf.loadLayersModel loads our exports (via tfjs-node's
// file:// handler, tf.io.fromMemory, or any IOHandler), and we load stock exports (any number of
// shards). tfjs-node is optional, so files are read and written with node:fs here.
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { NotRegularFileError, readRegularFile } from '../log/regular-file.js';
import { join, resolve, sep } from 'node:path';
import type * as tfTypes from '@tensorflow/tfjs';
import type { Tf } from './types.js';

export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';

/** The model folder is missing or malformed. One line. */
export class ModelIoError extends Error {
  override name = 'ModelIoError';
}

async function writeAtomically(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    await writeFile(tmp, data);
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
}

function joinWeightData(tf: Tf, data: tfTypes.io.WeightData | undefined): Uint8Array {
  if (data == null) return new Uint8Array(0);
  return new Uint8Array(Array.isArray(data) ? tf.io.CompositeArrayBuffer.join(data) : data);
}

/**
 * Writes `dir/model.json` and `dir/weights.bin` (creating dir). The JSON is the standard TF.js
 * Layers model JSON: modelTopology, format "layers-model", weightsManifest [{paths: ["weights.bin"],
 * weights: specs}], plus userDefinedMetadata. The weights file is written before the JSON, each
 * atomically, so a crash never leaves a model.json pointing at a half-written shard.
 */
export async function saveModelToDir(
  tf: Tf,
  model: tfTypes.LayersModel,
  dir: string,
  userDefinedMetadata: Record<string, unknown> = {},
): Promise<{ modelJsonPath: string; weightsPath: string; weightBytes: number }> {
  await mkdir(dir, { recursive: true });
  const modelJsonPath = join(dir, MODEL_JSON);
  const weightsPath = join(dir, WEIGHTS_BIN);
  let weightBytes = 0;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weights = joinWeightData(tf, artifacts.weightData);
      weightBytes = weights.byteLength;
      const modelJson: tfTypes.io.ModelJSON = {
        modelTopology: artifacts.modelTopology as tfTypes.io.ModelJSON['modelTopology'],
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${String((tf.version as Record<string, string>)['tfjs-layers'])}`,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }],
      };
      if (artifacts.trainingConfig != null) modelJson.trainingConfig = artifacts.trainingConfig;
      if (Object.keys(userDefinedMetadata).length > 0) modelJson.userDefinedMetadata = userDefinedMetadata as Record<string, {}>;
      await writeAtomically(weightsPath, weights);
      await writeAtomically(modelJsonPath, JSON.stringify(modelJson));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
    { includeOptimizer: false },
  );
  return { modelJsonPath, weightsPath, weightBytes };
}

/** Reads a model folder into tfjs ModelArtifacts (topology + all shards concatenated in order). */
export async function readModelArtifacts(tf: Tf, dir: string): Promise<tfTypes.io.ModelArtifacts> {
  const modelJsonPath = join(dir, MODEL_JSON);
  let text: string;
  try {
    // Only a regular file: a named pipe would wait forever, a device never end.
    text = await readRegularFile(modelJsonPath, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ModelIoError(code === 'ENOENT' ? `no ${MODEL_JSON} in ${dir}` : `cannot read ${modelJsonPath}: ${(error as Error).message}`);
  }
  let json: tfTypes.io.ModelJSON;
  try {
    json = JSON.parse(text) as tfTypes.io.ModelJSON;
  } catch (error) {
    throw new ModelIoError(`${modelJsonPath} is not valid JSON: ${(error as Error).message.split('\n')[0]}`);
  }
  if (typeof json !== 'object' || json === null || json.modelTopology == null) {
    throw new ModelIoError(`${modelJsonPath} has no modelTopology: not a TF.js Layers model`);
  }
  const root = resolve(dir);
  return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
    const specs: tfTypes.io.WeightsManifestEntry[] = [];
    const buffers: ArrayBuffer[] = [];
    for (const group of manifest ?? []) {
      for (const path of group.paths) {
        const file = resolve(root, decodeURIComponent(path));
        if (file !== root && !file.startsWith(root + sep)) throw new ModelIoError(`${modelJsonPath}: weight path "${path}" leaves the model folder`);
        let bytes: Buffer;
        try {
          bytes = await readRegularFile(file);
        } catch (error) {
          if (error instanceof NotRegularFileError) throw new ModelIoError(`cannot read weight shard ${error.message}`);
          throw new ModelIoError(`cannot read weight shard ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
        }
        buffers.push(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
      }
      specs.push(...group.weights);
    }
    return [specs, tf.io.CompositeArrayBuffer.join(buffers)];
  });
}

/** Loads a TF.js Layers model folder (ours or stock) with tf.loadLayersModel. */
export async function loadModelFromDir(tf: Tf, dir: string): Promise<tfTypes.LayersModel> {
  const artifacts = await readModelArtifacts(tf, dir);
  const handler: tfTypes.io.IOHandler = { load: async () => artifacts };
  try {
    return await tf.loadLayersModel(handler);
  } catch (error) {
    throw new ModelIoError(`cannot load the model in ${dir}: ${((error as Error).message ?? String(error)).split('\n')[0]}`);
  }
}
