// Loading an export back in Node with plain @tensorflow/tfjs: `tf.loadLayersModel('file://…')`
// needs tfjs-node's file handler, which plain tfjs lacks ("Cannot find any load handlers"), so the
// folder is read with node:fs and handed to tfjs in memory (the same as tf.io.fromMemory).
import * as tf from '@tensorflow/tfjs';
import type { LayersModel } from '@tensorflow/tfjs';
import { loadModelFromDir } from '../train/model-io.js';

/** What `retrace export` records in model.json's userDefinedMetadata.retrace. */
export interface ExportMetadata {
  runId: string;
  checkpoint: number;
  checkpointKind: string;
  step: number;
  examplesSeen: number;
  /** SHA-256 (lowercase hex) of the exported weights in canonical order. */
  weightsHash: string;
  metrics: { step: number; valLoss: string | number; valAccuracy: number } | null;
  dataset: string;
  /** Output index i is class classNames[i]. */
  classNames: string[];
  /** Input feature i is featureNames[i] (a CSV's columns without the label); null when unnamed
   * (MNIST's pixels) or exported by a retrace that did not record them. */
  featureNames?: string[] | null;
  lineage: Array<{ runId: string; point: string; step: number }>;
}

/**
 * Loads a model folder written by `retrace export` (or any TF.js Layers model.json folder with its
 * weight shards) with the @tensorflow/tfjs the caller has installed; no tfjs-node needed.
 * `model.getUserDefinedMetadata()` holds `{ retrace: ExportMetadata }` for retrace's exports.
 * Rejects with a ModelIoError (one line) when the folder has no model.json, a shard is missing or
 * the JSON is not a Layers model.
 */
export async function loadExport(dir: string): Promise<LayersModel> {
  return loadModelFromDir(tf, dir);
}
