// The operations round of `retrace chaos`: after the training kills, SIGKILL `export --force` and
// `rm --recursive` at each of their kill points (kill-points.ts: export-*, rm-*) on a copy of the
// reference store, and check that every kill left the old state or the new one, never a mix, and
// that the next command finished or undid the partial work:
// - export: `--out` holds the old export byte for byte, the new one, or (between its two renames)
//   nothing; the next `export --force` succeeds, leaves the new export and nothing beside it;
// - rm: the next command lists the whole subtree or none of it, `tmp/` holds no trash, fsck is clean.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { fsck } from './fsck.js';
import { errorLine, runCli, type CliPaths, type CliResult } from './child.js';
import type { Rng } from './kill-plan.js';
import type { ChaosProblem } from './observe.js';
import { EXPORT_KILL_POINTS, RM_KILL_POINTS } from './kill-points.js';

export interface OpsRoundOptions {
  /** The reference run's store (not changed: the round works on a copy). */
  refStore: string;
  refRunId: string;
  /** Where the round's stores and exports go. */
  dir: string;
  rng: Rng;
  cli?: CliPaths;
  cwd?: string;
  timeoutMs?: number;
  log: (line: string) => void;
}

export interface OpsRoundResult {
  /** SIGKILLs that hit an rm or export at its point. */
  kills: number;
  killsByPoint: Record<string, number>;
  /** Planned points the process never reached. */
  missed: number;
  problems: ChaosProblem[];
  /** Why (part of) the round could not run: a setup command (export, branch) failed; else null. */
  skipped: string | null;
}

type Files = Map<string, Buffer>;

async function filesIn(dir: string): Promise<Files | null> {
  const out: Files = new Map();
  const walk = async (d: string): Promise<void> => {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.set(path.relative(dir, p), await fsp.readFile(p));
    }
  };
  try {
    await walk(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return out;
}

function same(a: Files | null, b: Files | null): boolean {
  if (!a || !b) return a === b;
  return a.size === b.size && [...a].every(([p, bytes]) => b.get(p)?.equals(bytes) === true);
}

/** Runs the round. What a kill left is a problem; a setup command that fails skips its half of the round (`skipped`). */
export async function chaosOperations(opts: OpsRoundOptions): Promise<OpsRoundResult> {
  const result: OpsRoundResult = { kills: 0, killsByPoint: {}, missed: 0, problems: [], skipped: null };
  const run = (args: string[], kill?: { point: (typeof EXPORT_KILL_POINTS)[number] | (typeof RM_KILL_POINTS)[number]; n: number }) =>
    runCli(args, { cli: opts.cli, cwd: opts.cwd, timeoutMs: opts.timeoutMs, kill: kill ? { kind: 'hook', ...kill } : null });
  const must = async (args: string[]): Promise<void> => {
    const r = await run(args);
    if (r.code !== 0) throw new Error(`chaos operations round: \`retrace ${args.join(' ')}\` exited ${r.code ?? r.signal}: ${errorLine(r)}`);
  };
  const ref = opts.refRunId;
  const base = path.join(opts.dir, 'store');
  await fsp.rm(opts.dir, { recursive: true, force: true });
  await fsp.mkdir(opts.dir, { recursive: true });
  await fsp.cp(opts.refStore, base, { recursive: true });
  const problem = (kind: ChaosProblem['kind'], what: string, message: string) => result.problems.push({ runId: ref, kind, message: `${what}: ${message}` });
  const hit = (point: string, r: { signal: string | null; killedBy: string | null }): boolean => {
    if (r.signal === 'SIGKILL' && r.killedBy === 'hook') {
      result.kills += 1;
      result.killsByPoint[point] = (result.killsByPoint[point] ?? 0) + 1;
      return true;
    }
    result.missed += 1;
    return false;
  };

  try {
    await exportRound(opts, base, run, must, problem, hit);
  } catch (err) {
    result.skipped = (err as Error).message;
  }
  try {
    await rmRound(opts, base, run, must, problem, hit);
  } catch (err) {
    result.skipped ??= (err as Error).message;
  }
  return result;
}

type Run = (args: string[], kill?: { point: (typeof EXPORT_KILL_POINTS)[number] | (typeof RM_KILL_POINTS)[number]; n: number }) => Promise<CliResult>;
type Problem = (kind: ChaosProblem['kind'], what: string, message: string) => void;

/** export: the old export is checkpoint 0, the new one the last checkpoint. */
async function exportRound(opts: OpsRoundOptions, base: string, run: Run, must: (args: string[]) => Promise<void>, problem: Problem, hit: (point: string, r: CliResult) => boolean): Promise<void> {
  const ref = opts.refRunId;
  const exportsDir = path.join(opts.dir, 'exports');
  await must(['export', ref, '--checkpoint', '0', '--out', path.join(exportsDir, 'old'), '--store', base, '--json']);
  await must(['export', ref, '--checkpoint', 'last', '--out', path.join(exportsDir, 'new'), '--store', base, '--json']);
  const oldFiles = await filesIn(path.join(exportsDir, 'old'));
  const newFiles = await filesIn(path.join(exportsDir, 'new'));
  for (const point of EXPORT_KILL_POINTS) {
    const out = path.join(exportsDir, `killed-${point}`);
    const what = `export --force killed at ${point}:1`;
    // After the first kill this is no longer setup: a failure here is a problem, not a skip.
    const first = await run(['export', ref, '--checkpoint', '0', '--out', out, '--store', base, '--json']);
    if (first.code !== 0) {
      problem('process', what, `the export before it exited ${first.code ?? first.signal}: ${errorLine(first)}`);
      continue;
    }
    const r = await run(['export', ref, '--checkpoint', 'last', '--out', out, '--force', '--store', base, '--json'], { point, n: 1 });
    if (!hit(point, r)) continue;
    const seen = await filesIn(out);
    const state = seen === null ? 'missing' : same(seen, oldFiles) ? 'old' : same(seen, newFiles) ? 'new' : 'mixed';
    if (state === 'mixed') problem('mixed-export', what, `${out} holds neither the old export nor the new one`);
    opts.log(`  ${what}: the folder held the ${state === 'missing' ? 'old export aside (none in place)' : `${state} export`}`);
    const next = await run(['export', ref, '--checkpoint', 'last', '--out', out, '--force', '--store', base, '--json']);
    if (next.code !== 0) problem('process', what, `the next export exited ${next.code ?? next.signal}: ${errorLine(next)}`);
    else if (!same(await filesIn(out), newFiles)) problem('mixed-export', what, `after the next export ${out} is not the new export`);
    const beside = (await fsp.readdir(exportsDir)).filter((n) => n.startsWith(`killed-${point}.`));
    if (beside.length > 0) problem('leftover', what, `left ${beside.join(', ')} beside ${out} after the next export`);
  }

}

/** rm: a subtree of three runs (the reference and two short branches), removed children first. */
async function rmRound(opts: OpsRoundOptions, base: string, run: Run, must: (args: string[]) => Promise<void>, problem: Problem, hit: (point: string, r: CliResult) => boolean): Promise<void> {
  const ref = opts.refRunId;
  await must(['branch', `${ref}@last`, '--run-id', `${ref}-b1`, '--stop-point', '0.1', '--checkpoints', '1', '--store', base, '--json']);
  await must(['branch', `${ref}-b1@last`, '--run-id', `${ref}-b2`, '--stop-point', '0.1', '--checkpoints', '1', '--store', base, '--json']);
  const subtree = [ref, `${ref}-b1`, `${ref}-b2`].sort();
  for (const point of RM_KILL_POINTS) {
    const n = point === 'rm-plan-before' ? 1 : opts.rng.int(1, 3);
    const store = path.join(opts.dir, `rm-${point}-${n}`);
    const what = `rm --recursive killed at ${point}:${n}`;
    await fsp.cp(base, store, { recursive: true });
    const r = await run(['rm', ref, '--recursive', '--store', store, '--json'], { point, n });
    if (!hit(point, r)) continue;
    const next = await run(['runs', '--store', store, '--json']);
    const listed = (() => {
      const lines = next.stdout.split('\n').filter((l) => l.startsWith('['));
      try {
        return (JSON.parse(lines.at(-1) ?? 'null') as Array<{ runId: string }> | null)?.map((x) => x.runId).sort() ?? null;
      } catch {
        return null;
      }
    })();
    if (next.code !== 0 || !listed) problem('process', what, `the next command (runs) exited ${next.code ?? next.signal}: ${errorLine(next)}`);
    else if (!(listed.length === 0 || JSON.stringify(listed) === JSON.stringify(subtree))) problem('partial-rm', what, `the next command lists ${listed.join(', ')}: part of the subtree`);
    const trash = (await fsp.readdir(path.join(store, 'tmp'))).filter((t) => t.startsWith('remove-'));
    if (trash.length > 0) problem('leftover', what, `tmp/ still holds ${trash.join(', ')} after the next command`);
    const report = await fsck(store);
    for (const p of report.problems) problem('fsck', what, p.message);
    opts.log(`  ${what}: ${listed?.length === 0 ? 'removed' : 'kept'} (${listed?.join(', ') ?? '?'})`);
  }
}
