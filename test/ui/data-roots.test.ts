// Files a config from the page may name: only under the data roots (realpath: symlinks out are
// out), refused with a one-line message naming the key and the roots, and a job that fails on such
// a file never shows the file's words to API clients. Real server, real files and symlinks.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/config.js';
import { train } from '../../src/run/train.js';
import { DataRootError, DataRoots, FILE_KEYS } from '../../src/ui/data-roots.js';
import { startUiServer, type UiServer } from '../../src/ui/server.js';
import { IRIS, ROOT, getJson, postJson, removeTempDirs, tempDir, useToken, waitForJob } from './helpers.js';

const SECRET = 'TOP-SECRET-WORDS';

let dir: string;
let work: string;
let extra: string;
let outside: string;
let server: UiServer;
const logged: string[] = [];

/** A CSV the loader accepts: 2 numeric features, a string label, 12 rows. */
function goodCsv(): string {
  const rows = ['a,b,label'];
  for (let i = 0; i < 12; i++) rows.push(`${i % 3},${(i * 7) % 5},${i % 2 === 0 ? 'x' : 'y'}`);
  return `${rows.join('\n')}\n`;
}

beforeAll(async () => {
  dir = await tempDir('retrace-ui-roots-');
  work = path.join(dir, 'work');
  extra = path.join(dir, 'extra');
  outside = path.join(dir, 'outside');
  for (const d of [work, extra, outside, path.join(work, 'sub'), path.join(work, 'bad-model')]) await mkdir(d, { recursive: true });
  await writeFile(path.join(work, 'ok.csv'), goodCsv());
  await writeFile(path.join(extra, 'other.csv'), goodCsv());
  await writeFile(path.join(outside, 'secret.csv'), `root:${SECRET}:0:0\nmore,${SECRET}\n`);
  await writeFile(path.join(outside, 'secret.js'), `export default () => { throw new Error('${SECRET}') }\n`);
  await symlink(path.join(outside, 'secret.csv'), path.join(work, 'link.csv'));
  await symlink(outside, path.join(work, 'linkdir'));
  // Files inside the root whose parse errors would quote them.
  await writeFile(path.join(work, 'bad-cell.csv'), `a,b,label\n1,2,x\n3,${SECRET},y\n4,5,x\n`);
  await writeFile(path.join(work, 'bad-label.csv'), `${SECRET},b,c\n1,2,3\n4,5,6\n`);
  await writeFile(path.join(work, 'bad-model', 'model.json'), `{"modelTopology": ${SECRET}}`);
  await writeFile(path.join(work, 'bad-module.js'), `export default ${SECRET} ${SECRET};\n`);
  await train({ store: path.join(dir, 'store'), config: { ...IRIS, stopPoint: 1, checkpoints: 1, runId: 'parent' }, command: 'test' });
  server = await startUiServer({ store: path.join(dir, 'store'), port: 0, pollMs: 200, cwd: work, dataRoots: ['.', extra], log: (l) => logged.push(l) });
  useToken(server.token);
});

afterAll(async () => {
  await server?.close();
  await removeTempDirs();
});

describe('paths from the page must lie under a data root', () => {
  it('reproduction: POST /api/train {"config":{"dataset":"csv:/etc/shadow","label":"z"}} is refused before any job, naming the key and the roots', async () => {
    const res = await postJson(server.url, '/api/train', { config: { dataset: 'csv:/etc/shadow', label: 'z' } });
    expect(res.status).toBe(403);
    expect(res.body.code).toBe('FORBIDDEN_PATH');
    expect(res.body.error).toMatch(/^config\.dataset: "csv:\/etc\/shadow" is outside the data roots \(.*work.*extra.*\); .*--data-root DIR$/);
    expect(res.body.error).not.toContain('\n');
    expect(server.jobs.list()).toEqual([]);
  });

  // Every way out, for every key that names a file, through both routes that take a config.
  const escapes = (): string[] => [
    '../outside/secret.csv',
    path.join(outside, 'secret.csv'),
    'sub/../../outside/secret.csv',
    'link.csv', // a symlink inside the root to a file outside
    'linkdir/secret.csv', // a path through a symlinked folder
    '../outside/does-not-exist.csv', // outside and missing: the same answer (no existence oracle)
    '/etc/passwd',
    '/',
    '..',
  ];
  const shapes: Array<[string, (p: string) => Record<string, unknown>]> = [
    ['dataset csv:', (p) => ({ dataset: `csv:${p}`, label: 'label' })],
    ['model module:', (p) => ({ model: `module:${p}` })],
    ['initFrom', (p) => ({ initFrom: p })],
  ];
  for (const [label, make] of shapes) {
    it(`${label}: every escape is 403 through /api/train and /branch, and nothing starts`, async () => {
      for (const p of escapes()) {
        const key = label.split(' ')[0]!;
        const trained = await postJson(server.url, '/api/train', { config: make(p) });
        expect(trained.status, `train ${p}: ${trained.body.error}`).toBe(403);
        expect(trained.body.code).toBe('FORBIDDEN_PATH');
        expect(trained.body.error).toContain(`config.${key}: `);
        expect(trained.body.error).toContain(work);
        expect(trained.body.error).not.toContain(SECRET);
        const branched = await postJson(server.url, '/api/runs/parent/branch', { point: 'last', overrides: make(p) });
        expect(branched.status, `branch ${p}: ${branched.body.error}`).toBe(403);
        expect(branched.body.error).toContain(`overrides.${key}: `);
      }
      expect(server.jobs.list()).toEqual([]);
    });
  }

  it('a missing file inside a root is a 400 naming it; an empty path is refused', async () => {
    const res = await postJson(server.url, '/api/train', { config: { dataset: 'csv:sub/missing.csv', label: 'label' } });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ code: 'NO_SUCH_FILE', error: 'config.dataset: "csv:sub/missing.csv": no such file under the data roots' });
  });

  it('a file under any root trains, and the job reads the resolved file (what was checked is what is read)', async () => {
    for (const [dataset, real] of [
      ['csv:ok.csv', path.join(work, 'ok.csv')],
      [`csv:${path.join(extra, 'other.csv')}`, path.join(extra, 'other.csv')],
      ['csv:sub/../ok.csv', path.join(work, 'ok.csv')],
    ] as const) {
      const res = await postJson(server.url, '/api/train', { config: { dataset, label: 'label', model: 'mlp', backend: 'wasm', batchSize: 4, stopPoint: 1, checkpoints: 1 } });
      expect(res.status, res.body.error).toBe(202);
      expect(res.body.job.params.config.dataset).toBe(`csv:${real}`);
      const job = await waitForJob(server.url, res.body.job.id);
      expect(job.status, job.error).toBe('done');
    }
  });
});

describe('a job that fails on a file it was given never shows the file to API clients', () => {
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['a CSV cell that is not a number', { dataset: 'csv:bad-cell.csv', label: 'label' }, /\(DatasetError at line 3\)/],
    ['a header without the label (the error lists the columns)', { dataset: 'csv:bad-label.csv', label: 'label' }, /\(DatasetError( at line 1)?\)/],
    ['a model.json that is not JSON (the parser quotes it)', { initFrom: 'bad-model', dataset: 'iris' }, /\(\w*Error\)/],
    ['a model module with a syntax error', { model: 'module:bad-module.js', dataset: 'iris' }, /\(\w*Error\)/],
  ];
  for (const [label, config, kind] of cases) {
    it(label, async () => {
      const before = logged.length;
      const res = await postJson(server.url, '/api/train', { config: { ...config, backend: 'wasm', batchSize: 4, stopPoint: 1, checkpoints: 1 } });
      expect(res.status, res.body.error).toBe(202);
      const job = await waitForJob(server.url, res.body.job.id);
      expect(job.status).toBe('failed');
      expect(job.error).toMatch(kind);
      expect(job.error).toMatch(/shown only in the terminal running retrace ui/);
      expect(job.error).not.toContain(SECRET);
      // Nor anywhere else the page can read.
      for (const route of ['/api/jobs', `/api/jobs/${job.id}`, '/api/runs']) {
        expect(JSON.stringify((await getJson(server.url, route)).body), route).not.toContain(SECRET);
      }
      // The full message is for the terminal that started the server.
      expect(logged.slice(before).join('\n')).toContain(`train ${res.body.runId}: `);
    });
  }

  it('content-free failures keep their message (the path, the line, the counts)', async () => {
    await writeFile(path.join(work, 'empty.csv'), 'a,b,label\n');
    const res = await postJson(server.url, '/api/train', { config: { dataset: 'csv:empty.csv', label: 'label' } });
    const job = await waitForJob(server.url, res.body.job.id);
    expect(job.status).toBe('failed');
    expect(job.error).toMatch(/empty\.csv: no data rows after the header$/);
  });
});

describe('the data roots themselves', () => {
  it('each must be an existing folder: a one-line error naming it', async () => {
    await expect(DataRoots.open(['no-such-root'], dir)).rejects.toThrow(new DataRootError('--data-root no-such-root: no such folder; give an existing folder'));
    await writeFile(path.join(dir, 'a-file'), 'x');
    await expect(DataRoots.open(['a-file'], dir)).rejects.toThrow(/--data-root a-file: not a folder/);
    await expect(startUiServer({ store: path.join(dir, 'store-x'), port: 0, cwd: dir, dataRoots: ['no-such-root'] })).rejects.toBeInstanceOf(DataRootError);
  });

  it('`retrace ui --data-root MISSING` exits 2 with one line naming it, and creates nothing', () => {
    const store = path.join(dir, 'never-made');
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/main.ts'), 'ui', '--port', '0', '--store', store, '--data-root', path.join(dir, 'no-such-root')], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(`retrace: --data-root ${path.join(dir, 'no-such-root')}: no such folder; give an existing folder`);
    expect(existsSync(store)).toBe(false);
  });

  it('off loopback no file path is accepted at all', async () => {
    const roots = await DataRoots.open([], work);
    await expect(roots.check({ dataset: 'csv:ok.csv' }, 'config', { loopback: false })).rejects.toThrow(/config\.dataset: file paths .* only accepted when the dashboard listens on loopback/);
    await expect(roots.check({ dataset: 'csv:ok.csv' }, 'config', { loopback: true })).resolves.toEqual({ dataset: `csv:${path.join(work, 'ok.csv')}` });
    await expect(roots.check({ dataset: 'iris', model: 'mlp', initFrom: null }, 'config', { loopback: false })).resolves.toEqual({ dataset: 'iris', model: 'mlp', initFrom: null });
  });

  it('every config key that can hold a path is checked (a new one fails here until it is added to FILE_KEYS)', () => {
    // Keys whose string values are names or enums, never paths.
    const NOT_PATHS = new Set(['runId', 'label', 'backend', 'optimizer', 'monitor', 'freeze']);
    const checked = new Set(FILE_KEYS.map((k) => k.key));
    type Schema = { safeParse(v: unknown): { success: boolean } };
    const takesText = (schema: Schema) => ['x', 'csv:x', 'module:x', ['x']].some((v) => schema.safeParse(v).success);
    const stringKeys = Object.entries(ConfigSchema.shape)
      .filter(([, schema]) => takesText(schema as Schema))
      .map(([key]) => key);
    for (const key of stringKeys) expect(checked.has(key as never) || NOT_PATHS.has(key), `config key ${key}`).toBe(true);
    expect(stringKeys).toEqual(expect.arrayContaining(['dataset', 'model', 'initFrom']));
  });
});
