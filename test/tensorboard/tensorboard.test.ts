// `retrace tensorboard` and `--tensorboard DIR`: the event files are checked with a hand-written
// reader (wire.ts: its own CRC-32C and protobuf decoding, nothing shared with the writer), against
// the run's log: every step's and evaluation's value, the file version first, the config as
// hparams, branches on their parent's axis, resumes under TensorBoard's orphaned-data rule.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRecord, type LogRecord } from '../../src/log/events.js';
import { eventFileName, resumedFileSeconds } from '../../src/tensorboard/event-file.js';
import { frameRecord } from '../../src/tensorboard/tfrecord.js';
import { runEventFile } from '../../src/tensorboard/write.js';
import { tempDir } from '../run/helpers.js';
import { eventFiles, expectedScalars, KILL_HOOK, logOf, readAll, retrace, retraceChild } from './helpers.js';
import { crc32cSlow, decodeFiles, decodeSessionStartInfo, readTfRecords, tensorboardView, type DecodedEvent } from './wire.js';

const IRIS = ['--dataset', 'iris', '--batch-size', '8', '--stop-point', '2', '--checkpoints', '2', '--backend', 'wasm'];
const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/tensorboard');

function json(r: { stdout: string; stderr: string; code: number | null }): Record<string, unknown> {
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout.trim());
}

/** The checks every written run must pass: header first, hparams from the config, every scalar. */
function checkRunFile(events: DecodedEvent[], records: LogRecord[]): void {
  const created = records[0]!;
  if (created.type !== 'run.created') throw new Error('first record is not run.created');
  expect(events[0]).toMatchObject({ fileVersion: 'brain.Event:2', writer: 'retrace', step: 0 });
  expect(events.slice(1).every((e) => e.fileVersion === undefined)).toBe(true);
  const hp = events[1]!.values!;
  expect(hp).toHaveLength(1);
  expect(hp[0]).toMatchObject({ tag: '_hparams_/session_start_info', pluginName: 'hparams', hasTensor: true });
  const info = decodeSessionStartInfo(hp[0]!.content!);
  expect(info.version).toBe(0);
  expect(info.startTimeSecs).toBe(Date.parse(created.at) / 1000);
  for (const [key, value] of Object.entries(created.data.config)) {
    if (typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') expect(info.hparams[key], key).toBe(value);
  }
  expect(tensorboardView(events)).toEqual(expectedScalars(records));
  // Wall times are the log's: every scalar event's time is one of its records' `at`.
  const times = new Set(records.map((r) => Date.parse(r.at) / 1000));
  for (const e of events) if (e.values && e.values[0]?.simpleValue !== undefined) expect(times.has(e.wallTime)).toBe(true);
}

describe('event file framing (TFRecord)', () => {
  it("the test reader's CRC-32C gives the standard check value, and reads back any framed record", () => {
    expect(crc32cSlow(new TextEncoder().encode('123456789'))).toBe(0xe3069283);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (data) => {
        expect(readTfRecords(new Uint8Array(frameRecord(data))).map((d) => Array.from(d))).toEqual([Array.from(data)]);
      }),
    );
  });

  it('a changed byte anywhere in a record is caught by its CRCs', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (data, where, flip) => {
        const framed = new Uint8Array(frameRecord(data));
        framed[where % framed.length]! ^= flip;
        expect(() => readTfRecords(framed)).toThrow(/CRC|truncated/);
      }),
    );
  });
});

describe('event file names', () => {
  it("a resumed process's file sorts after the files of the run's earlier processes, also within the same second", () => {
    const at = '2026-11-29T20:00:05.900Z';
    const created = Date.parse(at) / 1000;
    // Killed and resumed within the same second, the resume's pid lower as a string.
    const first = eventFileName({ seconds: created, hostname: 'h', pid: 9999, n: 0 });
    const second = eventFileName({ seconds: resumedFileSeconds(created + 0.05, at), hostname: 'h', pid: 10000, n: 1 });
    expect([second, first].sort()).toEqual([first, second]);
    // Later resumes keep their own time.
    expect(resumedFileSeconds(created + 100.5, at)).toBe(Math.floor(created + 100.5));
  });

  it('are events.out.tfevents.<seconds>.<host>.<pid>.<n>, with the host made safe for a file name', () => {
    expect(eventFileName({ seconds: 1795983330.9, hostname: 'box.local', pid: 42, n: 3 })).toBe('events.out.tfevents.1795983330.box.local.42.3');
    expect(eventFileName({ seconds: 1, hostname: 'a/b c', pid: 1, n: 0 })).toBe('events.out.tfevents.0000000001.a_b_c.1.0');
  });
});

describe('golden event file', () => {
  // A tiny iris run SIGKILLed after four steps past checkpoint 1 had reached the log, then resumed
  // (which re-verified those steps and went on): its log, and the event file written from it.
  const records = readFileSync(path.join(FIXTURES, 'crash-resume.ndjson'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => parseRecord('tiny', JSON.parse(line)));

  it('is reproduced byte for byte from the fixed log', () => {
    const file = runEventFile(records);
    expect(file.name).toBe('events.out.tfevents.1795983330.example-host.1749.0');
    expect(Buffer.compare(file.bytes, readFileSync(path.join(FIXTURES, 'crash-resume.tfevents')))).toBe(0);
  });

  it('holds every step and evaluation once in TensorBoard\'s view, with a START at the resume step', () => {
    const events = decodeFiles([new Uint8Array(readFileSync(path.join(FIXTURES, 'crash-resume.tfevents')))]);
    checkRunFile(events, records);
    const starts = events.filter((e) => e.sessionStatus === 1);
    // Resumed from checkpoint 1 at step 8: the resumed process's first step is 9.
    expect(starts.map((s) => s.step)).toEqual([9]);
    expect(tensorboardView(events).get('loss')!.map((p) => p.step)).toEqual([...Array(16).keys()].map((i) => i + 1));
  });
});

describe('retrace tensorboard', () => {
  it('writes every step and evaluation of a run and of its branch (on the parent\'s axis), its config as hparams; again gives the same bytes; train --tensorboard writes the same file', async () => {
    const store = await tempDir();
    const out = await tempDir();
    const live = await tempDir();
    const s = ['--store', store, '--json'];
    json(retrace(['train', ...IRIS, '--run-id', 'base', '--tensorboard', live, ...s]));
    json(retrace(['branch', 'base@ckpt:1', '--lr', '0.0005', '--stop-point', '1', '--checkpoints', '1', '--run-id', 'ft', ...s]));
    const result = json(retrace(['tensorboard', 'base', 'ft', '--out', out, ...s])) as { out: string; runs: Array<{ runId: string; file: string; scalars: number; lastSeq: number }> };
    expect(result.out).toBe(out);
    expect(result.runs.map((r) => r.runId)).toEqual(['base', 'ft']);

    for (const runId of ['base', 'ft']) {
      const records = logOf(store, runId);
      const files = eventFiles(path.join(out, runId));
      expect(files).toHaveLength(1);
      const run = result.runs.find((r) => r.runId === runId)!;
      expect(run.file).toBe(files[0]);
      expect(run.lastSeq).toBe(records.at(-1)!.seq);
      const events = decodeFiles(readAll(files));
      checkRunFile(events, records);
      expect(run.scalars).toBe([...expectedScalars(records).values()].reduce((n, p) => n + p.length, 0));
    }
    // The branch continues its parent's curve: its first step is the parent's step 15 + 1.
    const ft = tensorboardView(decodeFiles(readAll(eventFiles(path.join(out, 'ft')))));
    expect(ft.get('loss')![0]!.step).toBe(16);
    expect(ft.get('lr')![0]!.value).toBe(Math.fround(0.0005));
    const ftHparams = decodeSessionStartInfo(decodeFiles(readAll(eventFiles(path.join(out, 'ft'))))[1]!.values![0]!.content!).hparams;
    expect(ftHparams).toMatchObject({ parent: 'base@ckpt:1', lr: 0.0005, dataset: 'iris', batchSize: 8 });

    // Idempotent: a second export replaces the file with the same bytes.
    const before = readAll(eventFiles(path.join(out, 'base')));
    json(retrace(['tensorboard', 'base', '--out', out, ...s]));
    expect(readAll(eventFiles(path.join(out, 'base')))).toEqual(before);
    // The live writer of `train --tensorboard` wrote exactly what the export writes from the log.
    const liveFiles = eventFiles(path.join(live, 'base'));
    expect(liveFiles.map((f) => path.basename(f))).toEqual(eventFiles(path.join(out, 'base')).map((f) => path.basename(f)));
    expect(readAll(liveFiles)).toEqual(before);
  });

  it('after a SIGKILL and resume --tensorboard, the export and the live files both show every logged step once, with a START at the resume step', async () => {
    const store = await tempDir();
    const out = await tempDir();
    const live = await tempDir();
    const s = ['--store', store];
    // 30 steps, checkpoints at 15 and 30; killed after step 22.
    const killed = retrace(['train', ...IRIS, '--run-id', 'k', '--tensorboard', live, ...s], {
      NODE_OPTIONS: `--import ${KILL_HOOK}`,
      RETRACE_CHAOS_KILL_AT: 'step-after:22',
    });
    expect(killed.signal).toBe('SIGKILL');
    json(retrace(['resume', 'k', '--tensorboard', live, ...s, '--json']));
    json(retrace(['tensorboard', 'k', '--out', out, ...s, '--json']));
    const records = logOf(store, 'k');
    expect(records.filter((r) => r.type === 'process.attached')).toHaveLength(2);

    const exported = decodeFiles(readAll(eventFiles(path.join(out, 'k'))));
    checkRunFile(exported, records);
    expect(exported.filter((e) => e.sessionStatus === 1).map((e) => e.step)).toEqual([16]);

    // Live: the killed process's file (up to its last checkpoint) and the resumed process's file,
    // which starts with its own header and a START at step 16.
    const liveFiles = eventFiles(path.join(live, 'k'));
    expect(liveFiles).toHaveLength(2);
    const resumed = decodeFiles(readAll([liveFiles[1]!]));
    expect(resumed[0]!.fileVersion).toBe('brain.Event:2');
    expect(resumed[2]).toMatchObject({ sessionStatus: 1, step: 16 });
    expect(path.basename(liveFiles[1]!)).toMatch(/\.1$/);
    // The resumed process's file sorts after the killed one's by its seconds alone, even when the
    // kill and the resume fall in the same second (pids do not sort as numbers).
    const seconds = liveFiles.map((f) => Number(path.basename(f).split('.')[3]));
    expect(seconds[1]).toBeGreaterThan(seconds[0]!);
    expect(tensorboardView(decodeFiles(readAll(liveFiles)))).toEqual(expectedScalars(records));
  });

  it('--follow appends while a trainer writes, stops by itself once the run has stopped, and ends equal to a one-shot export (also when the trainer writes --tensorboard into the same folder)', async () => {
    const store = await tempDir();
    const out = await tempDir();
    const once = await tempDir();
    // The trainer's own writer uses the same file name; the follower replaces that file, and the
    // trainer's later appends must not land in the follower's file.
    const trainer = retraceChild(['train', '--dataset', 'iris', '--batch-size', '8', '--stop-point', '30', '--checkpoints', '6', '--backend', 'wasm', '--run-id', 'f', '--store', store, '--tensorboard', out]);
    // Follow as soon as the run has its first events.
    for (;;) {
      const r = retrace(['log', 'f', '--store', store, '--to', '1']);
      if (r.code === 0 && r.stdout.includes('process.attached')) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const follower = retraceChild(['tensorboard', 'f', '--out', out, '--follow', '--store', store, '--json']);
    const [trained, followed] = await Promise.all([trainer.done, follower.done]);
    expect(trained.code, trained.stderr).toBe(0);
    expect(followed.code, followed.stderr).toBe(0);
    const records = logOf(store, 'f');
    const result = JSON.parse(followed.stdout.trim()) as { runs: Array<{ lastSeq: number }> };
    expect(result.runs[0]!.lastSeq).toBe(records.at(-1)!.seq);

    json(retrace(['tensorboard', 'f', '--out', once, '--store', store, '--json']));
    const followedFiles = eventFiles(path.join(out, 'f'));
    expect(readAll(followedFiles)).toEqual(readAll(eventFiles(path.join(once, 'f'))));
    checkRunFile(decodeFiles(readAll(followedFiles)), records);
  });

  it('--follow --keep-following waits past a stopped run and ends on Ctrl-C with exit 0 and the whole run written', async () => {
    const store = await tempDir();
    const out = await tempDir();
    json(retrace(['train', ...IRIS, '--stop-point', '0.5', '--run-id', 'done', '--store', store, '--json']));
    const follower = retraceChild(['tensorboard', 'done', '--out', out, '--follow', '--keep-following', '--store', store]);
    // It announces itself once the file is written; then it waits (the run has stopped).
    await new Promise<void>((resolve) => {
      let seen = '';
      follower.child.stdout.on('data', (d) => {
        seen += d;
        if (seen.includes('Ctrl-C')) resolve();
      });
    });
    follower.child.kill('SIGINT');
    const ended = await follower.done;
    expect(ended.code, ended.stderr).toBe(0);
    expect(ended.stdout).toMatch(/tensorboard --logdir/);
    checkRunFile(decodeFiles(readAll(eventFiles(path.join(out, 'done')))), logOf(store, 'done'));
  });

  it('a call that fails writes nothing: an unknown run among known ones, a missing store, a missing --out', async () => {
    const store = await tempDir();
    const base = await tempDir();
    json(retrace(['train', ...IRIS, '--stop-point', '0.5', '--run-id', 'a', '--store', store, '--json']));
    const out = path.join(base, 'tb');

    const unknown = retrace(['tensorboard', 'a', 'nope', '--out', out, '--store', store]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown run "nope"/);
    expect(existsSync(out)).toBe(false);

    const noStore = retrace(['tensorboard', 'a', '--out', out, '--store', path.join(base, 'no-store')]);
    expect(noStore.code).toBe(1);
    expect(existsSync(path.join(base, 'no-store'))).toBe(false);
    expect(existsSync(out)).toBe(false);

    const noOut = retrace(['tensorboard', 'a', '--store', store]);
    expect(noOut.code).toBe(2);
    expect(noOut.stderr).toMatch(/--out DIR is required/);

    // The output folder cannot be made (a file is in the way): exit 1, the file untouched.
    writeFileSync(out, 'not a folder');
    const blocked = retrace(['tensorboard', 'a', '--out', out, '--store', store]);
    expect(blocked.code).toBe(1);
    expect(readFileSync(out, 'utf8')).toBe('not a folder');
  });

  it('train --tensorboard into a folder that cannot be written warns once and trains to the same weights', async () => {
    const store = await tempDir();
    const base = await tempDir();
    const blocked = path.join(base, 'file');
    writeFileSync(blocked, 'in the way');
    const withTb = retrace(['train', ...IRIS, '--run-id', 'w', '--tensorboard', blocked, '--store', store, '--json']);
    const plain = json(retrace(['train', ...IRIS, '--run-id', 'p', '--store', store, '--json']));
    expect(withTb.code, withTb.stderr).toBe(0);
    expect(JSON.parse(withTb.stdout).weightsHash).toBe(plain.weightsHash);
    expect(withTb.stderr.match(/warning: tensorboard: stopped writing/g)).toHaveLength(1);
    expect(readdirSync(base)).toEqual(['file']);
  });
});
