// Shared helpers of the chaos tests: temp folders, the built CLI as a child process, byte flips.
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'bin', 'retrace.js');

const made: string[] = [];

export async function tempDir(prefix = 'retrace-chaos-test-'): Promise<string> {
  const d = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

export async function cleanupTempDirs(): Promise<void> {
  while (made.length > 0) await fsp.rm(made.pop()!, { recursive: true, force: true });
}

export interface Cli {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/retrace.js ARGS` to completion. */
export function cli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Cli> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The stderr lines that are not progress output or warnings. */
export function errorLines(r: Cli): string[] {
  return r.stderr.split('\n').filter((l) => l.startsWith('retrace: '));
}

/** The last JSON line on stdout. */
export function json<T = Record<string, unknown>>(r: Cli): T {
  const lines = r.stdout.trim().split('\n').filter((l) => l.startsWith('{') || l.startsWith('['));
  if (lines.length === 0) throw new Error(`no JSON on stdout; exit ${r.code}; stderr: ${r.stderr.slice(-500)}`);
  return JSON.parse(lines.at(-1)!) as T;
}

/** XORs byte `at` of a file with `mask` (default 0xff). */
export async function flipByte(file: string, at: number, mask = 0xff): Promise<void> {
  const fh = await fsp.open(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    b[0] = b[0]! ^ mask;
    await fh.write(b, 0, 1, at);
  } finally {
    await fh.close();
  }
}

/** Every file under `dir` with its bytes, for byte-identical comparisons. */
export async function snapshotFiles(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const walk = async (d: string) => {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) out.set(path.relative(dir, p), await fsp.readFile(p));
    }
  };
  await walk(dir);
  return out;
}

export interface Live {
  child: import('node:child_process').ChildProcess;
  /** Resolves with the first stderr or stdout line matching `re`. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  done: Promise<Cli>;
}

/** Starts `node bin/retrace.js ARGS` and returns at once (for signals, locks, live reads). */
export function startCli(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Live {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  const check = () => {
    const lines = `${stdout}\n${stderr}`.split('\n');
    for (const w of [...waiters]) {
      const hit = lines.find((l) => w.re.test(l));
      if (hit !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(hit);
      }
    }
  };
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
    check();
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    check();
  });
  const done = new Promise<Cli>((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return {
    child,
    done,
    waitFor: (re, timeoutMs = 60_000) =>
      new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re}; stderr: ${stderr.slice(-400)}`)), timeoutMs);
        waiters.push({
          re,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
        void done.then(() => {
          clearTimeout(timer);
          check();
          if (waiters.some((w) => w.re === re)) reject(new Error(`exited before ${re}; stderr: ${stderr.slice(-400)}`));
        });
        check();
      }),
  };
}

/** Exit code `code` and exactly one stderr line, `retrace: …` matching `re`. */
export function expectOneLine(r: Cli, code: number, re: RegExp): void {
  const lines = r.stderr.trim().split('\n');
  expect(lines, `stderr: ${r.stderr}`).toHaveLength(1);
  expect(lines[0]).toMatch(/^retrace: /);
  expect(lines[0]).toMatch(re);
  expect(r.code, r.stderr).toBe(code);
}
