// `retrace rm`, `retrace gc`, `retrace du`.
import type { Command } from 'commander';
import { blobRefs } from '../../log/events.js';
import { collectGarbage, diskUsage, type DiskUsage, type GcResult } from '../../log/gc.js';
import { withStore } from '../../run/common.js';
import { removeRun } from '../../run/inspect.js';
import { parseDurationMs } from '../duration.js';
import { makeOutput } from '../output.js';
import { formatBytes, table } from '../table.js';
import { commonFlags } from './index.js';

/** `du` for people: a row per run, then what is shared, unreferenced and in all. */
export function duTable(usage: DiskUsage): string {
  if (usage.runs.length === 0 && usage.unreferencedBlobs === 0) return `no runs; ${formatBytes(usage.totalBytes)} on disk in all`;
  const rows = usage.runs.map((r) => [
    r.runId,
    formatBytes(r.logBytes),
    formatBytes(r.exclusiveBlobBytes),
    formatBytes(r.sharedBlobBytes),
    String(r.blobs),
    r.missingBlobs.length > 0 ? `${r.missingBlobs.length} missing (run \`retrace fsck ${r.runId}\`)` : '',
  ]);
  // Allocated blocks, as `du` of the files says: a small file takes a whole block.
  const lines = [table(['run', 'log on disk', 'own blobs on disk', 'shared blobs on disk', 'blobs', ''], rows, [1, 2, 3, 4])];
  const sharedBytes = usage.shared.reduce((a, b) => a + b.bytes, 0);
  lines.push('');
  lines.push(`shared between runs (counted once): ${usage.shared.length} blob(s), ${formatBytes(sharedBytes)}`);
  lines.push(`unreferenced: ${usage.unreferencedBlobs} blob(s), ${formatBytes(usage.unreferencedBlobBytes)}${usage.unreferencedBlobs > 0 ? ' (`retrace gc` frees them)' : ''}`);
  lines.push(`total: ${formatBytes(usage.totalBytes)} on disk (${formatBytes(usage.totalContentBytes)} of file contents)`);
  return lines.join('\n');
}

/** `gc` for people: what it deleted, what it kept and why. */
export function gcReport(result: GcResult, graceSeconds: number): string {
  const rows = [
    ['deleted', String(result.deleted.length), `unreferenced by any run, older than --grace ${graceSeconds} s: ${formatBytes(result.freedBytes)} freed`],
    ['kept', String(result.referenced), `referenced by the ${result.runs} run(s) of the store`],
    ['kept', String(result.keptYoung.length), `unreferenced but younger than --grace ${graceSeconds} s (a running training writes blobs before its log names them)`],
  ];
  return table(['', 'blobs', 'why'], rows, [1]);
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
      out.result(result, () => gcReport(result, graceMs / 1000));
    });

  commonFlags(program.command('du').description('bytes on disk per run (allocated blocks); blobs shared between runs counted once')).action(async (flags: { store?: string; json?: boolean }) => {
    const out = makeOutput(Boolean(flags.json));
    const usage = await withStore({ store: flags.store }, (store) => diskUsage(store, blobRefs));
    out.result(usage, () => duTable(usage));
  });
}
