// One grammar for points (issue #9 E7): parsed once (points.ts), resolved once against a run's
// history, and accepted by `state --at`, `log --from/--to`, `replay --to/--from`, `export
// --checkpoint` and `branch RUN@POINT` alike; `log --type` filters by event type. The CLI cases
// run the built dist/ (`npm run build`) as real processes.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, cli, json, tempDir, type Cli } from '../chaos/helpers.js';
import { Store } from '../../src/log/store.js';
import { readRun } from '../../src/run/inspect.js';
import type { RunHistory } from '../../src/run/history.js';
import { formatPoint, parsePoint, PointError, PointSyntaxError, resolvePoint, type Point } from '../../src/run/points.js';

const SMALL = ['--dataset', 'iris', '--batch-size', '8', '--stop-point', '6', '--checkpoints', '3', '--backend', 'wasm'];
let store: string;
let history: RunHistory;

beforeAll(async () => {
  store = await tempDir();
  const r = await cli(['train', ...SMALL, '--run-id', 'p', '--store', store, '--json']);
  expect(r.code, r.stderr).toBe(0);
  const s = await Store.open(store);
  try {
    history = await readRun(s, 'p');
  } finally {
    await s.close();
  }
}, 120_000);
afterAll(cleanupTempDirs);

function expectOneLine(r: Cli, code: number, re: RegExp): void {
  const lines = r.stderr.trim().split('\n');
  expect(lines, `stderr: ${r.stderr}`).toHaveLength(1);
  expect(lines[0]).toMatch(re);
  expect(r.code, r.stderr).toBe(code);
}

function ndjson(r: Cli): Array<{ seq: number; type: string; data: Record<string, unknown> }> {
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim() === '' ? [] : r.stdout.trim().split('\n').map((l) => JSON.parse(l));
}

const arbPoint: fc.Arbitrary<Point> = fc.oneof(
  fc.constant<Point>({ kind: 'best' }),
  fc.constant<Point>({ kind: 'last' }),
  fc.nat().map((k): Point => ({ kind: 'ckpt', k })),
  fc.nat().map((n): Point => ({ kind: 'step', n })),
  fc.nat().map((seq): Point => ({ kind: 'seq', seq })),
);

describe('the point grammar', () => {
  it('reads back every point it writes', () => {
    fc.assert(
      fc.property(arbPoint, (p) => {
        expect(parsePoint(formatPoint(p))).toEqual(p);
      }),
    );
  });

  it('parses the five forms', () => {
    expect(parsePoint('best')).toEqual({ kind: 'best' });
    expect(parsePoint('last')).toEqual({ kind: 'last' });
    expect(parsePoint('ckpt:4')).toEqual({ kind: 'ckpt', k: 4 });
    expect(parsePoint('step:300')).toEqual({ kind: 'step', n: 300 });
    expect(parsePoint('17')).toEqual({ kind: 'seq', seq: 17 });
  });

  it('refuses malformed points as bad usage, naming the text and the valid forms', () => {
    for (const bad of ['', 'Best', 'ckpt:', 'ckpt:x', 'ckpt:-1', 'step:1.5', 'step: 3', ' 3', '-1', '1e3', '0x10', 'ckpt:4:5', 'middle', '9007199254740993']) {
      expect(() => parsePoint(bad, '--at'), bad).toThrow(PointSyntaxError);
      expect(() => parsePoint(bad, '--at'), bad).toThrow(`bad --at "${bad}": expected best, last, ckpt:K, int:N, step:N or an event number`);
    }
  });

  it('any string either parses to a point that formats back to an equivalent text, or is a PointSyntaxError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.stringMatching(/^(ckpt:|step:)?[0-9a-z.:-]{0,6}$/)), (text) => {
        let p: Point;
        try {
          p = parsePoint(text);
        } catch (err) {
          expect(err).toBeInstanceOf(PointSyntaxError);
          return;
        }
        expect(parsePoint(formatPoint(p))).toEqual(p);
      }),
    );
  });

  it('resolves each form against a real run: checkpoints by index, best by the metric, steps and events', async () => {
    const ckpts = history.checkpoints;
    expect(ckpts.map((c) => c.data.index)).toEqual([0, 1, 2, 3]);
    for (const c of ckpts) {
      const r = await resolvePoint(history, `ckpt:${c.data.index}`);
      expect(r).toMatchObject({ seq: c.seq, step: c.data.step, exact: true });
      expect(r.checkpoint!.seq).toBe(c.seq);
    }
    const best = history.snapshotAt().snapshot.context.best!;
    expect((await resolvePoint(history, 'best')).seq).toBe(history.checkpointByIndex(best.index)!.seq);
    expect((await resolvePoint(history, 'last')).seq).toBe(ckpts.at(-1)!.seq);
    const s45 = history.records.find((r) => r.type === 'step.finished' && r.data.step === 45)!;
    expect((await resolvePoint(history, 'step:45'))).toMatchObject({ seq: s45.seq, step: 45, exact: false });
    expect((await resolvePoint(history, 'step:45')).checkpoint!.data.index).toBe(1);
    expect((await resolvePoint(history, '0'))).toMatchObject({ seq: 0, step: 0, checkpoint: null, exact: false });
    expect((await resolvePoint(history, 'step:0')).seq).toBe(ckpts[0]!.seq);
  });

  it('resolves every step and every event of the run to itself, and the checkpoint before it', async () => {
    const finalStep = history.snapshotAt().snapshot.context.step;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: finalStep }), async (n) => {
        const r = await resolvePoint(history, { kind: 'step', n });
        expect(r.step).toBe(n);
        expect(history.snapshotAt(r.seq).snapshot.context.step).toBe(n);
        expect(r.checkpoint!.data.step).toBeLessThanOrEqual(n);
        expect(r.exact).toBe(r.checkpoint!.data.step === n);
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: history.lastSeq }), async (seq) => {
        const r = await resolvePoint(history, String(seq));
        expect(r.seq).toBe(seq);
        expect(r.checkpoint?.seq ?? -1).toBe(history.checkpoints.filter((c) => c.seq <= seq).at(-1)?.seq ?? -1);
      }),
    );
  });

  it('says which points the run has when it lacks one (not bad usage)', async () => {
    const last = history.lastSeq;
    const cases: Array<[string, string]> = [
      ['ckpt:9', 'run p has no checkpoint 9 (it has 0, 1, 2, 3)'],
      ['step:91', 'run p has no step 91 (it has done 90 steps)'],
      [String(last + 1), `run p has no event ${last + 1} (its last event is ${last})`],
    ];
    for (const [text, message] of cases) {
      let caught: unknown;
      try {
        await resolvePoint(history, text);
      } catch (err) {
        caught = err;
      }
      expect(caught, text).toBeInstanceOf(PointError);
      expect(caught, text).not.toBeInstanceOf(PointSyntaxError);
      expect((caught as Error).message).toBe(message);
    }
  });
});

describe('every command takes the same points', () => {
  it('state --at takes ckpt:K, best and last (the state after that checkpoint)', async () => {
    const s = ['--store', store, '--json'];
    const c2 = json<{ seq: number; step: number; nearestCheckpoint: { index: number } }>(await cli(['state', 'p', '--at', 'ckpt:2', ...s]));
    expect(c2).toMatchObject({ seq: history.checkpointByIndex(2)!.seq, step: 60, nearestCheckpoint: { index: 2 } });
    const best = json<{ seq: number }>(await cli(['state', 'p', '--at', 'best', ...s]));
    expect(best.seq).toBe((await resolvePoint(history, 'best')).seq);
    const last = json<{ seq: number; state: string }>(await cli(['state', 'p', '--at', 'last', ...s]));
    expect(last).toMatchObject({ seq: history.checkpoints.at(-1)!.seq, state: 'stopped' });
    expectOneLine(await cli(['state', 'p', '--at', 'ckpt:x', '--store', store]), 2, /^retrace: bad --at "ckpt:x": expected best, last, ckpt:K, int:N, step:N or an event number$/);
    expectOneLine(await cli(['state', 'p', '--at', 'ckpt:7', '--store', store]), 1, /^retrace: run p has no checkpoint 7 \(it has 0, 1, 2, 3\)$/);
  });

  it('log takes points for --from/--to, filters by --type, and refuses --from after --to (exit 2, one line)', async () => {
    const s = ['--store', store, '--json'];
    const checkpoints = ndjson(await cli(['log', 'p', '--type', 'checkpoint.committed', ...s]));
    expect(checkpoints.map((e) => e.seq)).toEqual(history.checkpoints.map((c) => c.seq));
    expect(new Set(checkpoints.map((e) => e.type))).toEqual(new Set(['checkpoint.committed']));

    const steps = ndjson(await cli(['log', 'p', '--from', 'step:3', '--to', 'step:5', ...s]));
    expect(steps.map((e) => [e.type, e.data.step])).toEqual([
      ['step.finished', 3],
      ['step.finished', 4],
      ['step.finished', 5],
    ]);
    const evals = ndjson(await cli(['log', 'p', '--from', 'ckpt:1', '--to', 'best', '--type', 'eval.finished,checkpoint.committed', ...s]));
    const bestSeq = (await resolvePoint(history, 'best')).seq;
    expect(evals.map((e) => e.seq)).toEqual(
      history.records.filter((r) => r.seq >= history.checkpointByIndex(1)!.seq && r.seq <= bestSeq && (r.type === 'eval.finished' || r.type === 'checkpoint.committed')).map((r) => r.seq),
    );
    expect(evals.length).toBeGreaterThan(2);

    const reversed = await cli(['log', 'p', '--from', '10', '--to', '5', ...s]);
    expectOneLine(reversed, 2, /^retrace: bad range: --from 10 comes after --to 5; give --from at or before --to$/);
    expect(reversed.stdout).toBe('');
    expectOneLine(await cli(['log', 'p', '--from', 'best', '--to', 'step:3', ...s]), 2, /^retrace: bad range: --from best \(event \d+\) comes after --to step:3 \(event \d+\)/);
    expectOneLine(await cli(['log', 'p', '--type', 'checkpoint', ...s]), 2, /^retrace: bad --type "checkpoint": expected one of run\.created, .*checkpoint\.committed/);
    expectOneLine(await cli(['log', 'p', '--from', 'step:x', ...s]), 2, /^retrace: bad --from "step:x"/);
    expectOneLine(await cli(['log', 'p', '--to', String(history.lastSeq + 5), ...s]), 1, new RegExp(`^retrace: run p has no event ${history.lastSeq + 5} \\(its last event is ${history.lastSeq}\\)$`));
  });

  it('export --checkpoint K is ckpt:K, and step:N re-executes to that step (the weights replay --to gives)', async () => {
    const dir = await tempDir();
    const copy = await tempDir();
    await (await import('node:fs/promises')).cp(store, copy, { recursive: true });
    const s = ['--store', copy, '--json'];
    const two = json<{ checkpoint: number; step: number; weightsHash: string }>(await cli(['export', 'p', '--checkpoint', '2', '--out', `${dir}/two`, ...s]));
    const ck2 = json<{ checkpoint: number; step: number; weightsHash: string }>(await cli(['export', 'p', '--checkpoint', 'ckpt:2', '--out', `${dir}/ck2`, ...s]));
    expect(two).toMatchObject({ checkpoint: 2, step: 60, weightsHash: history.checkpointByIndex(2)!.data.weightsHash });
    expect(ck2).toEqual({ ...two, out: `${dir}/ck2` });

    const replayed = json<{ identical: boolean; weightsHash: string; toStep: number }>(await cli(['replay', 'p', '--to', 'step:45', ...s]));
    expect(replayed).toMatchObject({ identical: true, toStep: 45 });
    const at45 = json<{ checkpoint: number | null; step: number; weightsHash: string }>(await cli(['export', 'p', '--checkpoint', 'step:45', '--out', `${dir}/s45`, ...s]));
    expect(at45).toMatchObject({ checkpoint: null, step: 45, weightsHash: replayed.weightsHash });
    expect(at45.weightsHash).not.toBe(history.checkpointByIndex(1)!.data.weightsHash);
    const meta = JSON.parse(await (await import('node:fs/promises')).readFile(`${dir}/s45/model.json`, 'utf8')).userDefinedMetadata.retrace;
    expect(meta).toMatchObject({ checkpoint: null, point: 'step:45', step: 45, weightsHash: replayed.weightsHash });
    // A step a checkpoint holds comes from the checkpoint.
    expect(json(await cli(['export', 'p', '--checkpoint', 'step:60', '--out', `${dir}/s60`, ...s]))).toMatchObject({ checkpoint: 2, step: 60 });
    const exports = ndjson(await cli(['log', 'p', '--type', 'export.finished', ...s]));
    expect(exports.map((e) => e.data)).toEqual([
      { checkpoint: 2, kind: 'epoch', out: `${dir}/two`, step: 60, point: 'ckpt:2' },
      { checkpoint: 2, kind: 'epoch', out: `${dir}/ck2`, step: 60, point: 'ckpt:2' },
      { checkpoint: 1, kind: 'epoch', out: `${dir}/s45`, step: 45, point: 'step:45' },
      { checkpoint: 2, kind: 'epoch', out: `${dir}/s60`, step: 60, point: 'step:60' },
    ]);

    expectOneLine(await cli(['export', 'p', '--checkpoint', 'middle', '--out', `${dir}/x`, ...s]), 2, /^retrace: bad --checkpoint "middle": expected best, last, a checkpoint number K \(or ckpt:K\), int:N or step:N$/);
    expectOneLine(await cli(['export', 'p', '--checkpoint', 'step:999', '--out', `${dir}/x`, ...s]), 1, /^retrace: run p has no step 999 \(it has done 90 steps\)$/);
  });

  it('replay --to/--from take best and ckpt:K; a malformed --to is bad usage', async () => {
    const s = ['--store', store, '--json'];
    const toBest = json<{ identical: boolean; toStep: number; weightsHash: string }>(await cli(['replay', 'p', '--from', 'ckpt:2', '--to', 'best', ...s]));
    const best = await resolvePoint(history, 'best');
    expect(toBest).toMatchObject({ identical: true, toStep: best.step, weightsHash: best.checkpoint!.data.weightsHash });
    expectOneLine(await cli(['replay', 'p', '--to', 'step:abc', '--store', store]), 2, /^retrace: bad --to "step:abc": expected best, last, ckpt:K, int:N, step:N or an event number$/);
    // --to before --from is bad usage (it used to replay from --from and report its weights).
    expectOneLine(await cli(['replay', 'p', '--from', 'ckpt:2', '--to', 'ckpt:1', '--store', store]), 2, /^retrace: bad range: --from ckpt:2 \(event \d+\) comes after --to ckpt:1 \(event \d+\); give --from at or before --to$/);
  });
});
