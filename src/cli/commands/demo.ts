// `retrace demo` (npm start): a real run on MNIST with the MLP on wasm, then what to try next.
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { newRunId, storeDir } from '../../run/common.js';
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

/** Where the demo writes: --store, else $RETRACE_STORE, else a folder in the OS temp folder, so
 * `npm start` in a checkout leaves nothing in it. */
export function demoStore(explicit: string | undefined, env = process.env): string {
  return explicit ? path.resolve(explicit) : env.RETRACE_STORE ? path.resolve(env.RETRACE_STORE) : path.join(tmpdir(), 'retrace-demo');
}

/** A path for a shell command line: quoted when it has characters a shell would split or expand. */
function shellPath(p: string): string {
  return /^[\w@%+=:,./-]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`;
}

export function registerDemo(program: Command): void {
  commonFlags(program.command('demo').description('train MNIST with the MLP on wasm (about a minute), then show what to do next')).action(
    async (flags: { store?: string; json?: boolean }) => {
      const runId = newRunId().replace(/^run-/, 'demo-');
      const dir = demoStore(flags.store);
      if (!flags.json) process.stdout.write(`store: ${dir}\n`);
      const summary = await runWithProgress(flags, 'demo', async (hooks) =>
        (await import('../../run/train.js')).train({ store: dir, config: { ...DEMO_CONFIG, runId }, signal: hooks.signal, onRecord: hooks.onRecord, command: 'demo' }),
      );
      if (flags.json) return;
      // Other commands default to $RETRACE_STORE or ./.retrace: name the demo's store unless it is that.
      const store = dir === storeDir() ? '' : ` --store ${shellPath(dir)}`;
      const r = `npx retrace`;
      const hints: Array<[string, string]> = [
        [`${r} runs${store}`, 'the runs as a lineage tree'],
        [`${r} state ${runId}${store}`, 'machine state, metrics, best checkpoint'],
        [`${r} log ${runId} --from 0 --to 30${store}`, 'the first events'],
        [`${r} replay ${runId} --verify${store}`, 're-execute it, compare every step bit for bit'],
        [`${r} branch ${runId}@best --lr 0.0003 --stop-point 2${store}`, 'fine-tune from the best checkpoint'],
        [`${r} export ${runId} --out ${shellPath(path.join(tmpdir(), `${runId}-model`))}${store}`, "a TF.js model (retrace's loadExport, or tf.loadLayersModel)"],
        [`${r} ui${store}`, 'look at it in the browser'],
      ];
      if (summary.stopReason === 'interrupted') hints.unshift([`${r} resume ${runId}${store}`, 'continue where it stopped']);
      const width = Math.max(...hints.map(([c]) => c.length));
      process.stdout.write(`\nWhat next:\n${hints.map(([c, d]) => `  ${c.padEnd(width)}  # ${d}`).join('\n')}\n`);
    },
  );
}
