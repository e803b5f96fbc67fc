// `retrace export RUN [--checkpoint best|last|K|POINT] --out DIR [--force]`.
import type { Command } from 'commander';
import { makeOutput } from '../output.js';
import { addRelocationFlags, relocationFrom } from '../relocate.js';
import { commonFlags } from './index.js';

export function registerExport(program: Command): void {
  addRelocationFlags(commonFlags(program.command('export').argument('<run>').description('write a checkpoint as a TF.js Layers model (model.json + weights)')))
    .option('--checkpoint <point>', 'best, last (of any kind), a checkpoint number K (= ckpt:K), int:N, or step:N (re-executed to, as replay --to does)', 'best')
    .requiredOption('--out <dir>', 'output folder')
    .option('--force', 'replace an existing export in the output folder')
    .action(async (runId: string, flags: Record<string, string | boolean | undefined>) => {
      const out = makeOutput(Boolean(flags.json));
      const { exportRun } = await import('../../run/export.js');
      const relocate = relocationFrom(flags);
      const result = await exportRun(runId, {
        store: flags.store as string | undefined,
        checkpoint: flags.checkpoint as string,
        out: flags.out as string,
        relocate,
        force: Boolean(flags.force),
        onWarning: (m) => out.warn(m),
      });
      const what = result.checkpointName === null ? `step ${result.step} (re-executed)` : `checkpoint ${result.checkpointName} (${result.checkpointKind === 'interrupt' ? 'interrupt, not evaluated' : result.checkpointKind}, step ${result.step})`;
      out.result(result, () => `exported run ${runId} ${what} to ${result.out}\nweightsHash: ${result.weightsHash}\nload it in Node with retrace's loadExport(${JSON.stringify(result.out)}) (plain @tensorflow/tfjs), or with tf.loadLayersModel and tf.io.fromMemory (see the README)`);
    });
}
