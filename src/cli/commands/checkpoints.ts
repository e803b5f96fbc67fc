// `retrace checkpoints RUN`: every checkpoint (ckpt:K and int:N) with step, kind, metrics and weightsHash.
import type { Command } from 'commander';
import { makeOutput } from '../output.js';
import { commonFlags } from './index.js';

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toPrecision(4) : String(x);
}

export function registerCheckpoints(program: Command): void {
  commonFlags(program.command('checkpoints').argument('<run>').description('every checkpoint of a run: step, kind, metrics, weightsHash')).action(
    async (runId: string, flags: { store?: string; json?: boolean }) => {
      const out = makeOutput(Boolean(flags.json));
      const { listCheckpoints } = await import('../../run/checkpoints.js');
      const list = await listCheckpoints(runId, { store: flags.store });
      out.result(list, () =>
        [
          `${'checkpoint'.padEnd(10)} ${'kind'.padEnd(9)} ${'step'.padStart(7)} ${'val loss'.padStart(10)} ${'val acc'.padStart(8)}  weightsHash`,
          ...list.map(
            (c) =>
              `${(c.name + (c.best ? '*' : '')).padEnd(10)} ${c.kind.padEnd(9)} ${String(c.step).padStart(7)} ` +
              `${(c.metrics ? fmt(c.metrics.valLoss) : 'not evaluated').padStart(10)} ${(c.metrics ? `${(c.metrics.valAccuracy * 100).toFixed(1)}%` : '').padStart(8)}  ${c.weightsHash}`,
          ),
          '* best',
        ].join('\n'),
      );
    },
  );
}
