// `retrace tensorboard RUN… --out DIR [--follow]`: runs as TensorBoard event files.
import type { Command } from 'commander';
import { makeOutput, UsageError } from '../output.js';
import { commonFlags } from './index.js';

export function registerTensorBoard(program: Command): void {
  commonFlags(
    program
      .command('tensorboard')
      .argument('<runs...>', 'the runs to write')
      .description('write runs as TensorBoard event files: DIR/RUN/events.out.tfevents.* (open with `tensorboard --logdir DIR`)'),
  )
    .option('--out <dir>', 'the TensorBoard log folder')
    .option('--follow', 'keep appending as the runs train, until every run has stopped (or Ctrl-C)')
    .option('--keep-following', 'with --follow: go on after the runs stopped (a resume continues them), until Ctrl-C')
    .action(async (runIds: string[], flags: { store?: string; json?: boolean; out?: string; follow?: boolean; keepFollowing?: boolean }) => {
      const out = makeOutput(Boolean(flags.json));
      if (!flags.out) throw new UsageError('--out DIR is required: the folder to open with `tensorboard --logdir DIR`');
      if (flags.keepFollowing && !flags.follow) throw new UsageError('--keep-following goes with --follow');
      const { writeTensorBoard } = await import('../../tensorboard/write.js');
      const controller = new AbortController();
      const onSignal = () => controller.abort();
      if (flags.follow) {
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
        out.info(`following ${runIds.join(', ')} (Ctrl-C to stop)`);
      }
      try {
        const result = await writeTensorBoard(runIds, {
          store: flags.store,
          out: flags.out,
          follow: flags.follow,
          keepFollowing: flags.keepFollowing,
          signal: controller.signal,
          onWarning: (m) => out.warn(m),
        });
        out.result(result, () =>
          [...result.runs.map((r) => `${r.runId}: ${r.scalars} scalars up to event ${r.lastSeq} → ${r.file}`), `open with: tensorboard --logdir ${result.out}`].join('\n'),
        );
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
