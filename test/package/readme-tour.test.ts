// README's five-minute tour, run as written (one shell script, `set -e`) with the temp folder set
// to a fresh one: every command succeeds, and everything it writes lands outside the checkout.
// Only `retrace ui` is left out: it serves until stopped (test/ui covers it).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../run/helpers.js';
import { codeBlockOf } from './readme.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

describe("README's tour", () => {
  it('runs as written and writes only to the temp folder', async () => {
    const tmp = await tempDir('retrace-tour-');
    const block = codeBlockOf(readFileSync(path.join(ROOT, 'README.md'), 'utf8'), '## A five-minute tour');
    const lines = block.split('\n').filter((l) => !/^npx retrace ui\b/.test(l));
    expect(lines.filter((l) => l.startsWith('npx retrace')).length).toBeGreaterThanOrEqual(9);
    const before = readdirSync(ROOT).sort();
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp };
    delete env.RETRACE_STORE;
    const r = spawnSync('sh', ['-e', '-c', lines.join('\n')], { cwd: ROOT, env, encoding: 'utf8', timeout: 600_000 });
    expect(r.status, r.stderr.slice(-2000)).toBe(0);
    expect(r.stdout).toMatch(/replay identical to the log/);
    expect(readdirSync(ROOT).sort()).toEqual(before);
    for (const made of ['retrace-tour', 'at-333/model.json', 'first-model/model.json']) expect(existsSync(path.join(tmp, made)), made).toBe(true);
  }, 600_000);
});
