// The CLI tells the truth: liveness and errors in --json, a required branch point, --version and
// --no-* flags, progress totals on resume and replay, a divergence explained by a recorded backend
// change, labelled summaries with bestWeightsHash, du/gc tables, and no store made by reading.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, cli, errorLines, json, ROOT, startCli, tempDir, type Cli } from '../chaos/helpers.js';
import { ClassicLevel } from 'classic-level';
import { encodeKey } from '../../src/log/codec.js';

afterAll(cleanupTempDirs);

const IRIS = ['--dataset', 'iris', '--batch-size', '8', '--stop-point', '6', '--checkpoints', '3', '--backend', 'wasm'];
const KILL_HOOK = path.join(ROOT, 'dist', 'src', 'chaos', 'kill-hook.js');

/** A run SIGKILLed after its 40th step (checkpoint 1 at step 30 committed). */
async function crashedRun(store: string, runId: string): Promise<Cli> {
  const r = await cli(['train', ...IRIS, '--run-id', runId, '--store', store], {
    env: { NODE_OPTIONS: `--import=${KILL_HOOK}`, RETRACE_CHAOS_KILL_AT: 'step-after:40' },
  });
  expect(r.signal).toBe('SIGKILL');
  return r;
}

describe('runs --json and state --json carry error and liveness', () => {
  it('says crashed for a run whose holder died, null once stopped, and the reason a damaged run cannot be read', async () => {
    const store = await tempDir();
    await crashedRun(store, 'dead');
    expect(json(await cli(['train', ...IRIS, '--run-id', 'done', '--store', store, '--json']))).toMatchObject({ state: 'stopped' });
    await cli(['train', ...IRIS, '--run-id', 'broken', '--store', store, '--json']);
    // One digit of the last step's logged loss changed, its checksum left as it was: the step
    // `state` reads (the tail after the last checkpoint), unlike a step in the middle of the log,
    // which only a whole read (`log`, `replay`, `fsck`) meets.
    const db = new ClassicLevel<string, string>(path.join(store, 'runs', 'broken', 'log'), { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    let damaged = -1;
    await db.open({ createIfMissing: false });
    try {
      for await (const [key, value] of db.iterator({ lte: encodeKey(999_999), reverse: true })) {
        if (!value.includes('"type":"step.finished"')) continue;
        damaged = Number(key);
        const at = value.indexOf('"loss":') + 9;
        await db.put(key, value.slice(0, at) + (value[at] === '1' ? '2' : '1') + value.slice(at + 1));
        break;
      }
    } finally {
      await db.close();
    }
    // `runs` lists a stopped run from the summary stored with its last commit (it opens no log);
    // a run without one (written before summaries) is read from its log, and its damage named.
    const listed = json<Array<Record<string, unknown>>>(await cli(['runs', '--store', store, '--json'])).find((r) => r.runId === 'broken');
    expect(listed).toMatchObject({ runId: 'broken', state: 'stopped', error: null });
    const mark = path.join(store, 'runs', 'broken', 'committed.json');
    const { seq, crc } = JSON.parse(await readFile(mark, 'utf8')) as { seq: number; crc: string };
    await writeFile(mark, JSON.stringify({ seq, crc }) + '\n');

    const runs = json<Array<Record<string, unknown>>>(await cli(['runs', '--store', store, '--json']));
    const byId = Object.fromEntries(runs.map((r) => [r.runId, r]));
    expect(byId.dead).toEqual({ runId: 'dead', parent: null, state: 'training', stopReason: null, step: 30, error: null, liveness: 'crashed' });
    expect(byId.done).toEqual({ runId: 'done', parent: null, state: 'stopped', stopReason: 'budget', step: 90, error: null, liveness: null });
    expect(byId.broken).toMatchObject({ runId: 'broken', state: null, step: null, liveness: null });
    expect(byId.broken!.error).toMatch(new RegExp(`^run "broken": event ${damaged} is corrupt \\(checksum mismatch`));

    const text = await cli(['runs', '--store', store]);
    expect(text.stdout).toMatch(/dead {2}training step 30 .*\[crashed: no process holds it; `retrace resume dead`\]/);
    expect(text.stdout).toMatch(new RegExp(`broken {2}unreadable: run "broken": event ${damaged} is corrupt`));

    expect(json(await cli(['state', 'dead', '--store', store, '--json']))).toMatchObject({ state: 'training', error: null, liveness: 'crashed' });
    // An unreadable run: state --json still says what runs --json says, then fails with one line.
    const broken = await cli(['state', 'broken', '--store', store, '--json']);
    expect(broken.code).toBe(1);
    expect(json(broken)).toMatchObject({ runId: 'broken', state: null, step: null, error: expect.stringMatching(new RegExp(`^run "broken": event ${damaged} is corrupt`)), liveness: null });
    expect(broken.stderr.trim().split('\n')).toHaveLength(1);
    expect(json(await cli(['state', 'done', '--store', store, '--json']))).toMatchObject({ state: 'stopped', error: null, liveness: null });
    // At an earlier event the state is historic; liveness is the run's now.
    expect(json(await cli(['state', 'dead', '--at', 'step:5', '--store', store, '--json']))).toMatchObject({ step: 5, liveness: 'crashed' });
    expect((await cli(['state', 'dead', '--store', store])).stdout).toMatch(/^now: crashed \(not stopped and no process holds it/m);

    // Resumed to the end, it is no longer crashed.
    expect((await cli(['resume', 'dead', '--store', store, '--json'])).code).toBe(0);
    expect(json<Array<Record<string, unknown>>>(await cli(['runs', '--store', store, '--json'])).find((r) => r.runId === 'dead')).toMatchObject({
      state: 'stopped',
      liveness: null,
    });
  });

  it('says live while a process trains the run', async () => {
    const store = await tempDir();
    const live = startCli(['train', '--dataset', 'mnist', '--stop-point', '20', '--checkpoints', '20', '--run-id', 'busy', '--store', store]);
    try {
      await live.waitFor(/step \d+\/\d+|busy: \d+ steps/);
      const runs = json<Array<Record<string, unknown>>>(await cli(['runs', '--store', store, '--json']));
      expect(runs).toEqual([expect.objectContaining({ runId: 'busy', error: null, liveness: 'live' })]);
      expect(json(await cli(['state', 'busy', '--store', store, '--json']))).toMatchObject({ liveness: 'live' });
      expect((await cli(['runs', '--store', store])).stdout).toMatch(/busy {2}.*\[live\]/);
    } finally {
      live.child.kill('SIGTERM');
      await live.done;
    }
    expect(json<Array<Record<string, unknown>>>(await cli(['runs', '--store', store, '--json']))[0]).toMatchObject({ stopReason: 'interrupted', liveness: null });
  });
});

describe('liveness, one definition', () => {
  it('live while held, crashed when not stopped and not held, null when stopped, exported or unreadable and not held', async () => {
    const { runLiveness } = await import('../../src/run/inspect.js');
    const table: Array<[string | null, boolean, string | null]> = [
      ['training', true, 'live'],
      ['stopped', true, 'live'],
      [null, true, 'live'],
      ['idle', false, 'crashed'],
      ['warmup', false, 'crashed'],
      ['training', false, 'crashed'],
      ['checkpointing', false, 'crashed'],
      ['plateau', false, 'crashed'],
      ['stopped', false, null],
      ['exported', false, null],
      [null, false, null],
    ];
    for (const [state, held, want] of table) expect(runLiveness(state, held), `${state} held=${held}`).toBe(want);
  });

  it("the dashboard's run rows use it", async () => {
    const { runRow } = await import('../../src/ui/view.js');
    const writer = { pid: 1, hostname: 'h', command: 'train', since: '', inProcess: false };
    expect(runRow('a', null, writer, null).liveness).toBe('live');
    expect(runRow('a', null, null, 'event 3 is corrupt').liveness).toBe(null);
  });
});

describe('flags', () => {
  it('--version prints the package version', async () => {
    const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await cli([flag]);
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(pkg.version);
    }
  });

  it('--no-early-stopping overrides a config file that turns it on', async () => {
    const store = await tempDir();
    const config = path.join(await tempDir(), 'c.json');
    await writeFile(config, JSON.stringify({ dataset: 'iris', batchSize: 8, stopPoint: 1, checkpoints: 1, backend: 'wasm', earlyStopping: true }));
    const settingsOf = async (runId: string) => {
      const first = JSON.parse((await cli(['log', runId, '--to', '0', '--store', store, '--json'])).stdout.trim()) as { data: { settings: Record<string, unknown> } };
      return first.data.settings;
    };
    expect((await cli(['train', '--config', config, '--run-id', 'on', '--store', store, '--json'])).code).toBe(0);
    expect((await cli(['train', '--config', config, '--no-early-stopping', '--run-id', 'off', '--store', store, '--json'])).code).toBe(0);
    expect(await settingsOf('on')).toMatchObject({ earlyStopping: true });
    expect(await settingsOf('off')).toMatchObject({ earlyStopping: false });
  });

  it('every on/off config key has both forms on train and branch', async () => {
    const { ConfigSchema, flagName } = await import('../../src/config.js');
    const booleans = Object.entries(ConfigSchema.shape as Record<string, { def: { type: string; innerType?: { def: { type: string } } } }>)
      .filter(([, s]) => (s.def.type === 'optional' ? s.def.innerType!.def.type : s.def.type) === 'boolean')
      .map(([key]) => flagName(key));
    expect(booleans).toContain('early-stopping');
    for (const command of ['train', 'branch']) {
      const help = (await cli([command, '--help'])).stdout;
      for (const flag of booleans) {
        expect(help, `${command} --${flag}`).toMatch(new RegExp(`^ +--${flag}\\b`, 'm'));
        expect(help, `${command} --no-${flag}`).toMatch(new RegExp(`^ +--no-${flag}\\b`, 'm'));
      }
    }
  });

  it('branch requires the point: RUN without @POINT is bad usage and creates nothing', async () => {
    const store = await tempDir();
    await cli(['train', ...IRIS, '--stop-point', '1', '--run-id', 'first', '--store', store, '--json']);
    const r = await cli(['branch', 'first', '--lr', '0.1', '--run-id', 'kid', '--store', store]);
    expect(r.code).toBe(2);
    expect(errorLines(r)).toEqual([
      'retrace: bad branch target "first": name the point to branch from, e.g. first@last or first@best (best, last, ckpt:K, int:N, step:N or an event number)',
    ]);
    expect(existsSync(path.join(store, 'runs', 'kid'))).toBe(false);
    expect(json(await cli(['branch', 'first@last', '--lr', '0.1', '--stop-point', '1', '--run-id', 'kid', '--store', store, '--json']))).toMatchObject({ runId: 'kid' });
  });
});

describe('progress and summaries', () => {
  it('resume and replay count steps against the run budget; replay names a recorded backend change as the cause of a divergence', async () => {
    const store = await tempDir();
    await crashedRun(store, 'k');
    const resumed = await cli(['resume', 'k', '--backend', 'cpu', '--store', store]);
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(/^ {2}step 31\/90 loss /m);
    expect(resumed.stdout).not.toMatch(/\/0 /);

    const replayed = await cli(['replay', 'k', '--store', store, '--json']);
    expect(replayed.code).toBe(1);
    expect(replayed.stderr).toMatch(/^ {2}step 1\/90 loss /m);
    const result = json(replayed);
    expect(result).toMatchObject({ identical: false, firstDivergence: 31 });
    expect(result.cause).toMatch(/^the run was continued on another backend at event \d+ \(`resume`: recorded on wasm .* running on cpu/);
    const text = await cli(['replay', 'k', '--store', store]);
    expect(text.stdout).toMatch(/replay DIVERGED at step 31 \(event \d+\)\n.*\ncause: the run was continued on another backend/);

    // A replay of a run that never changed backend has no cause to give.
    await cli(['train', ...IRIS, '--run-id', 'plain', '--store', store, '--json']);
    expect(json(await cli(['replay', 'plain', '--store', store, '--json']))).toMatchObject({ identical: true, cause: null });
  });

  it('labels the final and the best weights hash, and --json gives bestWeightsHash = the best checkpoint’s own hash', async () => {
    const store = await tempDir();
    const s = json(await cli(['train', ...IRIS, '--lr', '0.05', '--run-id', 'r', '--store', store, '--json']));
    expect(Object.keys(s).sort()).toEqual(['bestCheckpoint', 'bestWeightsHash', 'examplesSeen', 'runId', 'state', 'step', 'stopReason', 'weightsHash']);
    const log = (await cli(['log', 'r', '--store', store, '--json'])).stdout.trim().split('\n').map((l) => JSON.parse(l));
    const best = log.filter((e) => e.type === 'checkpoint.committed' && e.data.index === s.bestCheckpoint);
    expect(best).toHaveLength(1);
    expect(s.bestWeightsHash).toBe(best[0].data.weightsHash);
    // The export of `best` writes exactly those weights.
    const exported = json(await cli(['export', 'r', '--out', path.join(store, 'm'), '--store', store, '--json']));
    expect(exported.weightsHash).toBe(s.bestWeightsHash);

    const text = await cli(['resume', 'r', '--store', store]); // a finished run prints its summary
    expect(text.stdout).toContain(`final weightsHash: ${s.weightsHash}`);
    expect(text.stdout).toContain(`best checkpoint: ${s.bestCheckpoint}   its weightsHash: ${s.bestWeightsHash}`);
  });
});

describe('the tour writes outside the checkout', () => {
  it('the demo (npm start) keeps its store in the OS temp folder unless --store or $RETRACE_STORE names one', async () => {
    const { demoStore } = await import('../../src/cli/commands/demo.js');
    expect(demoStore(undefined, {})).toBe(path.join(tmpdir(), 'retrace-demo'));
    expect(demoStore(undefined, { RETRACE_STORE: 'elsewhere' })).toBe(path.resolve('elsewhere'));
    expect(demoStore('mine', { RETRACE_STORE: 'elsewhere' })).toBe(path.resolve('mine'));
  });

  it('export names loadExport as the way to load the model in Node', async () => {
    const store = await tempDir();
    await cli(['train', ...IRIS, '--stop-point', '1', '--run-id', 'e', '--store', store, '--json']);
    const out = path.join(store, 'm');
    const r = await cli(['export', 'e', '--out', out, '--store', store]);
    expect(r.stdout).toContain(`load it in Node with retrace's loadExport(${JSON.stringify(out)}) (plain @tensorflow/tfjs)`);
  });
});

describe('du, gc and a store that is not there', () => {
  it('du and gc print tables for people (JSON only with --json) and gc says why it kept blobs', async () => {
    const store = await tempDir();
    await cli(['train', ...IRIS, '--stop-point', '1', '--run-id', 'a', '--store', store, '--json']);
    const du = await cli(['du', '--store', store]);
    expect(du.code).toBe(0);
    expect(du.stdout).toMatch(/^run +log on disk +own blobs on disk +shared blobs on disk +blobs\na +[\d.]+ KiB +[\d.]+ (B|KiB) +0 B +\d+\n/);
    expect(du.stdout).toMatch(/^total: [\d.]+ KiB on disk \([\d.]+ KiB of file contents\)$/m);
    expect(() => JSON.parse(du.stdout)).toThrow();
    const duJson = json(await cli(['du', '--store', store, '--json']));
    expect(duJson).toHaveProperty('totalBytes');

    const gcJson = json(await cli(['gc', '--store', store, '--json']));
    const gc = await cli(['gc', '--store', store]);
    expect(gc.code).toBe(0);
    expect(gc.stdout).toMatch(new RegExp(`^kept +${gcJson.referenced} +referenced by the 1 run\\(s\\) of the store$`, 'm'));
    expect(gc.stdout).toMatch(/^kept +0 +unreferenced but younger than --grace 600 s/m);
    expect(gc.stdout).toMatch(/^deleted +0 +unreferenced by any run, older than --grace 600 s: 0 B freed$/m);
  });

  it('reading a store folder that does not exist creates nothing', async () => {
    const dir = path.join(await tempDir(), 'typo');
    const runs = await cli(['runs', '--store', dir]);
    expect(runs.code).toBe(0);
    expect(runs.stdout.trim()).toBe('no runs yet: start one with `retrace train`');
    expect((await cli(['runs', '--store', dir, '--json'])).stdout.trim()).toBe('[]');
    for (const args of [['du'], ['gc'], ['state', 'x'], ['log', 'x'], ['replay', 'x'], ['export', 'x', '--out', path.join(dir, 'm')], ['rm', 'x'], ['branch', 'x@last'], ['resume', 'x']]) {
      const r = await cli([...args, '--store', dir]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(errorLines(r), args.join(' ')).toEqual([`retrace: no retrace store at ${dir} (the folder does not exist); \`retrace train --store ${dir}\` creates one`]);
    }
    expect((await cli(['fsck', '--store', dir])).code).toBe(1);
    expect(existsSync(dir)).toBe(false);
  });
});
