// `retrace train` and `retrace resume`.
import type { Command } from 'commander';
import type { RunSummary } from '../../run/common.js';
import { addConfigFlags, configFromFlags } from '../config-flags.js';
import { ConfigSchema, flagName } from '../../config.js';
import { formatSchedule } from '../../run/schedule.js';
import { makeOutput, UsageError, type Output } from '../output.js';
import { addRelocationFlags, relocationFrom } from '../relocate.js';
import { createProgress } from '../progress.js';
import { commonFlags } from './index.js';
import type { BackendRequest } from '../../train/types.js';

/** Ctrl-C / SIGTERM: the first asks for a graceful stop (checkpoint, then `interrupted`); a second
 * one exits at once (the last committed checkpoint is still there to resume from). */
export function stopSignal(out: Output): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSignal = (name: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      process.stderr.write(`\n${name} again: exiting now; resume from the last checkpoint\n`);
      process.exit(130);
    }
    out.warn(`${name}: committing a checkpoint, then stopping (again to exit at once)`);
    controller.abort('signal');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

export function humanSummary(s: RunSummary): string {
  const lines = [
    `run ${s.runId}: ${s.state}${s.stopReason ? ` (${s.stopReason})` : ''} after ${s.step} steps, ${s.examplesSeen} examples`,
    `final weightsHash: ${s.weightsHash ?? 'unknown'}`,
    s.bestCheckpoint === null ? 'best checkpoint: none' : `best checkpoint: ${s.bestCheckpoint}   its weightsHash: ${s.bestWeightsHash ?? 'unknown'}`,
  ];
  if (s.stopReason === 'interrupted') lines.push(`resume with: retrace resume ${s.runId}`);
  return lines.join('\n');
}

/** What a run's log says about its steps, for a progress bar that starts after `run.created`:
 * the budget and the steps done. Null when the run cannot be read (the command itself then says
 * why). */
export async function runSteps(runId: string, store: string | undefined): Promise<{ total: number; done: number } | null> {
  try {
    const view = await (await import('../../run/inspect.js')).showState(runId, { store });
    return { total: view.schedule.totalSteps, done: view.step };
  } catch {
    return null;
  }
}

export async function runWithProgress(
  flags: { json?: boolean; tensorboard?: string },
  label: string,
  fn: (hooks: { signal: AbortSignal; onRecord: ReturnType<typeof createProgress>['onRecord']; onWarning: (m: string) => void }) => Promise<RunSummary>,
  total: number | null = null,
  /** For resume: the run whose event file continues (`--tensorboard DIR`). */
  resumeOf?: { runId: string; store: string | undefined },
): Promise<RunSummary> {
  const out = makeOutput(Boolean(flags.json));
  const warn = (m: string) => out.warn(m);
  const tensorboard = flags.tensorboard ? await liveTensorBoard(flags.tensorboard, resumeOf, warn) : null;
  const progress = createProgress({ stream: out.json ? process.stderr : process.stdout, label, total });
  const stop = stopSignal(out);
  try {
    const onRecord: typeof progress.onRecord = (r) => {
      progress.onRecord(r);
      tensorboard?.onRecord(r);
    };
    const summary = await fn({ signal: stop.signal, onRecord, onWarning: warn });
    progress.stop();
    out.result(summary, () => humanSummary(summary));
    return summary;
  } finally {
    progress.stop();
    stop.dispose();
    tensorboard?.close();
  }
}

/** `--tensorboard DIR`: the run's TensorBoard event file, written while it trains. */
async function liveTensorBoard(dir: string, resumeOf: { runId: string; store: string | undefined } | undefined, warn: (m: string) => void) {
  const { LiveTensorBoard } = await import('../../tensorboard/live.js');
  return resumeOf ? LiveTensorBoard.forResume(dir, resumeOf.runId, { store: resumeOf.store }, warn) : LiveTensorBoard.forNewRun(dir, warn);
}

/** The option train, resume and branch share. */
export function tensorboardFlag(cmd: Command): Command {
  return cmd.option('--tensorboard <dir>', 'also write the run as TensorBoard event files under DIR/RUN/ while it trains');
}

export function registerTrain(program: Command): void {
  const trainCmd = tensorboardFlag(commonFlags(program.command('train').description('train a new run')));
  addConfigFlags(trainCmd).action(async (flags: Record<string, unknown>) => {
    const config = await configFromFlags(flags);
    await runWithProgress(flags, 'train', async (hooks) =>
      (await import('../../run/train.js')).train({ store: flags.store as string | undefined, config, signal: hooks.signal, onRecord: hooks.onRecord, onWarning: hooks.onWarning, command: 'train' }),
    );
  });

  tensorboardFlag(addRelocationFlags(commonFlags(program.command('resume').argument('<run>').description('continue an interrupted or crashed run from its last checkpoint'))))
    .option('--force', 'resume although the data, model source or tfjs version changed (recorded in the log)')
    .option('--backend <name>', 'run on another backend than the recorded one (exactness not promised)')
    .option('--stop-point <value>', "train longer: the run's new stopPoint (passes over trainingExamples in the whole run)")
    .option('--checkpoints <value>', "with a longer budget: the whole run's checkpoint count (default: the same spacing)")
    .action(async (runId: string, flags: Record<string, unknown>) => {
      const steps = await runSteps(runId, flags.store as string | undefined);
      const extension = extensionFlags(flags);
      await runWithProgress(
        flags,
        `resume ${runId}`,
        async (hooks) =>
        (await import('../../run/resume.js')).resume(runId, {
          store: flags.store as string | undefined,
          ...extension,
          // The schedule it goes on with, as train and branch print it when they start.
          onSchedule: (schedule) => (flags.json ? process.stderr : process.stdout).write(`resume ${runId}: ${formatSchedule(schedule)}\n`),
          force: Boolean(flags.force),
          backend: flags.backend as BackendRequest | undefined,
          relocate: relocationFrom(flags),
          signal: hooks.signal,
          onRecord: hooks.onRecord,
          onWarning: hooks.onWarning,
          command: 'resume',
        }),
        steps?.total ?? null,
        { runId, store: flags.store as string | undefined },
      );
    });
}

/** `resume --stop-point/--checkpoints`, validated like the config keys they extend. */
function extensionFlags(flags: Record<string, unknown>): { stopPoint?: number; checkpoints?: number } {
  const out: { stopPoint?: number; checkpoints?: number } = {};
  for (const key of ['stopPoint', 'checkpoints'] as const) {
    if (flags[key] === undefined) continue;
    const raw = String(flags[key]);
    const parsed = ConfigSchema.shape[key].safeParse(raw.trim() === '' ? NaN : Number(raw));
    if (!parsed.success) throw new UsageError(`--${flagName(key)} "${raw}": ${parsed.error.issues[0]!.message}`);
    out[key] = parsed.data;
  }
  return out;
}
