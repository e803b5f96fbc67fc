// `retrace rm`, `retrace gc`, `retrace du`.
import type { Command } from 'commander';
import { blobRefs } from '../../log/events.js';
import { collectGarbage, diskUsage } from '../../log/gc.js';
import { withStore } from '../../run/common.js';
import { removeRun } from '../../run/inspect.js';
import { parseDurationMs } from '../duration.js';
import { makeOutput } from '../output.js';
import { commonFlags } from './index.js';

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i += 1;
  }
  return `${x.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function registerMaintenance(program: Command): void {
  commonFlags(program.command('rm').argument('<run>').description('remove a run (refuses while it has branches)'))
    .option('--recursive', 'also remove its branches')
    .action(async (runId: string, flags: { store?: string; json?: boolean; recursive?: boolean }) => {
      const out = makeOutput(Boolean(flags.json));
      const removed = await removeRun(runId, { store: flags.store, recursive: flags.recursive });
      out.result({ removed }, () => `removed ${removed.join(', ')}; run \`retrace gc\` to free snapshot bytes nothing references`);
    });

  commonFlags(program.command('gc').description('free snapshot bytes no run references'))
    .option('--grace <duration>', 'also keep unreferenced blobs younger than this: seconds, or with a unit (10m, 2h); writers about to name blobs are protected by their intents regardless', '600')
    .action(async (flags: { store?: string; json?: boolean; grace: string }) => {
      const out = makeOutput(Boolean(flags.json));
      const graceMs = parseDurationMs('--grace', flags.grace);
      const result = await withStore({ store: flags.store }, (store) => collectGarbage(store, blobRefs, { graceMs }));
      out.result(result, () => JSON.stringify(result));
    });

  commonFlags(program.command('du').description('bytes per run; blobs shared between runs counted once')).action(async (flags: { store?: string; json?: boolean }) => {
    const out = makeOutput(Boolean(flags.json));
    const usage = await withStore({ store: flags.store }, (store) => diskUsage(store, blobRefs));
    out.result(usage, () => JSON.stringify(usage, (_k, v) => (typeof v === 'number' && v > 4096 ? `${v} (${bytes(v)})` : v), 2));
  });
}
