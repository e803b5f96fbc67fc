// Reads that do not load the log (src/run/reader.ts, summary.ts) answer exactly what reading the
// whole log answers: the state at every event, every point, the checkpoints with their metrics,
// the summary `runs` shows. Real runs in a real LevelDB store; the reference is the whole
// history folded in memory.
import path from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { stateName } from '../../machines/fold.js';
import { Store } from '../../src/log/store.js';
import { checkpointsOf } from '../../src/run/checkpoints.js';
import type { RunHistory } from '../../src/run/history.js';
import { describeRun, listRuns, readRun, showState, stateAt, withReader } from '../../src/run/inspect.js';
import { resolvePoint } from '../../src/run/points.js';
import { RunReader } from '../../src/run/reader.js';
import { resume } from '../../src/run/resume.js';
import { parseSummary, summarizeRun } from '../../src/run/summary.js';
import { train } from '../../src/run/train.js';
import { IRIS, tempDir } from './helpers.js';

let store: string;
let full: RunHistory;

beforeAll(async () => {
  store = path.join(await tempDir(), 'store');
  // An interrupted run resumed to its budget, monitoring accuracy: every kind of record and an
  // `int:1` checkpoint, and a best metric whose sign the summary must get right.
  const controller = new AbortController();
  await train({
    store,
    config: { ...IRIS, runId: 'r', monitor: 'valAccuracy', warmupSteps: 5 },
    signal: controller.signal,
    onRecord: (rec) => {
      if (rec.type === 'step.finished' && rec.data.step === 50) controller.abort('api');
    },
  });
  await resume('r', { store });
  full = await inOneStore((s) => readRun(s, 'r'));
}, 120_000);

async function inOneStore<T>(fn: (s: Store) => Promise<T>): Promise<T> {
  const s = await Store.open(store);
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

describe('a run read without loading its log', () => {
  it('shows the same state as the whole history at every event (property)', async () => {
    await inOneStore((s) =>
      withReader(s, 'r', async (reader) => {
        expect(reader.lastSeq).toBe(full.lastSeq);
        await fc.assert(
          fc.asyncProperty(fc.integer({ min: 0, max: full.lastSeq }), async (seq) => {
            const lazy = await stateAt(reader, seq);
            const whole = await stateAt(full, seq);
            expect(lazy).toEqual(whole);
            // And both agree with folding the whole log from its nearest checkpoint.
            expect(lazy.context).toEqual(full.snapshotAt(seq).snapshot.context);
          }),
          { numRuns: 60 },
        );
      }),
    );
  });

  it('resolves every point as the whole history does', async () => {
    await inOneStore((s) =>
      withReader(s, 'r', async (reader) => {
        const finalStep = full.snapshotAt().snapshot.context.step;
        const texts = ['best', 'last', 'int:1', 'ckpt:0', 'ckpt:4', 'step:0', `step:${finalStep}`, '0', String(full.lastSeq)];
        for (let n = 1; n <= finalStep; n += 7) texts.push(`step:${n}`);
        for (const text of texts) {
          const lazy = await resolvePoint(reader, text);
          const whole = await resolvePoint(full, text);
          expect({ ...lazy, checkpoint: lazy.checkpoint?.seq }, text).toEqual({ ...whole, checkpoint: whole.checkpoint?.seq });
        }
        for (const text of ['ckpt:9', 'int:2', `step:${finalStep + 1}`, String(full.lastSeq + 1)]) {
          await expect(resolvePoint(reader, text)).rejects.toThrow((await resolvePoint(full, text).catch((e: Error) => e)) as Error);
        }
      }),
    );
  });

  it('lists the checkpoints with their metrics as the whole history does', async () => {
    const lazy = await inOneStore((s) => withReader(s, 'r', (reader) => checkpointsOf(reader)));
    expect(lazy).toEqual(await checkpointsOf(full));
    expect(lazy.map((c) => c.name)).toEqual(['ckpt:0', 'ckpt:1', 'int:1', 'ckpt:2', 'ckpt:3', 'ckpt:4']);
    expect(lazy.filter((c) => c.metrics !== null).length).toBe(5);
  });

  it('reads only the range of a checkpoint interval: the reader of a run opens no more than it needs', async () => {
    // The fold for the last event starts from the last checkpoint, not from event 0.
    await inOneStore((s) =>
      withReader(s, 'r', async (reader) => {
        const { checkpoint } = await reader.stateAfter();
        expect(checkpoint?.seq).toBe(full.checkpoints.at(-1)!.seq);
        expect(await reader.stepSeq(73)).toBe(full.seqOfStep(73));
        expect(await reader.stepSeq(10_000)).toBeNull();
      }),
    );
  });
});

describe('the summary stored with the committed mark', () => {
  it('is the summary of the whole history, with the best accuracy positive', async () => {
    const stored = await inOneStore(async (s) => parseSummary(await s.readSummary('r')));
    const { snapshot } = full.snapshotAt();
    const expected = summarizeRun({ created: full.created, createdAt: full.records[0]!.at }, snapshot, full.lastSeq, full.records.at(-1)!.at);
    expect(stored).toEqual(expected);
    expect(stored!.state).toBe(stateName(snapshot));
    expect(stored!.monitor).toBe('valAccuracy');
    expect(stored!.bestMetric).toBeGreaterThan(0);
    expect(stored!.bestMetric).toBe(-snapshot.context.best!.metric);
    // `state` gives the same real-signed metric (its context keeps the machine's ordering).
    const state = await showState('r', { store });
    expect(state.best).toEqual({ checkpoint: stored!.bestCheckpoint, step: snapshot.context.best!.step, monitor: 'valAccuracy', metric: stored!.bestMetric });
    expect(state.context.best!.metric).toBe(-stored!.bestMetric!);
  });

  it('is what `runs` lists for a stopped run, and a run being written is read from its log', async () => {
    const [row] = await listRuns({ store });
    expect(row).toMatchObject({ runId: 'r', state: 'stopped', stopReason: 'budget', error: null, liveness: null, monitor: 'valAccuracy' });
    expect(row!.summary).toEqual(await inOneStore(async (s) => parseSummary(await s.readSummary('r'))));
    // A writer holds another run: its listing is read from the log (it may be past its last commit).
    const s = await Store.open(store);
    try {
      const log = await s.createRun('held');
      try {
        const listing = await describeRun(s, 'held');
        expect(listing.liveness).toBe('live');
        expect(listing.error).toMatch(/no events/);
      } finally {
        await log.close();
      }
    } finally {
      await s.close();
    }
  });

  it('a summary from another version is ignored: the log is read instead', () => {
    const good = { seq: 3, summary: { version: 1 } };
    expect(parseSummary(good)).toBeNull();
    expect(parseSummary(null)).toBeNull();
  });
});

describe('RunReader over a history in memory', () => {
  it('answers like the reader over the log', async () => {
    const mem = await RunReader.open(full.asLog(), 'r');
    await inOneStore((s) =>
      withReader(s, 'r', async (disk) => {
        expect(await mem.checkpoints()).toEqual(await disk.checkpoints());
        expect(await mem.evaluations()).toEqual(await disk.evaluations());
        expect((await mem.sampleSteps(10)).records.map((r) => r.seq)).toEqual((await disk.sampleSteps(10)).records.map((r) => r.seq));
        expect((await mem.rareRecords()).map((r) => r.seq)).toEqual((await disk.rareRecords()).map((r) => r.seq));
      }),
    );
  });
});
