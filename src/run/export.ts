// `retrace export`: writes a checkpoint as a TensorFlow.js Layers model (model.json + weights)
// that stock `tf.loadLayersModel` loads, with the run, checkpoint, metrics and lineage in its
// user-defined metadata; the run moves to `exported`.
import path from 'node:path';
import { stateName } from '../../machines/fold.js';
import type { LogRecord } from '../log/events.js';
import type { Store } from '../log/store.js';
import { initBackend } from '../train/backend.js';
import { saveModelToDir } from '../train/model-io.js';
import { writeWeights } from '../train/weights.js';
import { withStore, type StoreOption } from './common.js';
import { checkExportTarget, ExportError, installExport, recoverExportTarget } from './export-dir.js';
import { Emitter } from './emitter.js';
import { loadHistory, PointError, type CheckpointRecord, type RunHistory } from './history.js';
import { loadTensors } from './snapshots.js';

export { ExportError };

export interface ExportOptions extends StoreOption {
  /** best (default), last, or a checkpoint number. */
  checkpoint?: string;
  out: string;
  /** Replace an existing export in `out` (a folder with a model.json and files only); without it a
   * non-empty `out` is an ExportError. */
  force?: boolean;
}

export interface ExportResult {
  runId: string;
  checkpoint: number;
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
  if (point !== 'best' && point !== 'last' && !/^ckpt:\d+$/.test(point)) {
    throw new PointError(`bad --checkpoint "${which}": expected best, last or a checkpoint number`);
  }
  return history.resolvePoint(point).checkpoint;
}

/** The checkpoint to export; ExportError if the run is not stopped, PointError for a bad one. */
function exportable(runId: string, history: RunHistory, which: string): CheckpointRecord {
  const state = stateName(history.snapshotAt().snapshot);
  if (state !== 'stopped' && state !== 'exported') {
    throw new ExportError(`run ${runId} is ${state}, not stopped: resume it (\`retrace resume ${runId}\`) or let it finish before exporting`);
  }
  return pickCheckpoint(history, which);
}

/**
 * Writes a checkpoint of a stopped run as a TF.js Layers model folder at `out`, replaced as a
 * whole (export-dir.ts), and records `export.finished`. Everything that can refuse is checked
 * before anything is written (a read of the run, the `out` folder): a refused export changes
 * nothing. Throws ExportError (not stopped, `out` taken without `force`), PointError,
 * UnknownRunError, RunLockedError.
 */
export async function exportRun(runId: string, opts: ExportOptions): Promise<ExportResult> {
  return withStore(opts, async (store) => {
    const out = path.resolve(opts.cwd ?? process.cwd(), opts.out);
    const force = opts.force ?? false;
    await recoverExportTarget(out);
    await checkExportTarget(out, force);
    // A run whose owner.json names a live process: its lock is tried first, so a writer is named
    // (RunLockedError) before anything else is said or touched; a stale owner.json is cleared.
    // The rest is checked on a read, since opening a run for writing rewrites LevelDB's files.
    if (!(await store.hasRun(runId))) await store.openRun(runId, 'read'); // throws UnknownRunError
    if (await store.liveWriter(runId)) await (await store.openRun(runId, 'write')).close();
    const preview = await store.openRun(runId, 'read');
    try {
      exportable(runId, await loadHistory(preview, runId), opts.checkpoint ?? 'best');
    } finally {
      await preview.close();
    }
    const log = await store.openRun(runId, 'write');
    try {
      const history = await loadHistory(log, runId);
      const snapshot = history.snapshotAt().snapshot;
      const ckpt = exportable(runId, history, opts.checkpoint ?? 'best');

      const { tf } = await initBackend('auto');
      const model = await tf.models.modelFromJSON({ modelTopology: history.created.model.topology as never });
      try {
        writeWeights(model, await loadTensors(store.blobs, ckpt.data.weights));
        const evaluation = history.records
          .filter((r): r is Extract<LogRecord, { type: 'eval.finished' }> => r.type === 'eval.finished' && r.data.step === ckpt.data.step)
          .at(-1)?.data;
        const metadata = {
          retrace: {
            runId,
            checkpoint: ckpt.data.index,
            checkpointKind: ckpt.data.kind,
            step: ckpt.data.step,
            examplesSeen: ckpt.data.examplesSeen,
            weightsHash: ckpt.data.weightsHash,
            metrics: evaluation ?? null,
            dataset: history.created.dataset.name,
            classNames: history.created.dataset.classNames,
            lineage: await lineage(store, history),
          },
        };
        await installExport(out, force, async (dir) => void (await saveModelToDir(tf, model, dir, metadata)));
      } finally {
        model.dispose();
      }
      const emitter = new Emitter({ runId, log, expected: [], nextSeq: history.lastSeq + 1, snapshot });
      await emitter.machine(
        { type: 'export.finished', checkpoint: ckpt.data.index, out },
        { type: 'export.finished', data: { checkpoint: ckpt.data.index, out } },
        { sync: true },
      );
      return { runId, checkpoint: ckpt.data.index, step: ckpt.data.step, weightsHash: ckpt.data.weightsHash, out };
    } finally {
      await log.close();
    }
  });
}
