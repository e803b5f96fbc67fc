// Shared by the dashboard tests: a temp store with a small real iris run, the server on a free
// port, JSON requests and a reader of server-sent events.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConfigInput } from '../../src/config.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The brief's small run: 120 examples / batch 16 × 10 passes / 4 checkpoints → 19 steps each, 76 in all. */
export const IRIS: ConfigInput = { dataset: 'iris', model: 'mlp', backend: 'wasm', batchSize: 16, stopPoint: 10, checkpoints: 4, seed: 42 };

const made: string[] = [];

export async function tempDir(prefix = 'retrace-ui-'): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export async function removeTempDirs(): Promise<void> {
  while (made.length > 0) await rm(made.pop()!, { recursive: true, force: true });
}

export interface JsonResponse<T = any> {
  status: number;
  body: T;
}

let bearer: string | null = null;

/** The token the helpers below send (`Authorization: Bearer`); null sends none. */
export function useToken(token: string | null): void {
  bearer = token;
}

function auth(): Record<string, string> {
  return bearer === null ? {} : { Authorization: `Bearer ${bearer}` };
}

export async function getJson<T = any>(base: string, route: string, headers: Record<string, string> = {}): Promise<JsonResponse<T>> {
  const res = await fetch(new URL(route, base), { headers: { ...auth(), ...headers } });
  return { status: res.status, body: (await res.json()) as T };
}

export async function postJson<T = any>(base: string, route: string, body: unknown, headers: Record<string, string> = {}): Promise<JsonResponse<T>> {
  const res = await fetch(new URL(route, base), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...auth(), ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as T };
}

/** Polls a job until it ends. */
export async function waitForJob(base: string, jobId: string, timeoutMs = 60_000): Promise<any> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { body } = await getJson(base, `/api/jobs/${jobId}`);
    if (body.job.status === 'done' || body.job.status === 'failed') return body.job;
    if (Date.now() > until) throw new Error(`job ${jobId} still ${body.job.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface SseEvent {
  event: string;
  data: any;
  id: string | null;
}

/** Reads server-sent events from `url` until `until` returns true or the timeout passes. */
export async function readEvents(url: string, until: (e: SseEvent, all: SseEvent[]) => boolean, timeoutMs = 30_000): Promise<SseEvent[]> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const events: SseEvent[] = [];
  try {
    const res = await fetch(url, { signal: controller.signal, headers: auth() });
    if (!res.ok || !res.body) throw new Error(`${url}: ${res.status}`);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return events;
      buf += decoder.decode(value, { stream: true });
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let event = 'message';
        let id: string | null = null;
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) event = line.slice(7);
          else if (line.startsWith('data: ')) data.push(line.slice(6));
          else if (line.startsWith('id: ')) id = line.slice(4);
        }
        if (data.length === 0) continue; // a keep-alive comment
        const e = { event, data: JSON.parse(data.join('\n')), id };
        events.push(e);
        if (until(e, events)) {
          controller.abort();
          return events;
        }
      }
    }
  } catch (err) {
    if (controller.signal.aborted) {
      if (events.length > 0 && until(events[events.length - 1]!, events)) return events;
      throw new Error(`no matching event from ${url} within ${timeoutMs} ms (got ${events.map((e) => e.event).join(', ') || 'none'})`);
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** `retrace train` in another process (TypeScript through tsx: no build needed). */
export function trainInChild(store: string, runId: string, flags: string[]): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'train', '--store', store, '--run-id', runId, '--json', ...flags], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export function exitOf(child: ChildProcess): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}
