// retrace's library API: the same operations as the CLI, typed. A caller may pass its own model
// factory (`model`) and data (`dataset`, built with `datasetFromSource` from random-access
// examples), follow progress through `onRecord` (every log event as it is written, or
// `store.events(runId)` as an async iterator), and stop a run with an AbortSignal.
import { Store } from './log/store.js';
import type { LogRecord } from './log/events.js';
import { storeDir } from './run/common.js';
import { listRuns, readLog, readRun, resolveAt, stateAt, type RunListing, type StateView } from './run/inspect.js';

export { train, type TrainOptions } from './run/train.js';
export { resume, ResumeRefusedError, type ResumeOptions } from './run/resume.js';
export { replay, type ReplayOptions, type ReplayResult } from './run/replay.js';
export { branch, parseBranchTarget, type BranchOptions } from './run/branch.js';
export { exportRun, type ExportOptions, type ExportResult } from './run/export.js';
export { listRuns, showState, removeRun, type RunListing, type StateView } from './run/inspect.js';
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

/** A store opened for reading and maintenance; pass it as `store` to the operations to share it. */
export interface RetraceStore {
  readonly store: Store;
  readonly dir: string;
  runs(): Promise<RunListing[]>;
  /** A run's events in order (validated), optionally a seq range. */
  events(runId: string, range?: { from?: number; to?: number }): AsyncGenerator<LogRecord>;
  /** The machine state after an event (`SEQ` or `step:N`; default: the last). */
  state(runId: string, at?: string): Promise<StateView>;
  close(): Promise<void>;
}

export async function openStore(dir?: string): Promise<RetraceStore> {
  const resolved = storeDir(dir);
  const store = await Store.open(resolved);
  return {
    store,
    dir: resolved,
    runs: () => listRuns({ store }),
    events: (runId, range) => readLog(store, runId, range),
    state: async (runId, at) => {
      const history = await readRun(store, runId);
      return stateAt(history, resolveAt(history, at));
    },
    close: () => store.close(),
  };
}
