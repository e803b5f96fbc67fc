// The crash-safety harness: trains a run with the real CLI (`node bin/retrace.js train …`) as a
// child process in its own process group, SIGKILLs it at moments chosen by a seeded generator,
// checks what the kill left, resumes it (`retrace resume RUN`), kills again, … and finally checks
// that the run ended exactly where an uninterrupted run of the same config ends:
//
//   - after every kill: the run was really interrupted mid-way (its state is not stopped) and its
//     log is readable, gap-free and holds every committed event of the previous kills unchanged;
//   - at the end: the final weightsHash equals the uninterrupted run's, `replay RUN --verify` is
//     identical, no event that was in the log at a kill is missing or changed (those at or below
//     committed.json's seq must never be; the others are counted separately), seqs are gap-free,
//     and fsck finds nothing.
//
// Kills are of two kinds. Timer kills: the harness itself sends SIGKILL to the child's process
// group after a seeded delay. Hook kills: the child preloads kill-hook.ts (NODE_OPTIONS=--import)
// and SIGKILLs itself at a named point of the write protocol (after step N, between a checkpoint's
// blobs and its event, between the synced event and committed.json, …). Both are real SIGKILLs.
//
// Concurrent gc (on by default): about one train/resume in three has `retrace gc --grace 0` run
// on the same store while it trains (after planting a few old orphan blobs, so gc has work), half
// of those SIGKILLed at one of gc's own kill points
// (between its mark and its sweep, between unlinks, …). Resumes after a kill between a checkpoint's
// blobs and its event reuse exactly the blobs such a gc is deciding about. The fsck after every kill
// and a last gc + fsck at the end of every run check that gc never took a blob the run names.
// Used by test/chaos/kill-resume.test.ts and by `retrace chaos`. This module is the loop; its
// parts are their own modules: child.ts (running the CLI as a child and killing it), kill-plan.ts
// (the seeded kills), observe.ts (reading a run as a kill left it and comparing), reference.ts
// (the uninterrupted run), ops-round.ts (kills inside export and rm). It re-exports their API.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UnknownRunError } from '../log/errors.js';
import { errorLine, jsonResult, MARKER, runCli, type CliPaths, type CliResult } from './child.js';
import { fsck } from './fsck.js';
import { describePlan, planGc, planKill, Rng } from './kill-plan.js';
import { KILL_POINTS } from './kill-points.js';
import { compareWithKill, snapshotRun, type ChaosProblem, type KillCheck } from './observe.js';
import { chaosOperations } from './ops-round.js';
import { runReference, trainReference, type Reference, type RunSummaryJson } from './reference.js';

export { defaultCli, errorLine, hookEnv, jsonResult, killAllChildren, packageRoot, runCli, type CliPaths, type CliResult, type RunCliOptions } from './child.js';
export { describePlan, planKill, randomSeed, Rng, type KillPlan } from './kill-plan.js';
export { snapshotRun, type ChaosProblem, type RunSnapshot } from './observe.js';
export { trainReference, type Reference, type RunSummaryJson } from './reference.js';

export interface KillRecord {
  runId: string;
  command: 'train' | 'branch' | 'resume';
  plan: string;
  by: 'timer' | 'hook';
  /** State the kill left (never stopped for a kill that counts). */
  state: string;
  step: number;
  committedSeq: number;
  lastSeq: number;
}

export interface ChaosSummary {
  seed: number;
  config: Record<string, unknown>;
  store: string;
  reference: { runId: string; weightsHash: string | null; state: string; stopReason: string | null; step: number; seconds: number };
  runs: number;
  /** Real mid-run SIGKILLs (the state each left was not stopped). */
  kills: number;
  killsByPoint: Record<string, number>;
  /** Kills that came too late (the process had finished or was finishing its stopped run). */
  lateKills: number;
  /** Planned hook points the process never reached (it finished first). */
  missedPlans: number;
  resumes: number;
  /** Runs killed before their run.created was committed (started again with train). */
  restartedEmpty: number;
  divergences: number;
  hashMismatches: number;
  replayFailures: number;
  lostCommittedEvents: number;
  /** Events past committed.json's seq that were in the log at a kill and later missing or changed. */
  lostUncommittedEvents: number;
  gaps: number;
  fsckProblems: number;
  /** `retrace gc` runs alongside a trainer that completed, and those SIGKILLed at a gc kill point. */
  gcRuns: number;
  gcKills: number;
  /** SIGKILLs inside `rm` and `export` in the operations round (ops-round.ts), by point. */
  operationKills: number;
  operationKillsByPoint: Record<string, number>;
  /** Why the operations round did not run (its setup failed), or null. */
  operationsSkipped: string | null;
  problems: ChaosProblem[];
  seconds: number;
  ok: boolean;
}

export interface ChaosOptions {
  /** The train config (same keys as `train --config`). */
  config: Record<string, unknown>;
  /** A folder of stores: the reference and every chaos run get a store of their own in it. */
  storeDir: string;
  /** Total mid-run kills to reach. */
  kills: number;
  seed: number;
  /** Kills per run, drawn in [min, max] (default [4, 8]). */
  killsPerRun?: [number, number];
  cli?: CliPaths;
  cwd?: string;
  /** Progress lines for people. */
  log?: (line: string) => void;
  /** Per child process (default 10 minutes). */
  timeoutMs?: number;
  /** Skip `replay --verify` of each run (default: run it). */
  skipReplay?: boolean;
  /** Run-id prefix (default chaos-<seed>). */
  prefix?: string;
  /** Check after every kill that earlier kills' committed events are still there and fsck is clean (default true). */
  checkEveryKill?: boolean;
  /** Every Nth run is a branch of the reference (from its checkpoint 1) instead of a train, so
   * kills also land while a branch records its start state and creation (default 3; 0: never). */
  branchEvery?: number;
  /** Run `retrace gc --grace 0` alongside some trainers, sometimes killed inside gc (default true). */
  concurrentGc?: boolean;
  /** After the training kills, kill `export` and `rm` at each of their points (default true). */
  operations?: boolean;
}

/**
 * Old unreferenced blobs (seeded random bytes, named by their SHA-256 as fsck checks), so that a
 * concurrent gc always has something to condemn and unlink and its kill points are reached.
 */
async function plantOrphans(store: string, rng: Rng, n: number): Promise<void> {
  const old = new Date(Date.now() - 86_400_000);
  for (let i = 0; i < n; i += 1) {
    const bytes = Buffer.from(Array.from({ length: 64 + rng.int(0, 64) }, () => rng.int(0, 255)));
    const hash = createHash('sha256').update(bytes).digest('hex');
    const file = path.join(store, 'blobs', hash.slice(0, 2), hash);
    await fsp.mkdir(path.dirname(file), { recursive: true });
    await fsp.writeFile(file, bytes);
    await fsp.utimes(file, old, old);
  }
}

async function writeConfigFile(config: Record<string, unknown>): Promise<{ file: string; cleanup: () => Promise<void> }> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'retrace-chaos-'));
  const { runId: _ignored, ...rest } = config;
  void _ignored;
  const file = path.join(dir, 'config.json');
  await fsp.writeFile(file, JSON.stringify(rest, null, 2));
  return { file, cleanup: () => fsp.rm(dir, { recursive: true, force: true }) };
}

/** One run through kills and resumes to its end; returns its kills and problems. */
async function chaosRun(args: {
  runId: string;
  targetKills: number;
  rng: Rng;
  /** Draws the concurrent gcs (planGc). */
  gcRng: Rng;
  ref: Reference;
  /** The command that creates the run (train, or branch of the reference), without run id and store. */
  create: string[];
  opts: ChaosOptions;
  summary: ChaosSummary;
}): Promise<void> {
  const { runId, rng, ref, opts, summary } = args;
  const log = opts.log ?? (() => {});
  // Each run has a store of its own: blobs are content-addressed, so in a shared store a run that
  // repeats the reference finds every blob already there and never writes (or crashes in) one.
  const store = path.join(opts.storeDir, runId);
  const problems = summary.problems;
  const counts = { lostCommitted: 0, lostUncommitted: 0 };
  const kills: KillCheck[] = [];
  let started = false; // run.created committed
  let fromStep = 0;
  let finalSummary: RunSummaryJson | null = null;
  let killsHere = 0;
  let attempts = 0;
  const trainArgs = [...args.create, '--run-id', runId, '--store', store, '--json'];
  const creating = args.create[0] as 'train' | 'branch';
  const resumeArgs = ['resume', runId, '--store', store, '--json'];
  const gcArgs = ['gc', '--grace', '0', '--store', store, '--json'];
  /** A gc alongside the trainer (or null), started after its seeded delay. */
  const startGc = (plan: ReturnType<typeof planGc>): Promise<CliResult | null> | null =>
    plan === null
      ? null
      : new Promise<void>((resolve) => setTimeout(resolve, plan.delayMs)).then(async () => {
          // Not before the trainer made the store: orphans planted in its folder first would make
          // it "a folder with other files" that train refuses to turn into a store.
          if (!existsSync(path.join(store, 'store.json'))) return null;
          await plantOrphans(store, args.gcRng, 3);
          return runCli(gcArgs, { cli: opts.cli, cwd: opts.cwd, kill: plan.kill, timeoutMs: opts.timeoutMs });
        });
  const endGc = (g: CliResult | null, label: string): void => {
    if (g === null) return;
    if (g.signal === 'SIGKILL' && g.killedBy === 'hook') summary.gcKills += 1;
    else if (g.code === 0) summary.gcRuns += 1;
    else problems.push({ runId, kind: 'gc', message: `${label}: gc exited ${g.code ?? g.signal}: ${errorLine(g)}` });
  };

  while (killsHere < args.targetKills && attempts < args.targetKills * 3) {
    attempts += 1;
    const command = started ? 'resume' : creating;
    const plan = planKill(rng, { command: started ? 'resume' : 'train', ref, fromStep, index: attempts - 1, branch: creating === 'branch' });
    if (command === 'resume') summary.resumes += 1;
    const gc = startGc(opts.concurrentGc === false ? null : planGc(args.gcRng));
    const r = await runCli(started ? resumeArgs : trainArgs, {
      cli: opts.cli,
      cwd: opts.cwd,
      kill: plan,
      marker: MARKER,
      timeoutMs: opts.timeoutMs,
    });
    endGc(gc && (await gc), `alongside ${command} (${describePlan(plan)})`);
    if (r.signal !== 'SIGKILL' || !r.killedBy) {
      if (r.code === 0) {
        // It finished before the planned kill: the run is done.
        summary.missedPlans += 1;
        finalSummary = jsonResult<RunSummaryJson>(r);
        log(`  ${runId}: ${command} finished before ${describePlan(plan)}`);
        break;
      }
      const msg = errorLine(r);
      problems.push({ runId, kind: /diverged from the log/.test(msg) ? 'divergence' : 'process', message: `${command} (planned kill ${describePlan(plan)}) exited ${r.code ?? r.signal}: ${msg}` });
      if (/diverged from the log/.test(msg)) summary.divergences += 1;
      return;
    }
    const snap = await snapshotRun(store, runId);
    if (snap.error) {
      problems.push({ runId, kind: 'unreadable', message: `after ${describePlan(plan)} during ${command}: ${snap.error}` });
      return;
    }
    // Gap-free by construction of readAll, but say so explicitly.
    snap.records.forEach((text, i) => {
      if ((JSON.parse(text) as { seq: number }).seq !== i) {
        summary.gaps += 1;
        problems.push({ runId, kind: 'gap', message: `after ${describePlan(plan)}: record ${i} has seq ${(JSON.parse(text) as { seq: number }).seq}` });
      }
    });
    if (opts.checkEveryKill !== false) {
      for (const k of kills) compareWithKill(runId, k.snapshot, snap.records, problems, counts, `after kill ${kills.length + 1} (${describePlan(plan)}), kill ${k.index + 1}'s log`);
      // What the kill left passes fsck as it is (before any resume touches it).
      const report = await fsck(store, { runId }).catch((err: unknown) => {
        if (err instanceof UnknownRunError) return null; // killed before train claimed the run
        throw err;
      });
      for (const p of report?.problems ?? []) {
        summary.fsckProblems += 1;
        problems.push({ runId, kind: 'fsck', message: `after kill ${kills.length + 1} (${describePlan(plan)}): ${p.message}` });
      }
    }
    const record: KillRecord = {
      runId,
      command,
      plan: describePlan(plan),
      by: r.killedBy,
      state: snap.state,
      step: snap.step,
      committedSeq: snap.committedSeq,
      lastSeq: snap.records.length - 1,
    };
    if (snap.state === 'stopped' || snap.state === 'exported') {
      // The run had finished: the kill hit its last moments (closing), not the middle.
      summary.lateKills += 1;
      log(`  ${runId}: late kill (${record.plan}) after the run stopped (${snap.stopReason}) at step ${snap.step}`);
      kills.push({ snapshot: snap, index: kills.length });
      break;
    }
    killsHere += 1;
    summary.kills += 1;
    const key = plan.kind === 'timer' ? `timer(${plan.from})` : plan.point;
    summary.killsByPoint[key] = (summary.killsByPoint[key] ?? 0) + 1;
    kills.push({ snapshot: snap, index: kills.length });
    log(`  ${runId}: kill ${killsHere}/${args.targetKills} during ${command} (${record.plan}, by ${record.by}): ${snap.state} at step ${snap.step}, events 0..${record.lastSeq}, committed ${snap.committedSeq}`);
    if (snap.state === 'empty') {
      started = false;
      summary.restartedEmpty += 1;
    } else {
      started = true;
      fromStep = snap.checkpointStep;
    }
  }

  if (!finalSummary) {
    const command = started ? 'resume' : creating;
    if (command === 'resume') summary.resumes += 1;
    const r = await runCli(started ? resumeArgs : trainArgs, { cli: opts.cli, cwd: opts.cwd, timeoutMs: opts.timeoutMs });
    finalSummary = jsonResult<RunSummaryJson>(r);
    if (r.code !== 0 || !finalSummary) {
      const msg = errorLine(r);
      if (/diverged from the log/.test(msg)) summary.divergences += 1;
      problems.push({ runId, kind: /diverged from the log/.test(msg) ? 'divergence' : 'process', message: `final ${command} exited ${r.code ?? r.signal}: ${msg}` });
      return;
    }
  }

  // The end state equals the uninterrupted run's.
  const want = ref.summary;
  if (finalSummary.weightsHash !== want.weightsHash || finalSummary.state !== want.state || finalSummary.stopReason !== want.stopReason || finalSummary.step !== want.step) {
    summary.hashMismatches += 1;
    problems.push({
      runId,
      kind: 'hash-mismatch',
      message: `ended ${finalSummary.state} (${finalSummary.stopReason}) at step ${finalSummary.step} with weightsHash ${finalSummary.weightsHash}; the uninterrupted run ended ${want.state} (${want.stopReason}) at step ${want.step} with ${want.weightsHash}`,
    });
  }

  // Nothing a kill saw is gone; seqs are gap-free.
  const end = await snapshotRun(store, runId);
  if (end.error) {
    problems.push({ runId, kind: 'unreadable', message: `at the end: ${end.error}` });
    return;
  }
  end.records.forEach((text, i) => {
    if ((JSON.parse(text) as { seq: number }).seq !== i) {
      summary.gaps += 1;
      problems.push({ runId, kind: 'gap', message: `at the end: record ${i} has seq ${(JSON.parse(text) as { seq: number }).seq}` });
    }
  });
  for (const k of kills) compareWithKill(runId, k.snapshot, end.records, problems, counts, `at the end, kill ${k.index + 1}'s log`);
  summary.lostCommittedEvents += counts.lostCommitted;
  summary.lostUncommittedEvents += counts.lostUncommitted;

  // Replay verifies every logged fact.
  if (!opts.skipReplay) {
    const r = await runCli(['replay', runId, '--verify', '--store', store, '--json'], { cli: opts.cli, cwd: opts.cwd, timeoutMs: opts.timeoutMs });
    const result = jsonResult<{ identical: boolean; firstDivergence: number | null; message: string | null }>(r);
    if (!result || !result.identical) {
      summary.replayFailures += 1;
      summary.divergences += result && !result.identical ? 1 : 0;
      problems.push({ runId, kind: 'replay', message: result ? `replay --verify diverged at step ${result.firstDivergence}: ${result.message}` : `replay exited ${r.code ?? r.signal}: ${errorLine(r)}` });
    }
  }

  // A last gc with the trainer gone (it puts back what a killed gc left aside): nothing the run
  // names may go.
  if (opts.concurrentGc !== false) {
    const g = await runCli(gcArgs, { cli: opts.cli, cwd: opts.cwd, timeoutMs: opts.timeoutMs });
    endGc(g, 'at the end');
  }

  // The whole store structure of the run checks out.
  const report = await fsck(store, { runId });
  for (const p of report.problems) {
    summary.fsckProblems += 1;
    problems.push({ runId, kind: 'fsck', message: p.message });
  }
}

/** The uninterrupted reference, then runs killed and resumed until `kills` mid-run kills are done. */
export async function runChaos(opts: ChaosOptions): Promise<ChaosSummary> {
  const t0 = Date.now();
  const log = opts.log ?? (() => {});
  const rng = new Rng(opts.seed);
  const gcRng = new Rng((opts.seed ^ 0x9e3779b9) >>> 0);
  const prefix = opts.prefix ?? `chaos-${opts.seed}`;
  const [minK, maxK] = opts.killsPerRun ?? [4, 8];
  await fsp.mkdir(opts.storeDir, { recursive: true });
  const { file: configFile, cleanup } = await writeConfigFile(opts.config);
  const summary: ChaosSummary = {
    seed: opts.seed,
    config: opts.config,
    store: path.resolve(opts.storeDir),
    reference: { runId: `${prefix}-ref`, weightsHash: null, state: '', stopReason: null, step: 0, seconds: 0 },
    runs: 0,
    kills: 0,
    killsByPoint: {},
    lateKills: 0,
    missedPlans: 0,
    resumes: 0,
    restartedEmpty: 0,
    divergences: 0,
    hashMismatches: 0,
    replayFailures: 0,
    lostCommittedEvents: 0,
    lostUncommittedEvents: 0,
    gaps: 0,
    fsckProblems: 0,
    gcRuns: 0,
    gcKills: 0,
    operationKills: 0,
    operationKillsByPoint: {},
    operationsSkipped: null,
    problems: [],
    seconds: 0,
    ok: false,
  };
  try {
    log(`chaos: seed ${opts.seed} (rerun with --seed ${opts.seed}); reference run ${summary.reference.runId}`);
    const tRef = Date.now();
    const ref = await trainReference({
      configFile,
      storeDir: path.join(opts.storeDir, summary.reference.runId),
      runId: summary.reference.runId,
      cli: opts.cli,
      cwd: opts.cwd,
      timeoutMs: opts.timeoutMs,
    });
    summary.reference = {
      runId: ref.runId,
      weightsHash: ref.summary.weightsHash,
      state: ref.summary.state,
      stopReason: ref.summary.stopReason,
      step: ref.summary.step,
      seconds: (Date.now() - tRef) / 1000,
    };
    log(`chaos: reference ${ref.summary.state} (${ref.summary.stopReason}) at step ${ref.summary.step}, weightsHash ${ref.summary.weightsHash} in ${summary.reference.seconds.toFixed(1)} s`);
    // Branch runs start in a copy of the reference's store (the parent must be there) and must end
    // as an uninterrupted branch made in another copy (blobs are content-addressed: made in the
    // same store, the chaos branch would find its blobs written and never be killed among them).
    const refStore = path.join(opts.storeDir, summary.reference.runId);
    const branchEvery = opts.branchEvery ?? 3;
    const branchCreate = ['branch', `${ref.runId}@ckpt:1`, '--lr', '0.0005'];
    let branchRef: Reference | null = null;
    if (branchEvery > 0) {
      const dir = path.join(opts.storeDir, `${prefix}-bref`);
      await fsp.cp(refStore, dir, { recursive: true });
      branchRef = await runReference(branchCreate, { storeDir: dir, runId: `${prefix}-bref`, cli: opts.cli, cwd: opts.cwd, timeoutMs: opts.timeoutMs });
      log(`chaos: branch reference ${branchRef.runId} (${branchCreate.slice(1).join(' ')}): weightsHash ${branchRef.summary.weightsHash}`);
    }
    let n = 0;
    let idle = 0;
    while (summary.kills < opts.kills) {
      n += 1;
      const runId = `${prefix}-${n}`;
      const target = Math.min(rng.int(minK, maxK), Math.max(1, opts.kills - summary.kills));
      log(`chaos: run ${runId}: ${target} kills planned (${summary.kills}/${opts.kills} so far)`);
      const before = summary.kills;
      if (branchRef && n % branchEvery === 0) {
        await fsp.cp(refStore, path.join(opts.storeDir, runId), { recursive: true });
        await chaosRun({ runId, targetKills: target, rng, gcRng, ref: branchRef, create: branchCreate, opts, summary });
      } else {
        await chaosRun({ runId, targetKills: target, rng, gcRng, ref, create: ['train', '--config', configFile], opts, summary });
      }
      summary.runs += 1;
      // Runs that cannot be killed (every plan missed) or that keep failing must not loop forever.
      idle = summary.kills === before ? idle + 1 : 0;
      if (idle >= 5 || summary.problems.length >= 20) {
        log(`chaos: stopping early (${idle >= 5 ? 'five runs in a row without a kill' : 'too many problems'})`);
        break;
      }
    }
    if (opts.operations ?? true) {
      log(`chaos: operations round: export and rm killed at each of their points, on a copy of ${ref.runId}'s store`);
      try {
        const ops = await chaosOperations({
          refStore: path.join(opts.storeDir, ref.runId),
          refRunId: ref.runId,
          dir: path.join(opts.storeDir, `${prefix}-ops`),
          rng,
          cli: opts.cli,
          cwd: opts.cwd,
          timeoutMs: opts.timeoutMs,
          log,
        });
        summary.operationKills = ops.kills;
        summary.operationKillsByPoint = ops.killsByPoint;
        summary.missedPlans += ops.missed;
        summary.problems.push(...ops.problems);
        summary.operationsSkipped = ops.skipped;
        if (ops.skipped) log(`chaos: part of the operations round skipped: ${ops.skipped}`);
      } catch (err) {
        // The round could not be set up (an export or branch of this config failed): said, not
        // counted as a crash-safety problem of the training runs.
        summary.operationsSkipped = (err as Error).message;
        log(`chaos: operations round skipped: ${summary.operationsSkipped}`);
      }
    }
  } finally {
    await cleanup();
    summary.seconds = (Date.now() - t0) / 1000;
    summary.ok =
      summary.problems.length === 0 &&
      summary.divergences === 0 &&
      summary.lostCommittedEvents === 0 &&
      summary.kills >= opts.kills;
  }
  return summary;
}

export function formatSummary(s: ChaosSummary): string {
  const byPoint = Object.entries(s.killsByPoint)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const lines = [
    `chaos seed ${s.seed}: ${s.ok ? 'OK' : 'FAILED'} in ${s.seconds.toFixed(1)} s`,
    `reference ${s.reference.runId}: ${s.reference.state} (${s.reference.stopReason}) at step ${s.reference.step}, weightsHash ${s.reference.weightsHash}`,
    `runs ${s.runs}, kills ${s.kills} (${byPoint || 'none'}), resumes ${s.resumes}, late kills ${s.lateKills}, plans not reached ${s.missedPlans}, restarted before creation ${s.restartedEmpty}`,
    s.operationsSkipped
      ? `operations round skipped: ${s.operationsSkipped}`
      : `operations round: ${s.operationKills} kills inside export and rm (${Object.entries(s.operationKillsByPoint).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'})`,
    `divergences ${s.divergences}, weightsHash mismatches ${s.hashMismatches}, replay failures ${s.replayFailures}, lost committed events ${s.lostCommittedEvents}, lost uncommitted events ${s.lostUncommittedEvents}, gaps ${s.gaps}, fsck problems ${s.fsckProblems}`,
    `concurrent gc: ${s.gcRuns} completed, ${s.gcKills} killed inside gc`,
  ];
  for (const p of s.problems.slice(0, 20)) lines.push(`  ${p.runId}: ${p.kind}: ${p.message}`);
  if (s.problems.length > 20) lines.push(`  … and ${s.problems.length - 20} more problems`);
  return lines.join('\n');
}

export { KILL_POINTS };
