// `retrace runs`, `retrace log`, `retrace state`: read-only, usable while a run trains.
import type { Command } from 'commander';
import { encodeRecord, type LogRecord } from '../../log/events.js';
import { withStore } from '../../run/common.js';
import { describeRun, listRuns, readLog, showState, type RunListing } from '../../run/inspect.js';
import { PointError, POINT_FORMS } from '../../run/points.js';
import { UnknownRunError } from '../../log/errors.js';
import { makeOutput, UsageError } from '../output.js';
import { formatSchedule } from '../../run/schedule.js';
import { commonFlags } from './index.js';

function lineageTree(runs: RunListing[]): string {
  if (runs.length === 0) return 'no runs yet: start one with `retrace train`';
  const byParent = new Map<string | null, RunListing[]>();
  const ids = new Set(runs.map((r) => r.runId));
  for (const r of runs) {
    const key = r.parent && ids.has(r.parent.runId) ? r.parent.runId : null;
    byParent.set(key, [...(byParent.get(key) ?? []), r]);
  }
  const lines: string[] = [];
  const walk = (parent: string | null, prefix: string) => {
    const children = byParent.get(parent) ?? [];
    children.forEach((r, i) => {
      const last = i === children.length - 1;
      const branchMark = parent === null ? '' : last ? '└─ ' : '├─ ';
      const from = r.parent ? ` @${r.parent.point}${ids.has(r.parent.runId) ? '' : ` of ${r.parent.runId} (removed)`}` : '';
      const best = r.bestMetric !== null ? ` best ckpt ${r.bestCheckpoint} (${r.bestMetric.toPrecision(4)})` : '';
      const status = r.error ? `unreadable: ${r.error}` : `${r.state}${r.stopReason ? ` (${r.stopReason})` : ''} step ${r.step}${best}`;
      const liveness = r.liveness === 'live' ? '  [live]' : r.liveness === 'crashed' ? `  [crashed: no process holds it; \`retrace resume ${r.runId}\`]` : '';
      lines.push(`${prefix}${branchMark}${r.runId}${from}  ${status}${liveness}`);
      walk(r.runId, parent === null ? prefix : prefix + (last ? '   ' : '│  '));
    });
  };
  walk(null, '');
  return lines.join('\n');
}

function describeRecord(r: LogRecord): string {
  const d = r.data as Record<string, unknown>;
  switch (r.type) {
    case 'step.finished':
      return `step ${r.data.step} loss ${r.data.loss} lr ${r.data.lr}`;
    case 'eval.finished':
      return `eval at step ${r.data.step}: val loss ${r.data.valLoss} acc ${r.data.valAccuracy}`;
    case 'checkpoint.committed':
      return `checkpoint ${r.data.kind === 'interrupt' ? 'int:' : ''}${r.data.index} (${r.data.kind}) at step ${r.data.step} weights ${r.data.weightsHash.slice(0, 16)}`;
    case 'state.changed':
      return `${r.data.from} → ${r.data.to} (by event ${r.data.cause}, ${r.data.causeType})`;
    case 'run.created':
      return `created: ${r.data.dataset.name} ${r.data.model.spec} ${r.data.optimizer} seed ${r.data.seed} on ${r.data.backend.name}${r.data.parent ? ` from ${r.data.parent.runId}@${r.data.parent.point}` : ''}`;
    default:
      return JSON.stringify(d);
  }
}

export function registerInspect(program: Command): void {
  commonFlags(program.command('runs').description('all runs as a lineage tree')).action(async (flags: { store?: string; json?: boolean }) => {
    const out = makeOutput(Boolean(flags.json));
    const runs = await listRuns({ store: flags.store });
    out.result(
      runs.map((r) =>
        r.error === null
          ? { runId: r.runId, parent: r.parent, state: r.state, stopReason: r.stopReason, step: r.step, error: null, liveness: r.liveness }
          : // Unreadable: nothing is known about its state; say so instead of "idle, step 0".
            { runId: r.runId, parent: r.parent, state: null, stopReason: null, step: null, error: r.error, liveness: r.liveness },
      ),
      () => lineageTree(runs),
    );
  });

  commonFlags(program.command('log').argument('<run>').description("a run's events (NDJSON with --json)"))
    .option('--from <point>', `first event: ${POINT_FORMS}`)
    .option('--to <point>', `last event: ${POINT_FORMS}`)
    .option('--type <types>', 'only events of these types, comma-separated (e.g. checkpoint.committed)')
    .action(async (runId: string, flags: { store?: string; json?: boolean; from?: string; to?: string; type?: string }) => {
      const query = { from: flags.from, to: flags.to, types: flags.type?.split(',').map((t) => t.trim()) };
      await withStore({ store: flags.store }, async (store) => {
        for await (const r of readLog(store, runId, query)) {
          process.stdout.write(flags.json ? `${JSON.stringify(encodeRecord(r))}\n` : `${String(r.seq).padStart(6)}  ${r.at}  ${r.type.padEnd(20)} ${describeRecord(r)}\n`);
        }
      });
    });

  commonFlags(program.command('state').argument('<run>').description('the machine state, metrics and nearest checkpoint at any event'))
    .option('--at <point>', `${POINT_FORMS} (default: the last event)`)
    .action(async (runId: string, flags: { store?: string; json?: boolean; at?: string }) => {
      const out = makeOutput(Boolean(flags.json));
      let view;
      try {
        view = await showState(runId, { store: flags.store, at: flags.at });
      } catch (err) {
        // A run whose log cannot be read: --json still carries the facts, as `runs --json` does
        // (then the one-line error on stderr and exit 1).
        if (flags.json && !(err instanceof PointError) && !(err instanceof UnknownRunError)) {
          const listing = await withStore({ store: flags.store }, (store) => describeRun(store, runId)).catch(() => null);
          if (listing?.error) {
            process.stdout.write(JSON.stringify({ runId, parent: listing.parent, state: null, stopReason: null, step: null, error: listing.error, liveness: listing.liveness }) + '\n');
          }
        }
        throw err;
      }
      const { around: _around, ...rest } = view;
      void _around;
      out.result(rest, () => {
        const c = view.context;
        const ev = view.metrics.evaluations.at(-1);
        return [
          `run ${runId} at event ${view.seq}: ${view.state}${view.stopReason ? ` (${view.stopReason})` : ''}` +
            (c.exported && view.state !== 'exported' ? `, exported ${c.exported.kind === 'interrupt' ? 'int:' : 'checkpoint '}${c.exported.checkpoint} to ${c.exported.out}` : '') +
            (view.resumable && view.liveness !== 'crashed' ? ` (resumable: retrace resume ${runId})` : ''),
          `now: ${view.liveness === 'live' ? 'live (a process holds it)' : view.liveness === 'crashed' ? `crashed (not stopped and no process holds it: \`retrace resume ${runId}\`)` : 'not running'}`,
          `step ${view.step} of ${view.schedule.totalSteps}, examples seen ${view.examplesSeen}, learning rate ${view.lr}`,
          formatSchedule(view.schedule),
          `last loss ${view.metrics.lastLoss ?? '-'}${ev ? `, last evaluation at step ${ev.step}: val loss ${ev.valLoss} acc ${ev.valAccuracy}` : ''}`,
          `best checkpoint ${view.best ? `${view.best.checkpoint} (step ${view.best.step}, ${view.best.monitor === 'valAccuracy' ? 'val accuracy' : 'val loss'} ${view.best.metric ?? '-'})` : 'none'}; evaluations since improvement ${c.sinceImprovement}, plateau wait ${c.plateauWait}, cooldown ${c.cooldownLeft}`,
          `nearest checkpoint: ${view.nearestCheckpoint ? `${view.nearestCheckpoint.name} (${view.nearestCheckpoint.kind}${view.nearestCheckpoint.kind === 'interrupt' ? ', not evaluated' : ''}) at step ${view.nearestCheckpoint.step}, event ${view.nearestCheckpoint.seq}` : 'none'}`,
        ].join('\n');
      });
    });
}
