// An export folder is replaced as a whole, never file by file: a reader of `--out` sees the old
// export or the new one, never model.json of one checkpoint with weights.bin of another.
//
//   <out>.export-tmp-<pid>-<hex>   the new export, written and fsynced here first
//   <out>.export-old-<pid>-<hex>   the previous export, renamed aside (--force) just before the new
//                                  one is renamed into place, deleted after
//
// Both sit beside <out>, on its filesystem, so the renames are atomic. A process killed between
// the two renames leaves <out> missing for a moment: the next export to <out> finishes the swap
// (the new folder is complete: it was fsynced before the old one moved) or, had the old one not
// moved, deletes the new folder; see recoverExportTarget.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { fsyncDir } from '../log/blobs.js';
import { isErrno, pidAlive } from '../log/processes.js';
import { MODEL_JSON } from '../train/model-io.js';

/** An export that cannot be made. One line; `code` says why, for programs. */
export class ExportError extends Error {
  override name = 'ExportError';
  constructor(
    message: string,
    /** NOT_STOPPED: the run is not stopped; OUT_TAKEN: --out is not empty (and no --force), or not a
     * model folder (--force), or was filled meanwhile; OUT_INVALID: --out is a file or a link. */
    readonly code: 'NOT_STOPPED' | 'OUT_TAKEN' | 'OUT_INVALID' = 'NOT_STOPPED',
  ) {
    super(message);
  }
}

const PARTIAL_RE = /^(.*)\.export-(tmp|old)-(\d+)-([0-9a-f]+)$/;

/**
 * Checks that a new export can be installed at `out` (an absolute path), changing nothing.
 * Missing or an empty folder: fine. A folder with files: ExportError unless `force`, and even with
 * `force` only when it is a model folder (has model.json and no subfolders), so `--force` never
 * deletes an unrelated folder. A file or a symbolic link: ExportError.
 */
export async function checkExportTarget(out: string, force: boolean): Promise<void> {
  let st;
  try {
    st = await fsp.lstat(out);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return;
    if (isErrno(err, 'ENOTDIR')) throw new ExportError(`cannot export to ${out}: a part of its path is a file`, 'OUT_INVALID');
    throw err;
  }
  if (st.isSymbolicLink()) throw new ExportError(`cannot export to ${out}: it is a symbolic link; give the folder it points to as --out`, 'OUT_INVALID');
  if (!st.isDirectory()) throw new ExportError(`cannot export to ${out}: it is a file, not a folder; choose another --out`, 'OUT_INVALID');
  const entries = await fsp.readdir(out, { withFileTypes: true });
  if (entries.length === 0) return;
  if (!force) throw new ExportError(`${out} is not empty (it holds ${describe(entries.map((e) => e.name))}); pass --force to replace it, or choose another --out`, 'OUT_TAKEN');
  const isModel = entries.some((e) => e.name === MODEL_JSON && e.isFile()) && entries.every((e) => e.isFile());
  if (!isModel) {
    throw new ExportError(`${out} is not a model folder (a model.json and files only), so --force does not replace it; choose another --out`, 'OUT_TAKEN');
  }
}

function describe(names: string[]): string {
  const shown = names.sort().slice(0, 3).join(', ');
  return names.length > 3 ? `${shown} and ${names.length - 3} more` : shown;
}

/**
 * Writes a new export with `write(dir)` into a temporary folder beside `out`, fsyncs its files and
 * the folder, and renames it into place; an existing export there (checked by checkExportTarget)
 * is renamed aside first and deleted after. On an error nothing is left but what was at `out`.
 */
/**
 * Creates `dir` and its missing parents one level at a time. Node's recursive mkdir loops forever
 * on some virtual filesystems (measured: `mkdir -p /proc/nope` never returns), so the walk is ours:
 * up to the nearest existing folder, then down, each step a plain mkdir whose error is final.
 */
async function makeFolders(dir: string): Promise<void> {
  const missing: string[] = [];
  let at = dir;
  for (;;) {
    try {
      const st = await fsp.stat(at);
      if (!st.isDirectory()) throw Object.assign(new Error(`${at} is not a folder`), { code: 'ENOTDIR' });
      break;
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
      missing.push(at);
      const up = path.dirname(at);
      if (up === at) break;
      at = up;
    }
  }
  for (const d of missing.reverse()) {
    try {
      await fsp.mkdir(d);
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw err;
    }
  }
}

export async function installExport(out: string, force: boolean, write: (dir: string) => Promise<void>): Promise<void> {
  const parent = path.dirname(out);
  const token = `${process.pid}-${randomBytes(6).toString('hex')}`;
  const tmp = `${out}.export-tmp-${token}`;
  const old = `${out}.export-old-${token}`;
  try {
    await makeFolders(parent);
    await fsp.mkdir(tmp);
  } catch (err) {
    if (err instanceof ExportError) throw err;
    throw new ExportError(`cannot export to ${out}: its folder cannot be written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); choose another --out`, 'OUT_INVALID');
  }
  let retired = false;
  let installing = false;
  let wasEmptyDir = false;
  try {
    await write(tmp);
    for (const e of await fsp.readdir(tmp, { withFileTypes: true })) if (e.isFile()) await fsyncFile(path.join(tmp, e.name));
    await fsyncDir(tmp);
    await checkExportTarget(out, force); // again: something may have appeared meanwhile
    wasEmptyDir = await exists(out);
    if (await hasEntries(out)) {
      wasEmptyDir = false;
      retired = true; // set first: an error reported after the rename must still undo it
      await fsp.rename(out, old);
    }
    installing = true;
    try {
      await fsp.rename(tmp, out);
    } catch (err) {
      if (isErrno(err, 'ENOTEMPTY') || isErrno(err, 'EEXIST')) throw new ExportError(`${out} was filled by something else during the export; nothing was replaced`, 'OUT_TAKEN');
      throw err;
    }
    await fsyncDir(parent);
  } catch (err) {
    // A failed export changes nothing: whatever was at `out` goes back.
    await undo().catch(() => {});
    throw err;
  }
  // The new export is in place; an old one left by an error here is deleted by the next export.
  if (retired) await fsp.rm(old, { recursive: true, force: true }).catch(() => {});

  async function undo(): Promise<void> {
    if (installing && !(await exists(tmp)) && (await exists(out))) await fsp.rename(out, tmp); // the new one went in
    if (retired && (await exists(old)) && !(await exists(out))) await fsp.rename(old, out);
    if (wasEmptyDir && !(await exists(out))) await fsp.mkdir(out);
    await fsp.rm(tmp, { recursive: true, force: true });
    await fsyncDir(parent);
  }
}

/**
 * Finishes or undoes what a process killed during an export to `out` left beside it (a process
 * still alive is left alone): the old export renamed aside and the new one not yet in place → the
 * new one goes in (it is complete); only a temporary new folder → deleted (the export never
 * happened); an old export already replaced → deleted.
 */
export async function recoverExportTarget(out: string): Promise<void> {
  const parent = path.dirname(out);
  const base = path.basename(out);
  let names: string[];
  try {
    names = await fsp.readdir(parent);
  } catch {
    return;
  }
  const tokens = new Map<string, { tmp?: string; old?: string }>();
  for (const n of names) {
    const m = PARTIAL_RE.exec(n);
    if (!m || m[1] !== base) continue;
    const pid = Number(m[3]);
    if (pid === process.pid || pidAlive(pid)) continue;
    const key = `${m[3]}-${m[4]}`;
    const entry = tokens.get(key) ?? {};
    entry[m[2] as 'tmp' | 'old'] = path.join(parent, n);
    tokens.set(key, entry);
  }
  if (tokens.size === 0) return;
  for (const { tmp, old } of tokens.values()) {
    if (old && !(await exists(out))) await fsp.rename(tmp ?? old, out);
    if (tmp && (await exists(tmp))) await fsp.rm(tmp, { recursive: true, force: true });
    if (old && (await exists(old))) await fsp.rm(old, { recursive: true, force: true });
  }
  await fsyncDir(parent);
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

async function hasEntries(dir: string): Promise<boolean> {
  try {
    return (await fsp.readdir(dir)).length > 0;
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

async function fsyncFile(file: string): Promise<void> {
  const fh = await fsp.open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
