// The chaos harness's child runner: runs the real CLI (`node bin/retrace.js …`) as a child in its
// own process group, carries out its kill plan (a timer SIGKILL of the group, or the kill hook
// preloaded into the child: kill-hook.ts) and collects its exit, output and who killed it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { KillPlan } from './kill-plan.js';

export interface CliPaths {
  node: string;
  /** bin/retrace.js (runs the built dist/). */
  bin: string;
  /** dist/src/chaos/kill-hook.js */
  hook: string;
}

/** The package's root: the folder above this file holding retrace's package.json. */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i += 1, dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) {
      try {
        if ((JSON.parse(readFileSync(file, 'utf8')) as { name?: string }).name === 'retrace') return dir;
      } catch {
        // keep looking
      }
    }
  }
  throw new Error('cannot find the retrace package root');
}

export function defaultCli(): CliPaths {
  const root = packageRoot();
  const cli = { node: process.execPath, bin: path.join(root, 'bin', 'retrace.js'), hook: path.join(root, 'dist', 'src', 'chaos', 'kill-hook.js') };
  if (!existsSync(path.join(root, 'dist', 'src', 'cli', 'main.js')) || !existsSync(cli.hook)) {
    throw new Error(`retrace is not built (${path.join(root, 'dist')} is incomplete): run \`npm run build\` first`);
  }
  return cli;
}

export interface CliResult {
  args: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Milliseconds from spawn to the first stderr line matching the marker, if seen. */
  markerMs: number | null;
  /** Who killed it: the harness's timer, the child's own hook, or nobody. */
  killedBy: 'timer' | 'hook' | null;
}

const live = new Set<ChildProcess>();

/** SIGKILLs every child process group the harness still has running (for test teardown). */
export function killAllChildren(): void {
  for (const c of live) {
    try {
      if (c.pid) process.kill(-c.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

export interface RunCliOptions {
  cli?: CliPaths;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  kill?: KillPlan | null;
  /** A stderr line that marks "the work has started" for timer kills `from: 'marker'`. */
  marker?: RegExp;
  timeoutMs?: number;
  /** Called with the child once it is spawned (to watch it or signal it). */
  onSpawn?: (child: ChildProcess) => void;
}

const MAX_OUTPUT = 256 * 1024;

/**
 * The environment that preloads kill-hook.ts into a child: `kill` makes it SIGKILL itself at a
 * point (`step-after:3`), `fail` makes the I/O call there fail (`blob-before:2:EIO`).
 */
export function hookEnv(spec: { kill?: string; fail?: string }, cli: CliPaths = defaultCli(), base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { RETRACE_CHAOS_KILL_AT: undefined, RETRACE_CHAOS_FAIL_AT: undefined };
  if (spec.kill) env.RETRACE_CHAOS_KILL_AT = spec.kill;
  if (spec.fail) env.RETRACE_CHAOS_FAIL_AT = spec.fail;
  const importFlag = `--import=${pathToFileURL(cli.hook).href}`;
  const current = base.NODE_OPTIONS ?? '';
  env.NODE_OPTIONS = current.includes(importFlag) ? current : `${current ? `${current} ` : ''}${importFlag}`;
  return env;
}

/**
 * Runs `node bin/retrace.js ARGS…` in its own process group and resolves when it exits (never
 * rejects for a non-zero exit). The kill plan, if any, is carried out.
 */
export function runCli(args: string[], opts: RunCliOptions = {}): Promise<CliResult> {
  const cli = opts.cli ?? defaultCli();
  const plan = opts.kill ?? null;
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  delete env.RETRACE_CHAOS_KILL_AT;
  delete env.RETRACE_CHAOS_FAIL_AT;
  if (opts.env?.RETRACE_CHAOS_FAIL_AT) env.RETRACE_CHAOS_FAIL_AT = opts.env.RETRACE_CHAOS_FAIL_AT;
  if (opts.env?.RETRACE_CHAOS_KILL_AT) env.RETRACE_CHAOS_KILL_AT = opts.env.RETRACE_CHAOS_KILL_AT;
  if (plan?.kind === 'hook') Object.assign(env, hookEnv({ kill: `${plan.point}:${plan.n}` }, cli, env));
  const started = Date.now();
  const child = spawn(cli.node, [cli.bin, ...args], { cwd: opts.cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  opts.onSpawn?.(child);
  let stdout = '';
  let stderr = '';
  let markerMs: number | null = null;
  let timerKilled = false;
  let killTimer: NodeJS.Timeout | null = null;
  const killGroup = () => {
    try {
      if (child.pid) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // it has exited already
    }
  };
  const armTimer = (afterMs: number) => {
    killTimer = setTimeout(() => {
      timerKilled = true;
      killGroup();
    }, Math.max(0, afterMs));
  };
  if (plan?.kind === 'timer' && plan.from === 'spawn') armTimer(plan.afterMs);
  child.stdout!.on('data', (d: Buffer) => {
    if (stdout.length < MAX_OUTPUT) stdout += d.toString();
  });
  let pending = '';
  child.stderr!.on('data', (d: Buffer) => {
    const text = d.toString();
    if (stderr.length < MAX_OUTPUT) stderr += text;
    if (markerMs === null && opts.marker) {
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      if (lines.some((l) => opts.marker!.test(l))) {
        markerMs = Date.now() - started;
        if (plan?.kind === 'timer' && plan.from === 'marker') armTimer(plan.afterMs);
      }
    }
  });
  const timeout = setTimeout(() => {
    stderr += `\n[harness] timed out after ${opts.timeoutMs} ms; killed\n`;
    killGroup();
  }, opts.timeoutMs ?? 10 * 60_000);
  return new Promise((resolve, reject) => {
    child.once('error', (err) => {
      clearTimeout(timeout);
      if (killTimer) clearTimeout(killTimer);
      live.delete(child);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timeout);
      if (killTimer) clearTimeout(killTimer);
      live.delete(child);
      // The group may still hold a straggler (none expected): make sure nothing outlives the run.
      if (signal === 'SIGKILL') killGroup();
      const killedBy = signal === 'SIGKILL' ? (timerKilled ? 'timer' : plan?.kind === 'hook' ? 'hook' : null) : null;
      resolve({ args, code, signal, stdout, stderr, ms: Date.now() - started, markerMs, killedBy });
    });
  });
}

/** The JSON line a `--json` command printed on stdout (the last one), or null. */
export function jsonResult<T>(r: CliResult): T | null {
  const lines = r.stdout.split('\n').filter((l) => l.trim().startsWith('{'));
  if (lines.length === 0) return null;
  try {
    return JSON.parse(lines[lines.length - 1]!) as T;
  } catch {
    return null;
  }
}

/** The child's last stderr line that is not progress (its `retrace: …` error, if any). */
export function errorLine(r: CliResult): string {
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('retrace: '));
  return lines.at(-1) ?? (r.stderr.trim().split('\n').at(-1) ?? '');
}

/** The progress line that follows run.created (train's, or a branch's `branch RUN@POINT: …`). */
export const MARKER = /^(train|branch \S+): \d+ steps/;
