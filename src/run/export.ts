// `retrace export`: writes a checkpoint as a TensorFlow.js Layers model (model.json + weights)
// that stock `tf.loadLayersModel` loads, with the run, checkpoint, metrics and lineage in its
// user-defined metadata. Exporting observes a run: under rules 2 it stays stopped (an interrupted
// run stays resumable) and records the export; rules 1 (retrace 0.1.0) moved it to `exported`.
import path from 'node:path';
import { stateName } from '../../machines/fold.js';
import { canExport } from '../../machines/queries.js';
import type { LogRecord } from '../log/events.js';
import type { RunStore } from '../storage/types.js';
import { initBackend } from '../train/backend.js';
import { saveModelToDir } from '../train/model-io.js';
import { writeWeights } from '../train/weights.js';
import { withStore, type StoreOption } from './common.js';
import { checkExportTarget, ExportError, installExport, recoverExportTarget } from './export-dir.js';
import { Emitter } from './emitter.js';
import { rebuildModel, type Relocation } from './environment.js';
import { loadHistory, type RunHistory } from './history.js';
import { checkpointHolding, formatPoint, parseCheckpointPoint, PointError, resolvePoint, type Point } from './points.js';
import { replayFrom } from './replay.js';
import { loadTensors } from './snapshots.js';
import type { Dataset } from '../train/types.js';
import type { ModelFactory } from '../train/models.js';

export { ExportError };

export interface ExportOptions extends StoreOption {
  /** best (default), last (the last checkpoint of any kind), a checkpoint number K (= `ckpt:K`),
   * `int:N`, or any point: `step:N` re-executes the run to step N (as `replay --to` does) and
   * exports the weights there. */
  checkpoint?: string;
  out: string;
  /** Replace an existing export in `out` (a folder with a model.json and files only); without it a
   * non-empty `out` is an ExportError. */
  force?: boolean;
  /** The caller's own model factory, for a run made with one whose layers tfjs cannot rebuild alone. */
  model?: ModelFactory;
  /** The caller's own data, to re-execute a run made with it (export of a step between checkpoints). */
  dataset?: Dataset;
  /** Where the run's module or CSV moved (accepted when the fingerprint matches). */
  relocate?: Relocation;
  onWarning?: (message: string) => void;
}

export interface ExportResult {
  runId: string;
  /** The checkpoint's index (`ckpt:K`'s K, or `int:N`'s N); null for a step between checkpoints (re-executed to). */
  checkpoint: number | null;
  /** The checkpoint as a point (`ckpt:K` or `int:N`); null for a re-executed step. */
  checkpointName: string | null;
  checkpointKind: 'initial' | 'epoch' | 'interrupt' | null;
  step: number;
  weightsHash: string;
  out: string;
}

/** The chain of parents, nearest first, each with the point the child branched from. */
export async function lineage(store: RunStore, history: RunHistory): Promise<Array<{ runId: string; point: string; step: number }>> {
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

/** The point to export, resolved; ExportError if the run is not stopped, PointError for a point it lacks. */
async function exportable(runId: string, history: RunHistory, point: Point) {
  const snapshot = history.snapshotAt().snapshot;
  // Holding the run for writing means no process trains it: a run whose log is not stopped
  // crashed. Rules 2 export its checkpoints (resume goes on afterwards); rules 1 could not.
  if (!canExport(snapshot).ok) {
    throw new ExportError(`run ${runId} is ${stateName(snapshot)}, not stopped: resume it (\`retrace resume ${runId}\`) or let it finish before exporting`);
  }
  const resolved = await resolvePoint(history, point, '--checkpoint');
  // A step that a checkpoint holds is exported from it; any other step is re-executed to.
  const ckpt = checkpointHolding(history.checkpoints, resolved);
  if (!ckpt && !resolved.checkpoint) throw new PointError(`run ${runId} has no checkpoint at or before ${formatPoint(point)}`);
  return { resolved, ckpt };
}

/**
 * Writes a point of a stopped run (a checkpoint, or a step re-executed to) as a TF.js Layers model
 * folder at `out`, replaced as a whole (export-dir.ts), and records `export.finished`. Everything
 * that can refuse is checked before anything is written (a read of the run, the `out` folder): a
 * refused export changes nothing. Throws PointSyntaxError (a malformed point), ExportError (not
 * stopped, `out` taken without `force`, re-execution diverged), PointError, UnknownRunError,
 * RunLockedError.
 */
export async function exportRun(runId: string, opts: ExportOptions): Promise<ExportResult> {
  // A malformed point is bad usage: said before anything is opened.
  const point = parseCheckpointPoint(opts.checkpoint ?? 'best');
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
      const { resolved, ckpt } = await exportable(runId, await loadHistory(preview, runId), point);
      // The weights it needs must read back (each blob is checked against its hash) before the
      // run is opened for writing, which rewrites LevelDB's files even when the export then fails.
      await loadTensors(store.blobs, (ckpt ?? resolved.checkpoint!).data.weights);
    } finally {
      await preview.close();
    }
    const log = await store.openRun(runId, 'write');
    try {
      const history = await loadHistory(log, runId);
      const snapshot = history.snapshotAt().snapshot;
      const { resolved, ckpt } = await exportable(runId, history, point);
      const created = history.created;
      const stepAt = ckpt ? ckpt.data.step : resolved.step;
      const evaluation = history.records
        .filter((r): r is Extract<LogRecord, { type: 'eval.finished' }> => r.type === 'eval.finished' && r.data.step === stepAt)
        .at(-1)?.data;
      const metadata = async (weightsHash: string) => ({
        retrace: {
          runId,
          checkpoint: ckpt ? ckpt.data.index : null,
          checkpointName: ckpt ? history.checkpointName(ckpt) : null,
          checkpointKind: ckpt ? ckpt.data.kind : null,
          point: formatPoint(point),
          step: stepAt,
          examplesSeen: ckpt ? ckpt.data.examplesSeen : history.snapshotAt(resolved.seq).snapshot.context.examplesSeen,
          weightsHash,
          metrics: evaluation ?? null,
          dataset: created.dataset.name,
          classNames: created.dataset.classNames,
          featureNames: created.dataset.featureNames ?? null,
          lineage: await lineage(store, history),
        },
      });

      let weightsHash: string;
      if (ckpt) {
        // The run's own model code builds the model (a module registers its custom layers).
        const { tf } = await initBackend('auto');
        const model = await rebuildModel(tf, created, opts, 'export');
        try {
          writeWeights(model, await loadTensors(store.blobs, ckpt.data.weights));
          weightsHash = ckpt.data.weightsHash;
          const meta = await metadata(weightsHash);
          await installExport(out, force, async (dir) => void (await saveModelToDir(tf, model, dir, meta)));
        } finally {
          model.dispose();
        }
      } else {
        let saved: string | null = null;
        await installExport(out, force, async (dir) => {
          const result = await replayFrom(store, history, resolved.checkpoint!, {
            stopAtStep: resolved.step,
            cwd: opts.cwd,
            dataset: opts.dataset,
            model: opts.model,
            relocate: opts.relocate,
            onWarning: opts.onWarning,
            onFinish: async (env) => {
              saved = env.session.weightsHash();
              await saveModelToDir(env.tf, env.session.model, dir, await metadata(saved));
            },
          });
          if (!result.identical || saved === null) {
            throw new ExportError(`cannot export run ${runId} at ${formatPoint(point)}: re-executing it diverged from its log (${result.message}); nothing was written`);
          }
        });
        weightsHash = saved!;
      }
      const from = ckpt ?? resolved.checkpoint!;
      const checkpoint = from.data.index;
      const pointText = formatPoint(point);
      const emitter = new Emitter({ runId, log, expected: [], nextSeq: history.lastSeq + 1, snapshot, created: { data: history.created, at: history.records[0]!.at } });
      // Rules 2 name the kind: an interrupt checkpoint's number is not a `ckpt:K`.
      const kind = snapshot.context.interrupts !== undefined ? { kind: from.data.kind } : {};
      await emitter.machine({ type: 'export.finished', data: { checkpoint, ...kind, out, step: stepAt, point: pointText } }, { sync: true });
      return {
        runId,
        checkpoint: ckpt ? (ckpt.data.kind === 'interrupt' ? Number(history.checkpointName(ckpt).slice(4)) : ckpt.data.index) : null,
        checkpointName: ckpt ? history.checkpointName(ckpt) : null,
        checkpointKind: ckpt ? ckpt.data.kind : null,
        step: stepAt,
        weightsHash,
        out,
      };
    } finally {
      await log.close();
    }
  });
}
