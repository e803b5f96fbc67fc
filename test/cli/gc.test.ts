// `retrace gc` and blob dedupe at the command line, as the failures of the safety issue were seen:
// real processes of the built CLI, real stores.
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../run/helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(ROOT, 'bin', 'retrace.js');

function retrace(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const IRIS = ['--dataset', 'iris', '--batch-size', '8', '--stop-point', '2', '--checkpoints', '2', '--backend', 'wasm', '--seed', '3'];

/** Every file under `dir` (relative path → size and mtime), to show a command changed nothing. */
async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else {
        const st = await fsp.lstat(p);
        out[path.relative(dir, p)] = `${st.size}:${st.mtimeMs}`;
      }
    }
  };
  await walk(dir);
  return out;
}

async function blobFiles(store: string): Promise<string[]> {
  const out: string[] = [];
  for (const shard of await fsp.readdir(path.join(store, 'blobs'))) {
    if (!/^[0-9a-f]{2}$/.test(shard)) continue;
    for (const n of await fsp.readdir(path.join(store, 'blobs', shard))) out.push(n);
  }
  return out.sort();
}

/** The blob hashes a run's checkpoints name, from `log --json`. */
function checkpointBlobs(store: string, runId: string): string[] {
  const r = retrace(['log', runId, '--store', store, '--json']);
  expect(r.code, r.stderr).toBe(0);
  const hashes = new Set<string>();
  for (const line of r.stdout.trim().split('\n')) {
    type Ref = { hash: string; pack?: { hash: string } };
    const rec = JSON.parse(line) as { type: string; data: { weights?: Ref[]; optimizer?: Ref[] } };
    if (rec.type !== 'checkpoint.committed') continue;
    // A packed tensor's bytes are in its checkpoint's pack blob.
    for (const t of [...(rec.data.weights ?? []), ...(rec.data.optimizer ?? [])]) hashes.add(t.pack?.hash ?? t.hash);
  }
  return [...hashes].sort();
}

describe('retrace gc', () => {
  it('refuses a --grace that is not a duration ≥ 0 (exit 2, one line) and deletes nothing', async () => {
    const store = await tempDir();
    expect(retrace(['train', ...IRIS, '--run-id', 'live', '--store', store, '--json']).code).toBe(0);
    // An orphan, old: what a bad grace would let gc delete.
    const orphan = path.join(store, 'blobs', 'ab', 'ab'.padEnd(64, '0'));
    await fsp.mkdir(path.dirname(orphan), { recursive: true });
    await fsp.writeFile(orphan, 'x');
    const old = new Date(Date.now() - 86_400_000);
    await fsp.utimes(orphan, old, old);
    const before = await tree(store);
    for (const bad of ['abc', '-1', 'NaN', '', '1e999', '10 years', '-0.5s', 'Infinity']) {
      const r = retrace(['gc', '--grace', bad, '--store', store, '--json']);
      expect(r.code, `--grace ${JSON.stringify(bad)}: ${r.stderr}`).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/--grace must be a duration ≥ 0/);
    }
    expect(await tree(store)).toEqual(before);
    // Units work; a day-old orphan outlives --grace 2d and goes with --grace 1h.
    expect(JSON.parse(retrace(['gc', '--grace', '2d', '--store', store, '--json']).stdout).deleted).toEqual([]);
    const r = retrace(['gc', '--grace', '1h', '--store', store, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).deleted).toEqual([path.basename(orphan)]);
    expect(retrace(['fsck', '--store', store, '--json']).code).toBe(0);
  });

  it('sees a run whose folder is a symlink in runs, fsck and gc, and keeps every blob it names', async () => {
    const store = await tempDir();
    const disk = await tempDir();
    expect(retrace(['train', ...IRIS, '--run-id', 'moved', '--store', store, '--json']).code).toBe(0);
    const named = checkpointBlobs(store, 'moved');
    expect(named.length).toBeGreaterThanOrEqual(3); // a pack per checkpoint: initial + 2
    // The run moved to another disk and linked back.
    await fsp.rename(path.join(store, 'runs', 'moved'), path.join(disk, 'moved'));
    await fsp.symlink(path.join(disk, 'moved'), path.join(store, 'runs', 'moved'));
    const runs = JSON.parse(retrace(['runs', '--store', store, '--json']).stdout) as Array<{ runId: string }>;
    expect(runs.map((r) => r.runId)).toEqual(['moved']);
    const fsck = retrace(['fsck', '--store', store, '--json']);
    expect(fsck.code, fsck.stdout).toBe(0);
    expect((JSON.parse(fsck.stdout) as { runs: Array<{ runId: string }> }).runs.map((r) => r.runId)).toEqual(['moved']);
    const gc = retrace(['gc', '--grace', '0', '--store', store, '--json']);
    expect(gc.code, gc.stderr).toBe(0);
    expect(JSON.parse(gc.stdout)).toMatchObject({ runs: 1, deleted: [] });
    for (const h of named) expect(await blobFiles(store)).toContain(h);
    expect(retrace(['fsck', '--store', store, '--json']).code).toBe(0);
    // The disk unmounted: the link dangles, gc refuses (exit 1, one line) and deletes nothing.
    await fsp.rename(path.join(disk, 'moved'), path.join(disk, 'away'));
    const before = await tree(store);
    const refused = retrace(['gc', '--grace', '0', '--store', store]);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/runs\/moved is a symlink to .*, which does not exist; gc deletes nothing/);
    expect(await tree(store)).toEqual(before);
  });

  it('does not reuse a same-size blob with damaged content: the new run rewrites it and verifies', async () => {
    const store = await tempDir();
    expect(retrace(['train', ...IRIS, '--run-id', 'a', '--store', store, '--json']).code).toBe(0);
    // Checkpoint 0 of a run with the same config and seed names the same blobs: damage one, same size.
    const r0 = retrace(['log', 'a', '--store', store, '--json']);
    const first = r0.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; data: { weights: Array<{ hash: string; pack?: { hash: string } }> } })
      .find((r) => r.type === 'checkpoint.committed')!;
    // The blob holding its first tensor: the checkpoint's pack (iris's tensors are all small).
    const hash = first.data.weights[0]!.pack?.hash ?? first.data.weights[0]!.hash;
    const file = path.join(store, 'blobs', hash.slice(0, 2), hash);
    const bytes = await fsp.readFile(file);
    bytes[0] ^= 0xff;
    await fsp.writeFile(file, bytes);
    const b = retrace(['train', ...IRIS, '--run-id', 'b', '--store', store, '--json']);
    expect(b.code, b.stderr).toBe(0);
    expect(checkpointBlobs(store, 'b')).toContain(hash);
    // The blob the new run names verifies (and so does the first run's, which names the same hash).
    const fsck = retrace(['fsck', '--store', store, '--json']);
    expect(fsck.code, fsck.stdout).toBe(0);
    expect(JSON.parse(fsck.stdout).problems).toEqual([]);
  });
});
