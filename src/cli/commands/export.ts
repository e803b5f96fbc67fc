// `retrace export RUN [--checkpoint best|last|K] --out DIR`.
import type { Command } from 'commander';
import { makeOutput } from '../output.js';
import { commonFlags } from './index.js';

export function registerExport(program: Command): void {
  commonFlags(program.command('export').argument('<run>').description('write a checkpoint as a TF.js Layers model (model.json + weights)'))
    .option('--checkpoint <which>', 'best, last (of any kind), a checkpoint number, ckpt:K or int:N', 'best')
    .requiredOption('--out <dir>', 'output folder')
    .action(async (runId: string, flags: Record<string, string | boolean | undefined>) => {
      const out = makeOutput(Boolean(flags.json));
      const { exportRun } = await import('../../run/export.js');
      const result = await exportRun(runId, { store: flags.store as string | undefined, checkpoint: flags.checkpoint as string, out: flags.out as string });
      out.result(result, () => `exported run ${runId} checkpoint ${result.checkpointName} (${result.checkpointKind === 'interrupt' ? 'interrupt, not evaluated' : result.checkpointKind}, step ${result.step}) to ${result.out}\nweightsHash: ${result.weightsHash}\nload it with: tf.loadLayersModel(…/model.json)`);
    });
}
