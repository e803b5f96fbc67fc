// Every operation goes through the storage seam: a run trained into the in-memory store
// (`memory:NAME`, no file written) is listed, inspected at any point, replayed bit-exactly,
// branched and resumed exactly as one in the LevelDB store, with the same weights.
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { branch } from '../../src/run/branch.js';
import { listCheckpoints } from '../../src/run/checkpoints.js';
import { listRuns, readLog, showState } from '../../src/run/inspect.js';
import { replay } from '../../src/run/replay.js';
import { resume } from '../../src/run/resume.js';
import { train } from '../../src/run/train.js';
import { dropMemoryStore, openRunStore } from '../../src/storage/open.js';
import { IRIS, tempDir } from '../run/helpers.js';

const MEM = 'memory:library-test';
afterAll(() => void dropMemoryStore('library-test'));

describe('the library on the in-memory store', () => {
  it('trains, lists, inspects, replays, branches and resumes as on LevelDB, with the same weights', async () => {
    const config = { ...IRIS, stopPoint: 4, runId: 'm' };
    const controller = new AbortController();
    const stopped = await train({
      store: MEM,
      config,
      signal: controller.signal,
      onRecord: (r) => {
        if (r.type === 'step.finished' && r.data.step === 20) controller.abort('api');
      },
    });
    expect(stopped).toMatchObject({ state: 'stopped', stopReason: 'interrupted', step: 20 });
    const done = await resume('m', { store: MEM });
    const disk = await train({ store: path.join(await tempDir(), 'store'), config });
    expect(done.weightsHash).toBe(disk.weightsHash);
    expect(done).toMatchObject({ state: 'stopped', stopReason: 'budget', step: disk.step, bestCheckpoint: disk.bestCheckpoint });

    const [row] = await listRuns({ store: MEM });
    expect(row).toMatchObject({ runId: 'm', state: 'stopped', stopReason: 'budget', error: null, liveness: null });
    // The listing came from the summary stored with the last commit.
    const store = await openRunStore(MEM);
    expect(store.kind).toBe('memory');
    expect((await store.readSummary('m'))?.seq).toBe((await showState('m', { store: MEM })).seq);

    const at = await showState('m', { store: MEM, at: 'int:1' });
    expect(at).toMatchObject({ step: 20, nearestCheckpoint: { name: 'int:1', kind: 'interrupt' } });
    const evals = [];
    for await (const r of readLog(store, 'm', { from: 'ckpt:1', to: 'last', types: ['eval.finished'] })) evals.push(r);
    await store.close();
    expect(evals.length).toBe(3);
    expect((await listCheckpoints('m', { store: MEM })).map((c) => c.name)).toEqual(['ckpt:0', 'ckpt:1', 'int:1', 'ckpt:2', 'ckpt:3', 'ckpt:4']);

    expect(await replay('m', { store: MEM, verify: true })).toMatchObject({ identical: true, message: null });
    const b = await branch('m@ckpt:2', { store: MEM, overrides: { runId: 'mb' } });
    expect(b.weightsHash).toBe(done.weightsHash); // no overrides: the branch reproduces its parent
    expect((await listRuns({ store: MEM })).map((r) => [r.runId, r.parent?.runId ?? null])).toEqual([
      ['m', null],
      ['mb', 'm'],
    ]);
  }, 120_000);
});
