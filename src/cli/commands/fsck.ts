// `retrace fsck [RUN] [--store DIR] [--json]`: checks every record, blob, sequence and machine
// transition of a run (or of every run and blob of the store) and reports every problem. Changes
// nothing. Exit 0 when there is none, 1 otherwise.
import type { Command } from 'commander';
import { fsck, formatFsck } from '../../chaos/fsck.js';
import { storeDir } from '../../run/common.js';
import { makeOutput } from '../output.js';
import { commonFlags } from './index.js';

export function registerFsck(program: Command): void {
  commonFlags(
    program
      .command('fsck')
      .argument('[run]', 'check only this run (and the blobs it names)')
      .description('verify checksums, blobs, sequence continuity and machine transitions; reports every problem, changes nothing'),
  ).action(async (runId: string | undefined, flags: { store?: string; json?: boolean }) => {
    const out = makeOutput(Boolean(flags.json));
    const report = await fsck(storeDir(flags.store), { runId });
    out.result(report, () => formatFsck(report));
    if (!report.ok) {
      const first = report.problems[0]!;
      const more = report.problems.length > 1 ? ` (and ${report.problems.length - 1} more problem(s))` : '';
      process.stderr.write(`retrace: fsck found ${report.problems.length} problem(s): ${first.message}${more}\n`);
      process.exitCode = 1;
    }
  });
}
