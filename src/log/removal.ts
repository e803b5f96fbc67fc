// Removing runs as one step: `rm` of a run and its branches either removes them all or none.
//
//   <store>/tmp/remove-<pid>-<hex>/removal.json   {"format":"retrace-removal","version":1,"runs":[{runId,dev,ino}]}
//   <store>/tmp/remove-<pid>-<hex>/<runId>/       a run folder moved out of runs/
//
// The remover first holds every run's writer lock (the caller's job: nothing is touched if one is
// held), then writes removal.json (fsynced) naming the runs and their folders' inodes, then moves
// each runs/<id> into the trash folder (one rename each, same filesystem), fsyncs runs/, and only
// then deletes the trash. A process killed anywhere in between leaves a trash folder with its
// removal.json: the next Store.open of any command sees that its process is gone and finishes the
// removal (moves the runs still in runs/, deletes the trash), so a half-done `rm` is completed,
// never left half. The finisher first renames the trash to a name of its own (the claim: two
// processes opening the store at once never both work on one plan). The inode check keeps a run created later under the same id from being taken:
// only the very folder the remover planned to move is moved.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { fsyncDir, writeFileAtomic } from './blobs.js';
import { isErrno, pidAlive } from './processes.js';

export const REMOVAL_FILE = 'removal.json';
/** Trash folders in tmp/: `remove-<pid>-<hex>` (older retrace: the run folder itself, no removal.json). */
export const REMOVAL_DIR_RE = /^remove-(\d+)-[0-9a-f]+$/;
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Trash folders this process is working on right now (its own leftovers are finished like a dead process's). */
const active = new Set<string>();

const RemovalPlan = z.object({
  format: z.literal('retrace-removal'),
  version: z.literal(1),
  runs: z.array(z.object({ runId: z.string().regex(SAFE_ID), dev: z.number(), ino: z.number() })),
});
type RemovalPlan = z.infer<typeof RemovalPlan>;

/** A run's writer lock, held until released. */
export interface HeldLock {
  release(): Promise<void>;
}

export interface RemovalTarget {
  /** `<store>/runs` */
  runsDir: string;
  /** `<store>/tmp` */
  tmpDir: string;
}

/**
 * Moves the folders of `ids` (whose locks the caller holds) out of runs/ through a trash folder
 * with a removal plan, then deletes it. On an I/O error it puts back what it moved and rethrows
 * (should putting back fail too, the plan, durable before the first move, is finished by a later
 * `finishRemovals`). A SIGKILL anywhere leaves the plan for `finishRemovals`.
 */
export async function removeRunFolders(target: RemovalTarget, ids: readonly string[]): Promise<void> {
  const runs: RemovalPlan['runs'] = [];
  for (const runId of ids) {
    const st = await fsp.lstat(path.join(target.runsDir, runId));
    runs.push({ runId, dev: st.dev, ino: st.ino });
  }
  const trash = path.join(target.tmpDir, `remove-${process.pid}-${randomBytes(6).toString('hex')}`);
  active.add(path.basename(trash));
  try {
    await moveToTrash(target, trash, ids, runs);
  } finally {
    active.delete(path.basename(trash));
  }
}

async function moveToTrash(target: RemovalTarget, trash: string, ids: readonly string[], runs: RemovalPlan['runs']): Promise<void> {
  await fsp.mkdir(trash);
  try {
    const plan: RemovalPlan = { format: 'retrace-removal', version: 1, runs };
    await writeFileAtomic(path.join(trash, REMOVAL_FILE), JSON.stringify(plan) + '\n');
    await fsyncDir(target.tmpDir);
    for (const { runId } of runs) await fsp.rename(path.join(target.runsDir, runId), path.join(trash, runId));
    await fsyncDir(target.runsDir);
  } catch (err) {
    // A failed rm changes nothing: the folders moved so far go back. Should that fail too, the
    // plan stays, and the next store open after this process ends finishes the removal.
    await putBack(target, trash, ids).catch(() => {});
    throw err;
  }
  // The runs are gone; a trash left by an error here is deleted by a later store open.
  await purge(trash).catch(() => {});
}

async function putBack(target: RemovalTarget, trash: string, ids: readonly string[]): Promise<void> {
  for (const runId of ids) {
    const from = path.join(trash, runId);
    try {
      await fsp.lstat(from);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) continue;
      throw err;
    }
    await fsp.rename(from, path.join(target.runsDir, runId));
  }
  await fsyncDir(target.runsDir);
  await purge(trash);
}

/**
 * Deletes a trash folder whose runs are all moved: removal.json first, so that a plan is only ever
 * read while the folders it names still exist (in runs/ or in the trash) and their inode numbers
 * cannot have been given to a newer run.
 */
async function purge(trash: string): Promise<void> {
  await fsp.rm(path.join(trash, REMOVAL_FILE), { force: true });
  await fsp.rm(trash, { recursive: true, force: true });
}

/**
 * Finishes the removals of processes that died mid-`rm` (see the top of this file) and deletes
 * older trash folders. `lock` takes a run's writer lock (throwing if another process holds it): a
 * run of a dead removal that some process opened since is left for a later call. Best effort:
 * never throws (a read-only store is left as it is).
 */
export async function finishRemovals(target: RemovalTarget, lock: (runId: string) => Promise<HeldLock>): Promise<void> {
  let names: string[];
  try {
    names = await fsp.readdir(target.tmpDir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = REMOVAL_DIR_RE.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (active.has(name) || (pid !== process.pid && pidAlive(pid))) continue;
    await finishOne(target, path.join(target.tmpDir, name), lock).catch(() => {});
  }
}

async function finishOne(target: RemovalTarget, dead: string, lock: (runId: string) => Promise<HeldLock>): Promise<void> {
  // Claim it first (one rename; another process finishing the same plan gets ENOENT): the trash
  // then carries this process's id, so no one else touches it while this process lives.
  const name = `remove-${process.pid}-${randomBytes(6).toString('hex')}`;
  const trash = path.join(target.tmpDir, name);
  active.add(name);
  try {
    try {
      await fsp.rename(dead, trash);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw err;
    }
    await finishClaimed(target, trash, lock);
  } finally {
    active.delete(name);
  }
}

async function finishClaimed(target: RemovalTarget, trash: string, lock: (runId: string) => Promise<HeldLock>): Promise<void> {
  let text: string | null = null;
  try {
    text = await fsp.readFile(path.join(trash, REMOVAL_FILE), 'utf8');
  } catch (err) {
    if (!isErrno(err, 'ENOENT') && !isErrno(err, 'ENOTDIR')) throw err;
  }
  if (text !== null) {
    let plan: RemovalPlan;
    try {
      plan = RemovalPlan.parse(JSON.parse(text));
    } catch {
      return; // not written by us (removal.json is renamed into place whole): leave it alone
    }
    let moved = false;
    for (const { runId, dev, ino } of plan.runs) {
      const from = path.join(target.runsDir, runId);
      let st;
      try {
        st = await fsp.lstat(from);
      } catch (err) {
        if (isErrno(err, 'ENOENT')) continue; // moved already
        throw err;
      }
      if (st.dev !== dev || st.ino !== ino) continue; // a newer run of the same id
      const held = await lock(runId); // throws while a live process holds it: try again later
      try {
        await fsp.rename(from, path.join(trash, runId));
        moved = true;
      } finally {
        await held.release();
      }
    }
    if (moved) await fsyncDir(target.runsDir);
    await purge(trash);
    return;
  }
  // Without removal.json: an older retrace's trash (the run folder itself), or a remover killed
  // before its plan was durable, which had moved nothing.
  await fsp.rm(trash, { recursive: true, force: true });
}
