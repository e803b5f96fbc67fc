// `retrace export`: writes a checkpoint as a TensorFlow.js Layers model (model.json + weights)
// that stock `tf.loadLayersModel` loads, with the run, checkpoint, metrics and lineage in its
// user-defined metadata. Exporting observes a run: under rules 2 it stays stopped (an interrupted
// run stays resumable) and records the export; rules 1 (retrace 0.1.0) moved it to `exported`.
import path from 'node:path';
import { stateName } from '../../machines/fold.js';
import type { LogRecord } from '../log/events.js';
import type { Store } from '../log/store.js';
import { initBackend } from '../train/backend.js';
import { saveModelToDir } from '../train/model-io.js';
import { writeWeights } from '../train/weights.js';
import { withStore, type StoreOption } from './common.js';
import { Emitter } from './emitter.js';
import { loadHistory, PointError, type CheckpointRecord, type RunHistory } from './history.js';
import { loadTensors } from './snapshots.js';

export class ExportError extends Error {
  override name = 'ExportError';
}

export interface ExportOptions extends StoreOption {
  /** best (default), last (the last checkpoint of any kind), a checkpoint number K or `ckpt:K`, or `int:N`. */
  checkpoint?: string;
  out: string;
}

export interface ExportResult {
  runId: string;
  /** The checkpoint's index (`ckpt:K`'s K, or `int:N`'s N for an interrupt checkpoint). */
  checkpoint: number;
  /** The checkpoint as a point: `ckpt:K` or `int:N`. */
  checkpointName: string;
  checkpointKind: 'initial' | 'epoch' | 'interrupt';
  step: number;
  weightsHash: string;
  out: string;
}

/** The chain of parents, nearest first, each with the point the child branched from. */
export async function lineage(store: Store, history: RunHistory): Promise<Array<{ runId: string; point: string; step: number }>> {
  const chain: Array<{ runId: string; point: string; step: number }> = [];
  let parent = history.created.parent;
  while (parent && chain.length < 1000) {
    chain.push({ runId: parent.runId, point: parent.point, step: parent.step });
    if (!(await store.hasRun(parent.runId))) break;
    const log = await store.openRun(parent.runId, 'read');
    try {
      const first = (await log.get(0)) as { data: { parent: typeof parent } } | null;
      parent = first?.data.parent ?? null;
    } finally {
      await log.close();
    }
  }
  return chain;
}

function pickCheckpoint(history: RunHistory, which: string): CheckpointRecord {
  const point = /^\d+$/.test(which) ? `ckpt:${which}` : which;
  if (point !== 'best' && point !== 'last' && !/^(ckpt|int):\d+$/.test(point)) {
    throw new PointError(`bad --checkpoint "${which}": expected best, last, a checkpoint number, ckpt:K or int:N`);
  }
  return history.resolvePoint(point).checkpoint;
}

export async function exportRun(runId: string, opts: ExportOptions): Promise<ExportResult> {
  return withStore(opts, async (store) => {
    const log = await store.openRun(runId, 'write');
    try {
      const history = await loadHistory(log, runId);
      const snapshot = history.snapshotAt().snapshot;
      const state = stateName(snapshot);
      // Holding the run for writing means no process trains it: a run whose log is not stopped
      // crashed. Rules 2 export its checkpoints (resume goes on afterwards); rules 1 could not.
      if (state !== 'stopped' && state !== 'exported' && !snapshot.can({ type: 'export.finished', checkpoint: 0, out: '' })) {
        throw new ExportError(`run ${runId} is ${state}, not stopped: resume it (\`retrace resume ${runId}\`) or let it finish before exporting`);
      }
      const ckpt = pickCheckpoint(history, opts.checkpoint ?? 'best');
      const out = path.resolve(opts.cwd ?? process.cwd(), opts.out);

      const { tf } = await initBackend('auto');
      const model = await tf.models.modelFromJSON({ modelTopology: history.created.model.topology as never });
      try {
        writeWeights(model, await loadTensors(store.blobs, ckpt.data.weights));
        const evaluation = history.records
          .filter((r): r is Extract<LogRecord, { type: 'eval.finished' }> => r.type === 'eval.finished' && r.data.step === ckpt.data.step)
          .at(-1)?.data;
        await saveModelToDir(tf, model, out, {
          retrace: {
            runId,
            checkpoint: ckpt.data.index,
            checkpointName: history.checkpointName(ckpt),
            checkpointKind: ckpt.data.kind,
            step: ckpt.data.step,
            examplesSeen: ckpt.data.examplesSeen,
            weightsHash: ckpt.data.weightsHash,
            metrics: evaluation ?? null,
            dataset: history.created.dataset.name,
            classNames: history.created.dataset.classNames,
            lineage: await lineage(store, history),
          },
        });
      } finally {
        model.dispose();
      }
      const emitter = new Emitter({ runId, log, expected: [], nextSeq: history.lastSeq + 1, snapshot });
      // Rules 2 name the kind: an interrupt checkpoint's number is not a `ckpt:K`.
      const kind = snapshot.context.interrupts !== undefined ? { kind: ckpt.data.kind } : {};
      await emitter.machine(
        { type: 'export.finished', checkpoint: ckpt.data.index, ...kind, out },
        { type: 'export.finished', data: { checkpoint: ckpt.data.index, ...kind, out } },
        { sync: true },
      );
      return {
        runId,
        checkpoint: ckpt.data.kind === 'interrupt' ? Number(history.checkpointName(ckpt).slice(4)) : ckpt.data.index,
        checkpointName: history.checkpointName(ckpt),
        checkpointKind: ckpt.data.kind,
        step: ckpt.data.step,
        weightsHash: ckpt.data.weightsHash,
        out,
      };
    } finally {
      await log.close();
    }
  });
}
