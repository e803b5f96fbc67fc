// `retrace branch RUN@POINT [overrides…]`: takes the same flags as train.
import type { Command } from 'commander';
import { addConfigFlags, configFromFlags } from '../config-flags.js';
import { commonFlags } from './index.js';
import { runWithProgress, tensorboardFlag } from './train.js';

export function registerBranch(program: Command): void {
  const cmd = tensorboardFlag(commonFlags(
    program
      .command('branch')
      .argument('<run@point>', 'RUN@POINT: best, last, ckpt:K, int:N, step:N or an event number')
      .description('start a new run from the exact state of another run at a point, with overrides'),
  ));
  addConfigFlags(cmd).action(async (target: string, flags: Record<string, unknown>) => {
    const overrides = await configFromFlags(flags);
    await runWithProgress(flags, `branch ${target}`, async (hooks) =>
      (await import('../../run/branch.js')).branch(target, {
        store: flags.store as string | undefined,
        overrides,
        signal: hooks.signal,
        onRecord: hooks.onRecord,
        onWarning: hooks.onWarning,
        command: 'branch',
      }),
    );
  });
}
