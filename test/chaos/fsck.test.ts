// Issue #3, part 6: `retrace fsck`. A real run (trained, SIGKILLed, resumed: so its LevelDB has a
// table, a write-ahead log, a manifest, CURRENT) is damaged one byte at a time in every kind of
// file the store has, and fsck must REPORT each damage (not absorb it the way LevelDB's own open
// would), report every problem rather than the first, and leave every file byte-identical.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fsck } from '../../src/chaos/fsck.js';
import { killAllChildren, Rng, runCli } from '../../src/chaos/harness.js';
import { encodeKey, encodeValue } from '../../src/log/codec.js';
import { cleanupTempDirs, cli, errorLines, flipByte, json, ROOT, snapshotFiles, tempDir } from './helpers.js';

let store: string;
const RUN = 'f';
let logDir: string;

afterAll(async () => {
  killAllChildren();
  await cleanupTempDirs();
});

beforeAll(async () => {
  store = await tempDir();
  const args = ['--dataset', 'iris', '--batch-size', '8', '--stop-point', '4', '--checkpoints', '4', '--run-id', RUN, '--store', store, '--json'];
  // Killed mid-run, then resumed: LevelDB turns the first process's log into a table on reopen.
  const killed = await runCli(['train', ...args], { cwd: ROOT, kill: { kind: 'hook', point: 'step-after', n: 25 } });
  expect(killed.signal).toBe('SIGKILL');
  const resumed = await cli(['resume', RUN, '--store', store, '--json']);
  expect(resumed.code, resumed.stderr).toBe(0);
  logDir = path.join(store, 'runs', RUN, 'log');
}, 120_000);

async function filesOf(kind: 'ldb' | 'log' | 'manifest' | 'current' | 'committed' | 'blob'): Promise<string[]> {
  const names = await fsp.readdir(logDir);
  switch (kind) {
    case 'ldb':
      return names.filter((n) => /\.(ldb|sst)$/.test(n)).map((n) => path.join(logDir, n));
    case 'log':
      return names.filter((n) => /^\d+\.log$/.test(n)).map((n) => path.join(logDir, n));
    case 'manifest':
      return names.filter((n) => n.startsWith('MANIFEST-')).map((n) => path.join(logDir, n));
    case 'current':
      return [path.join(logDir, 'CURRENT')];
    case 'committed':
      return [path.join(store, 'runs', RUN, 'committed.json')];
    case 'blob': {
      const out: string[] = [];
      for (const shard of await fsp.readdir(path.join(store, 'blobs'))) {
        for (const n of await fsp.readdir(path.join(store, 'blobs', shard))) out.push(path.join(store, 'blobs', shard, n));
      }
      return out.sort();
    }
  }
}

function expectSame(before: Map<string, Buffer>, after: Map<string, Buffer>, what: string): void {
  expect([...after.keys()].sort(), what).toEqual([...before.keys()].sort());
  for (const [name, bytes] of before) expect(Buffer.compare(after.get(name)!, bytes), `${what}: ${name} changed`).toBe(0);
}

describe('fsck', () => {
  it('finds nothing wrong in a healthy run, whose LevelDB has every kind of file', async () => {
    for (const kind of ['ldb', 'log', 'manifest', 'committed', 'blob'] as const) expect((await filesOf(kind)).length, kind).toBeGreaterThan(0);
    const before = await snapshotFiles(store);
    const report = await fsck(store);
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.runs[0]!.state).toBe('stopped');
    expect(report.runs[0]!.lastSeq).toBeGreaterThan(60);
    expect(report.blobsChecked).toBeGreaterThan(10);
    expectSame(before, await snapshotFiles(store), 'healthy fsck');

    const r = await cli(['fsck', RUN, '--store', store, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(json<{ ok: boolean }>(r).ok).toBe(true);
  });

  // Positions: every byte of the small files, seeded samples of the big ones; each position is
  // XORed with 0xff or with a single bit.
  const cases: Array<{ kind: 'ldb' | 'log' | 'manifest' | 'current' | 'committed' | 'blob'; samples: number | 'all' }> = [
    { kind: 'current', samples: 'all' },
    { kind: 'committed', samples: 'all' },
    { kind: 'manifest', samples: 40 },
    { kind: 'ldb', samples: 40 },
    { kind: 'log', samples: 40 },
    { kind: 'blob', samples: 4 },
  ];
  for (const { kind, samples } of cases) {
    it(`reports a flipped byte anywhere in ${kind} files, and changes nothing`, async () => {
      const rng = new Rng(kind.length * 7919);
      const files = await filesOf(kind);
      const original = await snapshotFiles(store);
      let tried = 0;
      for (const file of kind === 'blob' ? files.slice(0, 3) : files) {
        const size = (await fsp.stat(file)).size;
        // Sampled positions, plus every byte of a table's footer (handles, padding, magic) and
        // index block trailer, and of a log's last record header.
        const tail = kind === 'ldb' ? 56 : kind === 'log' ? 16 : 0;
        const positions =
          samples === 'all'
            ? Array.from({ length: size }, (_, i) => i)
            : [...Array.from({ length: Math.min(size, samples) }, () => rng.int(0, size - 1)), ...Array.from({ length: Math.min(tail, size) }, (_, i) => size - 1 - i)];
        for (const at of positions) {
          for (const mask of [rng.next() < 0.5 ? 0xff : 1 << rng.int(0, 7)]) {
            await flipByte(file, at, mask);
            try {
              const damaged = await snapshotFiles(store);
              const report = await fsck(store, { runId: kind === 'blob' ? undefined : RUN });
              const where = `${path.relative(store, file)} byte ${at} ^ ${mask}`;
              expect(report.ok, `${where} was absorbed`).toBe(false);
              const base = path.basename(file);
              const named = report.problems.some(
                (p) => p.message.includes(base) || (kind === 'committed' && (p.kind === 'committed' || p.kind === 'sequence')),
              );
              expect(named, `${where}: ${report.problems.map((p) => p.message).join(' | ')}`).toBe(true);
              expectSame(damaged, await snapshotFiles(store), `fsck after ${where}`);
              tried += 1;
            } finally {
              await flipByte(file, at, mask);
            }
          }
        }
      }
      expect(tried).toBeGreaterThan(0);
      expectSame(original, await snapshotFiles(store), 'after restoring');
      expect((await fsck(store)).ok).toBe(true);
    }, 120_000);
  }

  it('names the file, the record and the blob of each problem, and reports them all at once', async () => {
    const copy = await tempDir();
    await fsp.cp(store, copy, { recursive: true });
    const dir = path.join(copy, 'runs', RUN, 'log');
    const ldb = (await fsp.readdir(dir)).find((n) => n.endsWith('.ldb'))!;
    const walLog = (await fsp.readdir(dir)).find((n) => /^\d+\.log$/.test(n))!;
    const blob = (await filesOf('blob'))[0]!.replace(store, copy);
    await flipByte(path.join(dir, ldb), 100);
    await flipByte(path.join(dir, walLog), 200);
    await flipByte(blob, 3);
    await fsp.writeFile(path.join(copy, 'runs', RUN, 'committed.json'), '{"seq":99999,"crc":"00000000"}\n');
    const before = await snapshotFiles(copy);
    const report = await fsck(copy);
    const text = report.problems.map((p) => p.message).join('\n');
    expect(text).toContain(`${ldb}:`);
    expect(text).toContain(`${walLog}:`);
    expect(text).toContain(`blob ${path.basename(blob)} is corrupt`);
    expect(text).toMatch(/events up to 99999 were committed/);
    expect(report.problems.filter((p) => p.kind === 'leveldb-file').length).toBeGreaterThanOrEqual(2);
    expectSame(before, await snapshotFiles(copy), 'fsck of a store with four problems');

    const r = await cli(['fsck', '--store', copy]);
    expect(r.code).toBe(1);
    expect(errorLines(r)).toHaveLength(1);
    expect(errorLines(r)[0]).toMatch(/^retrace: fsck found \d+ problem\(s\): /);
    expectSame(before, await snapshotFiles(copy), 'retrace fsck');
  });

  it('checks the log against the machine: transitions, checkpoint snapshots, schema, gaps, committed crc', async () => {
    const copy = await tempDir();
    await fsp.cp(store, copy, { recursive: true });
    const dir = path.join(copy, 'runs', RUN, 'log');
    // A tamperer with valid checksums: only the semantic checks can see these.
    const db = new ClassicLevel<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    await db.open();
    const all: Array<{ v: number; seq: number; type: string; at: string; data: Record<string, unknown> }> = [];
    for await (const [, v] of db.iterator()) all.push(JSON.parse(v.slice(9)));
    const put = async (rec: (typeof all)[number]) => db.put(encodeKey(rec.seq), encodeValue(rec).value);
    const ckpt = all.filter((r) => r.type === 'checkpoint.committed')[1]!;
    const machine = ckpt.data.machine as { context: Record<string, unknown> };
    machine.context.plateauWait = 7;
    await put(ckpt);
    const change = all.find((r) => r.type === 'state.changed' && r.seq > ckpt.seq + 5)!;
    (change.data as { to: string }).to = 'plateau';
    await put(change);
    const step = all.find((r) => r.type === 'step.finished' && r.seq > change.seq)!;
    (step.data as { loss: unknown }).loss = 'not a number';
    await put(step);
    const gapAt = all.at(-5)!.seq;
    await db.del(encodeKey(gapAt));
    await db.close();

    const before = await snapshotFiles(copy);
    const report = await fsck(copy, { runId: RUN });
    const text = report.problems.map((p) => `${p.kind} ${p.seq}: ${p.message}`).join('\n');
    expect(text).toContain(`machine ${ckpt.seq}: run "${RUN}": event ${ckpt.seq}: checkpoint`);
    expect(text).toMatch(/stores a machine snapshot that differs from the fold's: machine\.context\.plateauWait is 7/);
    expect(text).toMatch(new RegExp(`machine ${change.seq}: .*state.changed says .* → plateau`));
    expect(text).toMatch(new RegExp(`schema ${step.seq}: .*event ${step.seq} \\(step.finished\\) is malformed`));
    expect(text).toMatch(new RegExp(`sequence ${gapAt}: .*events ${gapAt} are missing`));
    expectSame(before, await snapshotFiles(copy), 'semantic fsck');
  });

  it('is a usage error for an unknown run and a failure for a folder that is not a store', async () => {
    const unknown = await cli(['fsck', 'nope', '--store', store]);
    expect(unknown.code).toBe(1);
    expect(errorLines(unknown)).toEqual([expect.stringMatching(/^retrace: unknown run "nope" \(known runs: "f"\)$/)]);
    const notStore = await tempDir();
    await fsp.writeFile(path.join(notStore, 'notes.txt'), 'hello');
    const r = await cli(['fsck', '--store', notStore]);
    expect(r.code).toBe(1);
    expect(errorLines(r)).toEqual([expect.stringMatching(/is not a retrace store/)]);
    expect(await fsp.readdir(notStore)).toEqual(['notes.txt']);
  });
});
