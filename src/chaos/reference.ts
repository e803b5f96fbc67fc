// The chaos harness's reference: the same run made without interruption, which every chaos run
// must end equal to, and what the kill plan needs to know of it (its steps, timings, blobs).
import { blobRefs } from '../log/events.js';
import { Store } from '../log/store.js';
import { errorLine, jsonResult, MARKER, runCli, type CliPaths } from './child.js';

export interface RunSummaryJson {
  runId: string;
  state: string;
  stopReason: string | null;
  step: number;
  weightsHash: string | null;
}

export interface Reference {
  runId: string;
  summary: RunSummaryJson;
  totalSteps: number;
  /** Spawn to run.created. */
  startupMs: number;
  /** run.created to exit. */
  trainMs: number;
  /** Blobs one checkpoint names (weights + optimizer tensors). */
  blobsPerCheckpoint: number;
}

/** Trains the uninterrupted reference run. */
export async function trainReference(opts: { configFile: string; storeDir: string; runId: string; cli?: CliPaths; cwd?: string; timeoutMs?: number }): Promise<Reference> {
  return runReference(['train', '--config', opts.configFile], opts);
}

/** Runs `create` (a train or a branch command) uninterrupted as run `runId`: the reference a chaos run must end equal to. */
export async function runReference(create: string[], opts: { storeDir: string; runId: string; cli?: CliPaths; cwd?: string; timeoutMs?: number }): Promise<Reference> {
  const r = await runCli([...create, '--run-id', opts.runId, '--store', opts.storeDir, '--json'], {
    cli: opts.cli,
    cwd: opts.cwd,
    marker: MARKER,
    timeoutMs: opts.timeoutMs,
  });
  const summary = jsonResult<RunSummaryJson>(r);
  if (r.code !== 0 || !summary) throw new Error(`the reference run ${opts.runId} failed (exit ${r.code ?? r.signal}): ${errorLine(r)}`);
  const store = await Store.open(opts.storeDir);
  let totalSteps = summary.step;
  let blobsPerCheckpoint = 8;
  try {
    const log = await store.openRun(opts.runId, 'read');
    try {
      const created = (await log.get(0))!.data as { settings: { totalSteps: number } };
      totalSteps = created.settings.totalSteps;
      for await (const rec of log.read()) {
        if (rec.type === 'checkpoint.committed') {
          // The blobs a checkpoint writes (its pack and its big tensors), where blob kill points land.
          blobsPerCheckpoint = Math.max(1, blobRefs(rec).length);
          break;
        }
      }
    } finally {
      await log.close();
    }
  } finally {
    await store.close();
  }
  const startupMs = r.markerMs ?? Math.min(2000, r.ms / 3);
  return { runId: opts.runId, summary, totalSteps, startupMs, trainMs: Math.max(200, r.ms - startupMs), blobsPerCheckpoint };
}
