// `retrace demo` (npm start): a real run on MNIST with the MLP on wasm, then what to try next.
import type { Command } from 'commander';
import { newRunId } from '../../run/common.js';
import { commonFlags } from './index.js';
import { runWithProgress } from './train.js';

/** About a minute here: 7,996 training digits, 16 passes, 8 checkpoints, batch 64 → 1,999 steps. */
export const DEMO_CONFIG = {
  dataset: 'mnist',
  model: 'mlp',
  backend: 'wasm',
  batchSize: 64,
  stopPoint: 16,
  checkpoints: 8,
  lr: 0.001,
  warmupSteps: 50,
  seed: 42,
} as const;

export function registerDemo(program: Command): void {
  commonFlags(program.command('demo').description('train MNIST with the MLP on wasm (about a minute), then show what to do next')).action(
    async (flags: { store?: string; json?: boolean }) => {
      const runId = newRunId().replace(/^run-/, 'demo-');
      const summary = await runWithProgress(flags, 'demo', async (hooks) =>
        (await import('../../run/train.js')).train({ store: flags.store, config: { ...DEMO_CONFIG, runId }, signal: hooks.signal, onRecord: hooks.onRecord, command: 'demo' }),
      );
      if (flags.json) return;
      const store = flags.store ? ` --store ${flags.store}` : '';
      const r = `npx retrace`;
      const hints: Array<[string, string]> = [
        [`${r} runs${store}`, 'the runs as a lineage tree'],
        [`${r} state ${runId}${store}`, 'machine state, metrics, best checkpoint'],
        [`${r} log ${runId} --from 0 --to 30${store}`, 'the first events'],
        [`${r} replay ${runId} --verify${store}`, 're-execute it, compare every step bit for bit'],
        [`${r} branch ${runId}@best --lr 0.0003 --stop-point 2${store}`, 'fine-tune from the best checkpoint'],
        [`${r} export ${runId} --out ./demo-model${store}`, 'a TF.js model for tf.loadLayersModel'],
        [`${r} ui${store}`, 'look at it in the browser'],
      ];
      if (summary.stopReason === 'interrupted') hints.unshift([`${r} resume ${runId}${store}`, 'continue where it stopped']);
      const width = Math.max(...hints.map(([c]) => c.length));
      process.stdout.write(`\nWhat next:\n${hints.map(([c, d]) => `  ${c.padEnd(width)}  # ${d}`).join('\n')}\n`);
    },
  );
}
