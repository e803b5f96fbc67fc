// Store.removeRuns and the removal plans a killed `rm` leaves (src/log/removal.ts): all runs or
// none, and a dead remover's plan finished by the next Store.open, touching only the folders it
// planned to move. (Real SIGKILLs inside rm: test/chaos/rm-export-kills.test.ts.)
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RunLockedError, UnknownRunError } from '../../src/log/errors.js';
import { Store } from '../../src/log/store.js';
import { cleanupTempDirs, killAndWait, tempDir } from './helpers.js';

afterEach(cleanupTempDirs);

const step = (n: number) => ({ type: 'step.finished', data: { step: n } });

async function storeWith(ids: string[]): Promise<{ dir: string; store: Store }> {
  const dir = await tempDir();
  const store = await Store.open(dir);
  for (const id of ids) {
    const log = await store.createRun(id, { parent: null });
    await log.append([step(0)], { sync: true });
    await log.close();
  }
  return { dir, store };
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => child.once('close', r));
  return child.pid!;
}

/** A removal plan as a remover killed after moving `moved` of `ids` leaves it. */
async function leavePlan(dir: string, pid: number, ids: string[], moved: string[]): Promise<string> {
  const trash = path.join(dir, 'tmp', `remove-${pid}-abcdef`);
  await fsp.mkdir(trash);
  const runs = [];
  for (const runId of ids) {
    const st = await fsp.lstat(path.join(dir, 'runs', runId));
    runs.push({ runId, dev: st.dev, ino: st.ino });
  }
  await fsp.writeFile(path.join(trash, 'removal.json'), JSON.stringify({ format: 'retrace-removal', version: 1, runs }));
  for (const id of moved) await fsp.rename(path.join(dir, 'runs', id), path.join(trash, id));
  return trash;
}

describe('removeRuns', () => {
  it('removes all the runs, or none when one of them is open for writing', async () => {
    const { dir, store } = await storeWith(['a', 'b', 'c']);
    const open = await store.openRun('c', 'write');
    await expect(store.removeRuns(['a', 'b', 'c'])).rejects.toThrow(RunLockedError);
    expect(await store.listRuns()).toEqual(['a', 'b', 'c']);
    await expect(store.removeRuns(['a', 'nope'])).rejects.toThrow(UnknownRunError);
    expect(await store.listRuns()).toEqual(['a', 'b', 'c']);
    await open.close();
    await store.removeRuns(['a', 'c']);
    expect(await store.listRuns()).toEqual(['b']);
    expect(await fsp.readdir(path.join(dir, 'tmp'))).toEqual([]);
    await store.close();
  });

  it('parent.json names the parent a run was created with', async () => {
    const { store } = await storeWith(['root']);
    await (await store.createRun('kid', { parent: 'root' })).close();
    expect(await store.recordedParent('kid')).toBe('root');
    expect(await store.recordedParent('root')).toBeNull();
    await store.close();
  });
});

describe("a dead remover's plan", () => {
  it('is finished by the next Store.open: the runs not yet moved are moved, the trash deleted', async () => {
    const { dir, store } = await storeWith(['a', 'b', 'c', 'keep']);
    await store.close();
    await leavePlan(dir, await deadPid(), ['a', 'b', 'c'], ['a']);
    const again = await Store.open(dir);
    expect(await again.listRuns()).toEqual(['keep']);
    expect(await fsp.readdir(path.join(dir, 'tmp'))).toEqual([]);
    await again.close();
  });

  it('is finished once when several stores open at the same moment', async () => {
    const { dir, store } = await storeWith(['a', 'b', 'c', 'd', 'keep']);
    await store.close();
    await leavePlan(dir, await deadPid(), ['a', 'b', 'c', 'd'], ['a']);
    const opened = await Promise.all([Store.open(dir), Store.open(dir), Store.open(dir)]);
    for (const s of opened) expect(await s.listRuns()).toEqual(['keep']);
    expect(await fsp.readdir(path.join(dir, 'tmp'))).toEqual([]);
    for (const s of opened) await s.close();
  });

  it('never takes a newer run created under a planned id', async () => {
    const { dir, store } = await storeWith(['a', 'b']);
    await leavePlan(dir, await deadPid(), ['a', 'b'], ['a', 'b']);
    // A process that ran while the plan was pending created a new "a" (another folder, another inode).
    const log = await store.createRun('a', { parent: null });
    await log.append([step(0), step(1)], { sync: true });
    await log.close();
    await store.close();
    const again = await Store.open(dir);
    expect(await again.listRuns()).toEqual(['a']);
    const read = await again.openRun('a', 'read');
    expect(await read.lastSeq()).toBe(1);
    await read.close();
    expect(await fsp.readdir(path.join(dir, 'tmp'))).toEqual([]);
    await again.close();
  });

  it('waits while a planned run is held open for writing', async () => {
    const { dir, store } = await storeWith(['a', 'b']);
    const writer = await store.openRun('b', 'write');
    await leavePlan(dir, await deadPid(), ['a', 'b'], ['a']);
    const s = await Store.open(dir);
    expect(await s.listRuns()).toEqual(['b']);
    // The plan is kept (under the name of the process that claimed it) for a later open.
    const left = await fsp.readdir(path.join(dir, 'tmp'));
    expect(left).toHaveLength(1);
    expect((await fsp.readdir(path.join(dir, 'tmp', left[0]!))).sort()).toEqual(['a', 'removal.json']);
    await s.close();
    await writer.close();
    await store.close();
    const s2 = await Store.open(dir);
    expect(await s2.listRuns()).toEqual([]);
    expect(await fsp.readdir(path.join(dir, 'tmp'))).toEqual([]);
    await s2.close();
  });

  it('is left alone while its process lives', async () => {
    const { dir, store } = await storeWith(['a', 'b']);
    await store.close();
    const live = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)']);
    try {
      const trash = await leavePlan(dir, live.pid!, ['a'], []);
      const s = await Store.open(dir);
      expect(await s.listRuns()).toEqual(['a', 'b']);
      expect(await fsp.readdir(trash)).toEqual(['removal.json']);
      await s.close();
    } finally {
      await killAndWait(live);
    }
    // Its process is gone now: the next open finishes the removal (when the run is not held).
    const s2 = await Store.open(dir);
    expect(await s2.listRuns()).toEqual(['b']);
    await s2.close();
  });
});
