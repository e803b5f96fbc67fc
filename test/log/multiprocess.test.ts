// Two processes on one store: the LevelDB lock (RunLockedError naming the holder), no stale lock
// after SIGKILL, and 'read' mode while another process writes.
import type { ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RunLockedError } from '../../src/log/errors.js';
import { Store } from '../../src/log/store.js';
import { cleanupTempDirs, collect, killAndWait, spawnFixture, tempDir, waitForLine } from './helpers.js';

const children: ChildProcess[] = [];
afterEach(async () => {
  while (children.length > 0) await killAndWait(children.pop()!);
  await cleanupTempDirs();
});

function start(script: string, args: string[]): ChildProcess {
  const c = spawnFixture(script, args);
  children.push(c);
  return c;
}

describe('across processes', () => {
  it('a run written by another process is RunLockedError naming its pid; SIGKILL leaves no stale lock', async () => {
    const dir = await tempDir();
    const store = await Store.open(dir);
    const log = await store.createRun('r');
    await log.append([{ type: 'run.started', data: {} }], { sync: true });
    await log.close();

    const child = start('writer.ts', [dir, 'r', 'hold']);
    const pid = Number((await waitForLine(child, /^ready (\d+)$/))[1]);
    expect(pid).toBe(child.pid);
    const err = await store.openRun('r', 'write').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunLockedError);
    expect((err as RunLockedError).owner?.pid).toBe(pid);
    expect((err as Error).message).toMatch(new RegExp(`^run "r" is being written by another process \\(pid ${pid} on .+, \`.*writer\\.ts .* r hold\`, since \\d{4}-`));
    await expect(store.removeRun('r')).rejects.toThrow(RunLockedError);

    // Reading works while it is held.
    const r = await store.openRun('r', 'read');
    expect((await collect(r.read())).map((x) => x.type)).toEqual(['run.started']);
    await r.close();

    await killAndWait(child, 'SIGKILL');
    const w = await store.openRun('r', 'write'); // the OS released the lock
    expect(JSON.parse(await fsp.readFile(path.join(dir, 'runs/r/owner.json'), 'utf8')).pid).toBe(process.pid);
    await w.close();
    await store.close();
  });

  it('a holder that wrote no owner.json is reported as unknown', async () => {
    const dir = await tempDir();
    const store = await Store.open(dir);
    await (await store.createRun('r')).close();
    const child = start('raw-holder.mjs', [path.join(dir, 'runs/r/log')]);
    await waitForLine(child, /^ready \d+$/);
    await expect(store.openRun('r', 'write')).rejects.toThrow(/being written by another process \(its owner\.json is missing/);
    await store.close();
  });

  it("'read' mode sees a consistent, gap-free prefix while another process appends", async () => {
    const dir = await tempDir();
    const store = await Store.open(dir);
    const child = start('writer.ts', [dir, 'r', 'append']);
    await waitForLine(child, /^ready \d+$/);
    let lastCommitted = -1;
    let lastLength = 0;
    let reads = 0;
    let fullReads = 0;
    const deadline = Date.now() + 4000;
    while (Date.now() < deadline || fullReads < 3) {
      const r = await store.openRun('r', 'read');
      try {
        const committed = await r.committedSeq();
        // Opening checked the structure: lastSeq() throws on a gap or a lost committed tail.
        const last = await r.lastSeq();
        expect(last).toBeGreaterThanOrEqual(committed);
        expect(committed).toBeGreaterThanOrEqual(lastCommitted);
        lastCommitted = committed;
        if (reads % 10 === 0) {
          // Gap-free from 0, and each record's payload is its own seq.
          const recs = await collect(r.read());
          recs.forEach((rec, i) => {
            expect(rec.seq).toBe(i);
            expect((rec.data as { i: number }).i).toBe(i);
          });
          expect(recs.length).toBe(last + 1);
          lastLength = recs.length;
          fullReads++;
        } else {
          const tail = await collect(r.read({ from: Math.max(0, last - 20) }));
          expect(tail.map((x) => x.seq)).toEqual(Array.from({ length: Math.min(21, last + 1) }, (_, k) => Math.max(0, last - 20) + k));
        }
      } finally {
        await r.close();
      }
      reads++;
    }
    expect(lastLength).toBeGreaterThan(1000); // the child really was writing
    // Readers leave nothing behind in tmp/.
    expect((await fsp.readdir(path.join(dir, 'tmp'))).filter((n) => n.startsWith(`read-${process.pid}-`))).toEqual([]);
    await store.close();
  });
});
