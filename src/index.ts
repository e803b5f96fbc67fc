// retrace's library API: the same operations as the CLI, typed. A caller may pass its own model
// factory (`model`) and data (`dataset`, built with `datasetFromSource` from random-access
// examples), follow progress through `onRecord` (every log event as it is written, or
// `store.events(runId)` as an async iterator), and stop a run with an AbortSignal.
import { Store } from './log/store.js';
import type { LogRecord } from './log/events.js';
import { openStoreOption, storeSpec } from './run/common.js';
import type { RunStore } from './storage/types.js';
import { listRuns, readLog, resolveAt, stateAt, withReader, type LogQuery, type RunListing, type StateView } from './run/inspect.js';

export { train, type TrainOptions } from './run/train.js';
export { resume, ResumeRefusedError, type ResumeOptions } from './run/resume.js';
export { replay, type ReplayOptions, type ReplayResult } from './run/replay.js';
export { branch, parseBranchTarget, type BranchOptions } from './run/branch.js';
export { exportRun, type ExportOptions, type ExportResult } from './run/export.js';
export { listRuns, showState, removeRun, runLiveness, type Liveness, type LogQuery, type RunListing, type StateView, type StateReport } from './run/inspect.js';
export { listCheckpoints, type CheckpointListing } from './run/checkpoints.js';
export { parsePoint, formatPoint, PointError, PointSyntaxError, type Point } from './run/points.js';
export { loadExport, type ExportMetadata } from './run/load-export.js';
export { ModelIoError } from './train/model-io.js';
export { writeTensorBoard, TensorBoardError, type TensorBoardOptions, type TensorBoardRunResult } from './tensorboard/write.js';
export { LiveTensorBoard } from './tensorboard/live.js';
export type { RunSummary } from './run/common.js';
export { resolveConfig, computeSchedule, DEFAULTS, ConfigError, type Config, type ConfigInput } from './config.js';
export { datasetFromSource, loadDataset, DatasetError, type DatasetSource, type RandomAccess } from './train/data/index.js';
export type { ModelFactory, ModelFactoryArgs } from './train/models.js';
export type { Dataset, Split, BackendInfo } from './train/types.js';
export type { LogRecord, RecordType } from './log/events.js';
export { trainingMachine } from '../machines/training.machine.js';
export type { TrainingEvent, StopReason } from '../machines/training.events.js';
export { Store };
export { openRunStore, dropMemoryStore } from './storage/open.js';
export { MemoryRunStore } from './storage/memory.js';
export { WrongExpectedSeqError, RunFencedError } from './storage/types.js';
export type { RunStore, EventLog, BlobStore, StoredRecord, StoredSummary, AppendInput, AppendOptions, ReadRange, BackwardRange } from './storage/types.js';

/** A store opened for reading and maintenance; pass it as `store` to the operations to share it. */
export interface RetraceStore {
  /** The store itself (RunStore, src/storage/types.ts): pass it as `store` to the operations. */
  readonly store: RunStore;
  readonly dir: string;
  runs(): Promise<RunListing[]>;
  /** A run's events in order (validated), optionally between two points and of some types only. */
  events(runId: string, query?: LogQuery): AsyncGenerator<LogRecord>;
  /** The machine state at a point (`best`, `last`, `ckpt:K`, `step:N` or an event number; default: the last event). */
  state(runId: string, at?: string): Promise<StateView>;
  close(): Promise<void>;
}

/** Opens the store at `dir` (default `$RETRACE_STORE`, else ./.retrace). A folder that does not
 * exist is a StoreError unless `create` (reading must not leave an empty store behind). */
export async function openStore(dir?: string, opts: { create?: boolean } = {}): Promise<RetraceStore> {
  const resolved = storeSpec(dir);
  const store = await openStoreOption({ store: resolved, create: opts.create });
  return {
    store,
    dir: resolved,
    runs: () => listRuns({ store }),
    events: (runId, range) => readLog(store, runId, range),
    state: async (runId, at) => {
      return withReader(store, runId, async (reader) => stateAt(reader, await resolveAt(reader, at)));
    },
    close: () => store.close(),
  };
}
