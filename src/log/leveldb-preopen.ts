// Proves, reading bytes only, that a run's LevelDB files make a whole database before anything
// lets LevelDB open them. LevelDB "recovers" whatever it finds, and recovery writes:
// - with CURRENT missing and createIfMissing, it starts a new empty database and its first
//   compaction deletes the old tables (measured: events 0..1524 gone for good, and putting CURRENT
//   back afterwards no longer helped);
// - with a write-ahead log damaged before intact records, it drops the damaged fragment and every
//   intact record after it in its 32 KiB block, then deletes the log;
// - with a table missing, it fails only when a read reaches it, after it rewrote the MANIFEST.
// So every writer runs this check before its open, and every reader runs it on its private copy
// (naming the run's real files, never the copy). Damage is refused with one line naming the run
// and the file, and every byte is left as it was.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CorruptLogError } from './errors.js';
import { checkTable, decodeManifest, parseCurrent, type ManifestState } from './leveldb-files.js';
import { damageBeforeIntactRecords, readLogFile } from './leveldb-log.js';
import { isErrno } from './processes.js';
import { describeNonFile } from './regular-file.js';

/** What a run's log folder holds. `empty`: a creator stopped before LevelDB finished creating a
 * database (no CURRENT, no table, no logged record, no MANIFEST listing a table). */
export type LevelDirState = { kind: 'absent' } | { kind: 'empty' } | { kind: 'whole'; manifest: string; tables: number };

const TABLE = /^(\d+)\.(ldb|sst)$/;
const WAL = /^\d+\.log$/;

/**
 * Checks the LevelDB folder `dir` of run `runId`. `shownAs` is how messages name the folder
 * (the run's real folder relative to the store, e.g. `runs/r1/log`, also when `dir` is a copy).
 * Throws CorruptLogError (seq -1) naming the file when the files do not make a whole database:
 * CURRENT missing or malformed, its MANIFEST missing or undecodable, a table the MANIFEST lists
 * missing or of another size, a file that is a directory, a write-ahead log damaged before intact
 * records; with `verifyTables` (writers), a table block whose checksum fails. Never writes.
 */
export async function inspectLevelDir(runId: string, dir: string, shownAs: string, opts: { verifyTables?: boolean } = {}): Promise<LevelDirState> {
  const fail = (file: string, what: string, fix = `run \`retrace fsck ${runId}\` and keep a copy of the run's folder`): never => {
    throw new CorruptLogError(runId, -1, `${shownAs}/${file} ${what}; not opening the run, because LevelDB would rewrite a damaged database (${fix})`);
  };
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return { kind: 'absent' };
    if (isErrno(err, 'ENOTDIR')) throw new CorruptLogError(runId, -1, `${shownAs} is a file, not the run's LevelDB folder`);
    throw err;
  }
  const read = async (name: string): Promise<Buffer | null> => {
    try {
      return await fsp.readFile(path.join(dir, name));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return null;
      if (isErrno(err, 'EISDIR')) fail(name, 'is a directory, not a file');
      throw err;
    }
  };
  const tables = names.filter((n) => TABLE.test(n));
  const manifests = names.filter((n) => n.startsWith('MANIFEST-'));
  const wals = names.filter((n) => WAL.test(n)).sort();

  for (const name of wals) {
    const bytes = await read(name);
    if (!bytes) continue;
    const damage = damageBeforeIntactRecords(readLogFile(bytes));
    if (damage) {
      fail(name, `is damaged (${damage.message}) and ${damage.intactAfter} intact batch(es) of events follow it`);
    }
  }

  const current = await read('CURRENT');
  if (!current) {
    let records = 0;
    for (const name of wals) records += readLogFile((await read(name)) ?? Buffer.alloc(0)).records.length;
    // LevelDB creates a database by writing MANIFEST-000001 and then CURRENT: a creator stopped in
    // between (a kill, a full disk) leaves a MANIFEST that lists no table. Nothing is lost then.
    let listed = 0;
    for (const name of manifests) {
      try {
        listed += decodeManifest(readLogFile((await read(name)) ?? Buffer.alloc(0)).records).tables.size;
      } catch {
        listed += 1; // undecodable: count it as holding something
      }
    }
    if (tables.length === 0 && listed === 0 && records === 0) return { kind: 'empty' };
    const held = [tables.length > 0 ? `${tables.length} table file(s)` : null, manifests.length > 0 ? manifests.join(', ') : null, records > 0 ? `${records} logged batch(es)` : null]
      .filter(Boolean)
      .join(', ');
    return fail('CURRENT', `is missing while the folder holds ${held}`, `restore CURRENT: a one-line file naming the newest MANIFEST, e.g. "${manifests.sort().at(-1) ?? 'MANIFEST-000001'}"; then \`retrace fsck ${runId}\``);
  }
  const manifest = parseCurrent(current);
  if (!manifest) return fail('CURRENT', `is malformed (${JSON.stringify(current.toString('utf8').slice(0, 40))})`);
  const manifestBytes = await read(manifest);
  if (!manifestBytes) return fail(manifest, 'is missing (CURRENT names it)');
  let live: ManifestState;
  try {
    const parsed = readLogFile(manifestBytes);
    // A damaged record in the MANIFEST (not a torn tail a crash leaves) hides version edits.
    const damage = parsed.problems[0];
    if (damage) return fail(manifest, `is damaged (${damage.message} at byte ${damage.offset})`);
    live = decodeManifest(parsed.records);
  } catch (err) {
    return fail(manifest, `cannot be decoded (${(err as Error).message})`);
  }
  for (const [number, size] of live.tables) {
    const base = String(number).padStart(6, '0');
    const name = names.find((n) => n === `${base}.ldb` || n === `${base}.sst`);
    if (!name) fail(`${base}.ldb`, `is missing (${manifest} lists it as a table of ${size} bytes)`);
    let st;
    try {
      st = await fsp.stat(path.join(dir, name!));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return fail(name!, `is missing (${manifest} lists it as a table of ${size} bytes)`);
      throw err;
    }
    if (st.isDirectory()) fail(name!, 'is a directory, not a file');
    if (st.size !== size) fail(name!, `is ${st.size} bytes but ${manifest} says ${size} (the table was truncated or replaced)`);
    if (opts.verifyTables) {
      // Writers only: LevelDB finds a damaged block when a read or a compaction reaches it, after
      // it has rewritten the MANIFEST and the logs.
      const table = await read(name!);
      const problem = table ? checkTable(table).problems[0] : undefined;
      if (problem) fail(name!, `is damaged (${problem.message} at byte ${problem.offset})`);
    }
  }
  return { kind: 'whole', manifest, tables: live.tables.size };
}

/** The files a reader's copy takes; a writer's LevelDB also needs LOCK (LOG it can do without). */
const LEVEL_FILE = /^(CURRENT|MANIFEST-\d+|\d+\.(log|ldb|sst))$/;
const LEVEL_FILE_WRITE = /^(CURRENT|LOCK|MANIFEST-\d+|\d+\.(log|ldb|sst))$/;

/**
 * A run's LevelDB folder must hold its files as files: a folder in place of one (or the log folder
 * a file) made reads fail with a bare `EISDIR`. Throws CorruptLogError naming the run and the real
 * path; a missing folder is left to the caller. Runs on the original folder (a reader's copy would
 * name the copy); inspectLevelDir then checks what the files hold. `writer`: LOCK counts too.
 */
export async function checkLevelShape(runId: string, dir: string, opts: { writer?: boolean } = {}): Promise<void> {
  const names = opts.writer ? LEVEL_FILE_WRITE : LEVEL_FILE;
  let entries;
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isErrno(err, 'ENOTDIR')) {
      throw new CorruptLogError(runId, -1, `${dir} is a file, not the folder of its LevelDB; move it aside and run \`retrace fsck ${runId}\``);
    }
    if (isErrno(err, 'ENOENT')) return;
    throw err;
  }
  for (const e of entries) {
    if (!names.test(e.name) || e.isFile()) continue;
    const st = await fsp.stat(path.join(dir, e.name)).catch(() => null); // a symlink to a file is a file
    if (st?.isFile()) continue;
    throw new CorruptLogError(
      runId,
      -1,
      `its LevelDB file ${path.join(dir, e.name)} is ${st ? describeNonFile(st) : 'a broken link'}, so LevelDB cannot open the run; move it aside and run \`retrace fsck ${runId}\``,
    );
  }
}
