// Rebuilding a recorded run needs its code and its files (issue #9 C5, D6): export, replay,
// resume and branch load a `module:` model through the run's module (custom layers registered)
// after checking its recorded fingerprint; the files a run depends on (csv:, module:,
// --init-from) are recorded by absolute path + fingerprint, so every later command finds them
// from any folder, and a moved file given with --dataset/--model is accepted only when its
// fingerprint matches. Real processes (the built dist/), real files, one SIGKILL.
import { copyFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hookEnv } from '../../src/chaos/harness.js';
import { Store } from '../../src/log/store.js';
import { readRun } from '../../src/run/inspect.js';
import { loadModelFromDir } from '../../src/train/model-io.js';
import { weightsHash } from '../../src/train/weights.js';
import { cleanupTempDirs, cli, json, tempDir, type Cli } from '../chaos/helpers.js';
import { tamper } from './helpers.js';

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'scale-model.mjs');
const SMALL = ['--batch-size', '8', '--stop-point', '4', '--checkpoints', '2', '--backend', 'wasm'];

/** 60 rows, 4 features, 3 classes: a CSV whose bytes are a function of `shift`. */
function csvText(shift = 0): string {
  let s = 'a,b,c,d,label\n';
  for (let i = 0; i < 60; i += 1) {
    const y = i % 3;
    s += [((i * 7) % 10) / 10 + y + shift, ((i * 3) % 10) / 10, (i % 5) / 5 - y, y * 0.5 + (i % 4) / 8, y].join(',') + '\n';
  }
  return s;
}

function expectOneLine(r: Cli, code: number, re: RegExp): void {
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('retrace: '));
  expect(lines, `stderr: ${r.stderr}`).toHaveLength(1);
  expect(lines[0]).toMatch(re);
  expect(r.code, r.stderr).toBe(code);
}

async function createdOf(store: string, runId: string) {
  const s = await Store.open(store);
  try {
    return (await readRun(s, runId)).created;
  } finally {
    await s.close();
  }
}

let store: string;
/** Folder A: where the run was trained, with the relative data.csv and model.mjs it names. */
let a: string;
/** Folder B: another folder later commands run in. */
let b: string;
let finalHash: string;

beforeAll(async () => {
  store = await tempDir();
  a = await tempDir();
  b = await tempDir();
  await writeFile(path.join(a, 'data.csv'), csvText());
  await copyFile(FIXTURE, path.join(a, 'model.mjs'));
  // Trained from A with relative paths, SIGKILLed after step 18 (its last checkpoint is 1, at step 12).
  const cut = await cli(['train', '--dataset', 'csv:data.csv', '--model', 'module:model.mjs', ...SMALL, '--run-id', 'm', '--store', store], {
    cwd: a,
    env: hookEnv({ kill: 'step-after:18' }),
  });
  expect(cut.signal, cut.stderr).toBe('SIGKILL');
  const cut2 = await cli(['train', '--dataset', 'csv:data.csv', '--model', 'module:model.mjs', ...SMALL, '--run-id', 'm2', '--store', store], {
    cwd: a,
    env: hookEnv({ kill: 'step-after:18' }),
  });
  expect(cut2.signal, cut2.stderr).toBe('SIGKILL');
  // The same run uninterrupted, for the final weights.
  const full = await cli(['train', '--dataset', 'csv:data.csv', '--model', 'module:model.mjs', ...SMALL, '--run-id', 'ref', '--store', store, '--json'], { cwd: a });
  expect(full.code, full.stderr).toBe(0);
  finalHash = json<{ weightsHash: string }>(full).weightsHash;
}, 180_000);
afterAll(cleanupTempDirs);

describe('files a run depends on', () => {
  it('are recorded by absolute path and fingerprint, next to what was typed', async () => {
    const created = await createdOf(store, 'm');
    expect(created.config).toMatchObject({ dataset: 'csv:data.csv', model: 'module:model.mjs' });
    expect(created.files).toEqual({
      dataset: { spec: 'csv:data.csv', path: path.join(a, 'data.csv'), fingerprint: created.dataset.fingerprint },
      model: { spec: 'module:model.mjs', path: path.join(a, 'model.mjs'), fingerprint: created.model.sourceHash },
    });
  });

  it('are found from another folder: resume, replay, export and branch from B', async () => {
    const s = ['--store', store, '--json'];
    const resumed = json<{ stopReason: string; weightsHash: string }>(await cli(['resume', 'm', ...s], { cwd: b }));
    expect(resumed).toMatchObject({ stopReason: 'budget', weightsHash: finalHash });
    const replayed = json<{ identical: boolean; weightsHash: string }>(await cli(['replay', 'm', '--verify', ...s], { cwd: b }));
    expect(replayed).toMatchObject({ identical: true, weightsHash: finalHash });
    const branched = json<{ state: string }>(await cli(['branch', 'm@ckpt:1', '--stop-point', '1', '--checkpoints', '1', '--run-id', 'mb', ...s], { cwd: b }));
    expect(branched).toMatchObject({ state: 'stopped' });
    const child = await createdOf(store, 'mb');
    expect(child.files?.dataset?.path).toBe(path.join(a, 'data.csv'));
    expect(child.files?.model?.path).toBe(path.join(a, 'model.mjs'));
  });

  it("export loads the run's module: a custom layer class exports, and the export loads once the class is registered", async () => {
    const out = path.join(b, 'exported');
    const exported = json<{ checkpoint: number; weightsHash: string }>(await cli(['export', 'ref', '--checkpoint', 'best', '--out', 'exported', '--store', store, '--json'], { cwd: b }));
    const topology = JSON.parse(await readFile(path.join(out, 'model.json'), 'utf8')).modelTopology;
    expect(JSON.stringify(topology)).toContain('"class_name":"Scale"');
    const { registerScale } = (await import(FIXTURE)) as { registerScale: (t: typeof tf) => unknown };
    registerScale(tf);
    const model = await loadModelFromDir(tf, out);
    try {
      expect(weightsHash(model)).toBe(exported.weightsHash);
      expect(model.layers.map((l) => l.getClassName())).toEqual(['Scale', 'Dense', 'Dense']);
    } finally {
      model.dispose();
    }
    // A step between checkpoints re-executes through the same module.
    const at = json<{ checkpoint: number | null; step: number }>(await cli(['export', 'ref', '--checkpoint', 'step:5', '--out', 'at5', '--store', store, '--json'], { cwd: b }));
    expect(at).toMatchObject({ checkpoint: null, step: 5 });
  });

  it('moved: every command names the recorded path and the flag; --dataset/--model at the new place are accepted when the fingerprint matches, refused when not', async () => {
    const moved = await tempDir();
    await rename(path.join(a, 'data.csv'), path.join(moved, 'new.csv'));
    await rename(path.join(a, 'model.mjs'), path.join(moved, 'new.mjs'));
    const s = ['--store', store, '--json'];
    const dataGone = new RegExp(`^retrace: cannot replay run ref: CSV file not found: ${path.join(a, 'data.csv')} .*; if it moved, pass --dataset csv:NEWPATH \\(accepted when its data match the recorded fingerprint\\)$`);
    expectOneLine(await cli(['replay', 'ref', ...s], { cwd: b }), 1, dataGone);
    const codeGone = new RegExp(`^retrace: cannot export run ref: model module not found: ${path.join(a, 'model.mjs')} .*; if it moved, pass --model module:NEWPATH`);
    expectOneLine(await cli(['export', 'ref', '--out', 'x1', ...s], { cwd: b }), 1, codeGone);

    // Relative to the command's folder, like any path typed.
    const rel = path.relative(b, moved);
    const relocate = ['--dataset', `csv:${rel}/new.csv`, '--model', `module:${rel}/new.mjs`];
    expect(json(await cli(['replay', 'ref', ...relocate, ...s], { cwd: b }))).toMatchObject({ identical: true, weightsHash: finalHash });
    expect(json(await cli(['export', 'ref', '--model', `module:${rel}/new.mjs`, '--out', 'x2', ...s], { cwd: b }))).toMatchObject({ checkpoint: 2 });

    // Different bytes at the new place: refused, one line, and nothing written.
    await writeFile(path.join(moved, 'other.csv'), csvText(0.5));
    await writeFile(path.join(moved, 'other.mjs'), `${await readFile(path.join(moved, 'new.mjs'), 'utf8')}\n// edited\n`);
    expectOneLine(
      await cli(['replay', 'ref', '--dataset', `csv:${rel}/other.csv`, '--model', `module:${rel}/new.mjs`, ...s], { cwd: b }),
      1,
      /^retrace: cannot replay run ref: data set .* has changed \(fingerprint [0-9a-f]{12} → [0-9a-f]{12}\)$/,
    );
    expectOneLine(
      await cli(['export', 'ref', '--model', `module:${rel}/other.mjs`, '--out', 'x3', ...s], { cwd: b }),
      1,
      /^retrace: cannot export run ref: model module .*other\.mjs has changed since the run was recorded \(fingerprint [0-9a-f]{12} → [0-9a-f]{12}\); restore it, or pass --model module:PATH of an unchanged copy$/,
    );
    await expect(readFile(path.join(b, 'x3', 'model.json'))).rejects.toThrow();
    expectOneLine(await cli(['replay', 'ref', '--dataset', 'iris.csv', ...s], { cwd: b }), 2, /^retrace: --dataset must be csv:PATH \(where the run's file is now\), got "iris\.csv"$/);

    // Resume the same way: different data refused (unless --force), the moved copy accepted.
    expectOneLine(await cli(['resume', 'm2', ...s], { cwd: b }), 1, /^retrace: cannot resume run m2: CSV file not found: .*; if it moved, pass --dataset csv:NEWPATH/);
    expectOneLine(
      await cli(['resume', 'm2', '--dataset', `csv:${rel}/other.csv`, '--model', `module:${rel}/new.mjs`, ...s], { cwd: b }),
      1,
      /^retrace: refusing to resume run m2: data set .* has changed .*\(pass --force to resume anyway; it is recorded in the log\)$/,
    );
    expect(json(await cli(['resume', 'm2', '--dataset', `csv:${rel}/new.csv`, '--model', `module:${rel}/new.mjs`, ...s], { cwd: b }))).toMatchObject({
      stopReason: 'budget',
      weightsHash: finalHash,
    });

    // A branch from a step between checkpoints re-executes the parent: its --dataset/--model name
    // where the parent's files moved, accepted with the parent's fingerprints.
    expectOneLine(await cli(['branch', 'ref@step:5', '--run-id', 'b5', ...s], { cwd: b }), 1, /^retrace: cannot replay run ref: CSV file not found: .*; if it moved, pass --dataset csv:NEWPATH/);
    const b5 = await cli(['branch', 'ref@step:5', ...relocate, '--stop-point', '1', '--checkpoints', '1', '--run-id', 'b5', ...s], { cwd: b });
    expect(b5.code, b5.stderr).toBe(0);
    expect((await createdOf(store, 'b5')).parent).toMatchObject({ runId: 'ref', point: 'step:5', step: 5 });

    // Put back for the other tests.
    await rename(path.join(moved, 'new.csv'), path.join(a, 'data.csv'));
    await rename(path.join(moved, 'new.mjs'), path.join(a, 'model.mjs'));
  });

  it('a project folder moved as a whole: from its new place the typed relative paths are found (fingerprints checked)', async () => {
    const moved = `${a}-moved`;
    await rename(a, moved);
    try {
      const s = ['--store', store, '--json'];
      expect(json(await cli(['replay', 'ref', ...s], { cwd: moved }))).toMatchObject({ identical: true, weightsHash: finalHash });
      expect(json(await cli(['export', 'ref', '--out', path.join(b, 'from-moved'), ...s], { cwd: moved }))).toMatchObject({ checkpoint: 2 });
      expectOneLine(await cli(['replay', 'ref', ...s], { cwd: b }), 1, /CSV file not found: .*; if it moved, pass --dataset csv:NEWPATH/);
    } finally {
      await rename(moved, a);
    }
  });

  it('a custom layer tfjs does not know, in a run rebuilt from its topology: one line saying so', async () => {
    const copy = await tempDir();
    const { cp } = await import('node:fs/promises');
    await cp(store, copy, { recursive: true });
    const plain = await cli(['train', '--dataset', 'csv:data.csv', '--model', 'mlp', ...SMALL, '--run-id', 'odd', '--store', copy], { cwd: a });
    expect(plain.code, plain.stderr).toBe(0);
    await tamper(copy, 'odd', 0, (rec) => ({ ...rec, data: JSON.parse(JSON.stringify(rec.data).replaceAll('"class_name":"Dense"', '"class_name":"Unregistered"')) }));
    expectOneLine(
      await cli(['export', 'odd', '--out', path.join(b, 'odd'), '--store', copy], { cwd: a }),
      1,
      /^retrace: cannot export run odd: its model uses the custom layer class Unregistered, which is not registered; pass the model factory that registers it/,
    );
  });

  it('a module edited in place: export and branch refuse with one line naming it', async () => {
    const file = path.join(a, 'model.mjs');
    const original = await readFile(file, 'utf8');
    await writeFile(file, `${original}\n// edited\n`);
    try {
      expectOneLine(await cli(['export', 'ref', '--out', 'x4', '--store', store], { cwd: b }), 1, /^retrace: cannot export run ref: model module .*model\.mjs has changed since the run was recorded/);
      expectOneLine(
        await cli(['branch', 'ref@ckpt:1', '--run-id', 'rb', '--store', store], { cwd: b }),
        1,
        /^retrace: cannot branch from run ref: its model module .*model\.mjs has changed since the run was recorded \(fingerprint [0-9a-f]{12} → [0-9a-f]{12}\); restore it, or override it/,
      );
      expect((await cli(['runs', '--store', store, '--json'])).stdout).not.toContain('"rb"');
    } finally {
      await writeFile(file, original);
    }
  });

  it('--init-from is recorded too, and a run started from it replays from any folder (its weights come from the log)', async () => {
    const s = ['--store', store, '--json'];
    expect((await cli(['train', '--dataset', 'csv:data.csv', '--model', 'mlp', ...SMALL, '--run-id', 'plain', ...s], { cwd: a })).code).toBe(0);
    expect((await cli(['export', 'plain', '--out', 'init', ...s], { cwd: a })).code).toBe(0);
    const warm = await cli(['train', '--dataset', 'csv:data.csv', '--init-from', 'init', ...SMALL, '--run-id', 'warm', ...s], { cwd: a });
    expect(warm.code, warm.stderr).toBe(0);
    const created = await createdOf(store, 'warm');
    expect(created.files?.initFrom).toEqual({ spec: 'init', path: path.join(a, 'init'), fingerprint: expect.stringMatching(/^[0-9a-f]{64}$/) });
    await rename(path.join(a, 'init'), path.join(a, 'init-moved'));
    expect(json(await cli(['replay', 'warm', ...s], { cwd: b }))).toMatchObject({ identical: true, weightsHash: json<{ weightsHash: string }>(warm).weightsHash });
  });

  it('logs from before files were recorded keep working from the folder the paths were typed in', async () => {
    const old = await tempDir();
    await mkdir(old, { recursive: true });
    const { cp } = await import('node:fs/promises');
    await cp(store, old, { recursive: true });
    await tamper(old, 'ref', 0, (rec) => {
      const { files: _files, ...rest } = rec.data as Record<string, unknown>;
      void _files;
      return { ...rec, data: rest };
    });
    expect((await createdOf(old, 'ref')).files).toBeUndefined();
    expect(json(await cli(['replay', 'ref', '--store', old, '--json'], { cwd: a }))).toMatchObject({ identical: true, weightsHash: finalHash });
    expect(json(await cli(['export', 'ref', '--out', path.join(b, 'old-export'), '--store', old, '--json'], { cwd: a }))).toMatchObject({ checkpoint: 2 });
    // From elsewhere the typed relative path is not found; --dataset names where it is.
    expectOneLine(await cli(['replay', 'ref', '--store', old, '--json'], { cwd: b }), 1, /CSV file not found: .*; if it moved, pass --dataset csv:NEWPATH/);
    expect(json(await cli(['replay', 'ref', '--dataset', `csv:${path.join(a, 'data.csv')}`, '--model', `module:${path.join(a, 'model.mjs')}`, '--store', old, '--json'], { cwd: b }))).toMatchObject({
      identical: true,
    });
  });
});
