// `retrace replay RUN [--verify] [--to POINT] [--out DIR] [--from POINT]`.
import path from 'node:path';
import type { Command } from 'commander';
import { makeOutput } from '../output.js';
import { addRelocationFlags, relocationFrom } from '../relocate.js';
import { createProgress } from '../progress.js';
import { commonFlags } from './index.js';
import { runSteps } from './train.js';
import type { BackendRequest } from '../../train/types.js';

export function registerReplay(program: Command): void {
  addRelocationFlags(commonFlags(program.command('replay').argument('<run>').description('re-execute a run and compare it with its log, or materialise the weights at any step')))
    .option('--verify', 'compare every step and checkpoint with the log (the default without --to)')
    .option('--to <point>', 'stop at a point: best, last, ckpt:K, int:N, step:N or an event number')
    .option('--from <point>', 'start from the checkpoint at or before a point (ckpt:K, best, last, ...) instead of the start')
    .option('--out <dir>', 'write the weights where the replay stopped as a TF.js model')
    .option('--backend <name>', 'replay on another backend than the recorded one (exactness not promised)')
    .action(async (runId: string, flags: Record<string, string | boolean | undefined>) => {
      const out = makeOutput(Boolean(flags.json));
      // Replay re-executes to --to step:N, else to the run's last step.
      const toStep = typeof flags.to === 'string' ? /^step:(\d+)$/.exec(flags.to)?.[1] : undefined;
      const total = toStep !== undefined ? Number(toStep) : ((await runSteps(runId, flags.store as string | undefined))?.done ?? null);
      const progress = createProgress({ stream: process.stderr, label: `replay ${runId}`, total });
      const outDir = typeof flags.out === 'string' ? path.resolve(flags.out) : null;
      const { replay } = await import('../../run/replay.js');
      const { saveModelToDir } = await import('../../train/model-io.js');
      const result = await replay(runId, {
        store: flags.store as string | undefined,
        verify: flags.verify === true || flags.to === undefined,
        to: flags.to as string | undefined,
        from: flags.from as string | undefined,
        backend: flags.backend as BackendRequest | undefined,
        relocate: relocationFrom(flags),
        onWarning: (m) => out.warn(m),
        onRecord: (r) => progress.onRecord(r),
        onFinish: outDir
          ? async (env, step) => {
              await saveModelToDir(env.tf, env.session.model, outDir, { retrace: { runId, step, weightsHash: env.session.weightsHash(), replayed: true } });
            }
          : undefined,
      });
      progress.stop();
      out.result({ ...result, out: outDir }, () =>
        result.identical
          ? `run ${runId}: replay identical to the log from checkpoint ${result.fromCheckpoint} (step ${result.fromStep}) to step ${result.toStep}, ${result.eventsVerified} events verified\nweightsHash at step ${result.toStep}: ${result.weightsHash}${outDir ? `\nweights written to ${outDir}` : ''}`
          : `run ${runId}: replay DIVERGED at step ${result.firstDivergence} (event ${result.divergentSeq})\n${result.message}${result.cause ? `\ncause: ${result.cause}` : ''}`,
      );
      if (!result.identical) process.exitCode = 1;
    });
}
