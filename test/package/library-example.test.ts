// The package as a consumer gets it: `npm pack`, the tarball installed with its peer
// @tensorflow/tfjs into an empty folder, and README's library example run there exactly as
// written (extracted from README.md, not copied). Needs the build (`npm test` builds first).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../run/helpers.js';
import { codeBlockOf } from './readme.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  peerDependencies: Record<string, string>;
  dependencies: Record<string, string>;
};
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/**
 * Installs the tarball and the peer into `dir` with npm (from the local cache where it can). If
 * the registry cannot be reached, does what npm would: unpacks the tarball into
 * node_modules/retrace and links the dependencies (and the peer) from this checkout's install.
 */
function install(dir: string, tarball: string): 'npm' | 'linked' {
  const peer = `@tensorflow/tfjs@${pkg.peerDependencies['@tensorflow/tfjs']}`;
  const r = spawnSync(npm, ['install', '--prefer-offline', '--omit=optional', '--ignore-scripts', '--no-audit', '--no-fund', tarball, peer], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 240_000,
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });
  if (r.status === 0) return 'npm';
  process.stderr.write(`npm install failed (${r.status}; ${r.stderr.trim().split('\n').at(-1)}); linking the checkout's dependencies instead\n`);
  const modules = path.join(dir, 'node_modules');
  const target = path.join(modules, 'retrace');
  mkdirSync(target, { recursive: true });
  execFileSync('tar', ['xzf', tarball, '-C', target, '--strip-components=1']);
  for (const name of readdirSync(path.join(ROOT, 'node_modules'))) {
    if (name.startsWith('.') || name === 'retrace') continue;
    const from = path.join(ROOT, 'node_modules', name);
    if (!existsSync(path.join(modules, name))) symlinkSync(from, path.join(modules, name));
  }
  return 'linked';
}

describe('the packed package', () => {
  let consumer = '';
  let files: string[] = [];

  beforeAll(async () => {
    const work = await tempDir('retrace-pack-');
    const packed = JSON.parse(execFileSync(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: ROOT, encoding: 'utf8' })) as Array<{
      filename: string;
      files: Array<{ path: string }>;
    }>;
    files = packed[0]!.files.map((f) => f.path);
    consumer = path.join(work, 'consumer');
    mkdirSync(consumer);
    writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    const how = install(consumer, path.join(work, path.basename(packed[0]!.filename)));
    process.stderr.write(`packed tarball installed by ${how === 'npm' ? 'npm' : "linking this checkout's dependencies"}\n`);
  }, 300_000);

  it('ships what a user needs and nothing else (no tests, bench results, source maps or tour outputs)', () => {
    for (const needed of ['package.json', 'README.md', 'CHANGELOG.md', 'bin/retrace.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'src/ui/public/index.html']) {
      expect(files, needed).toContain(needed);
    }
    const unwanted = files.filter((f) => /^(test|bench|\.retrace|src\/(?!ui\/public\/))|\.map$|^dist\/(test|bench)\/|^(at-\d+|model|demo-model)\//.test(f));
    expect(unwanted).toEqual([]);
  });

  it('declares @tensorflow/tfjs as a peer, not as its own dependency', () => {
    expect(pkg.peerDependencies['@tensorflow/tfjs']).toBeDefined();
    expect(pkg.dependencies['@tensorflow/tfjs']).toBeUndefined();
  });

  it("runs README's library example as written, from the installed tarball", () => {
    const example = codeBlockOf(readFileSync(path.join(ROOT, 'README.md'), 'utf8'), '## As a library');
    writeFileSync(path.join(consumer, 'example.mjs'), example);
    const r = spawnSync(process.execPath, ['example.mjs'], { cwd: consumer, encoding: 'utf8', timeout: 180_000 });
    expect(r.stderr).not.toMatch(/tfjs-backend-wasm\.js|Uncaught|at file:/);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines).toContain('run.created');
    expect(lines.some((l) => /^stopped 20 [0-9a-f]{64}$/.test(l))).toBe(true);
    expect(lines.some((l) => /^run mine has no step 999\b/.test(l))).toBe(true); // a rejected promise, caught
    expect(lines).toContain('true'); // replay identical
    expect(lines).toContain("[ 'a', 'b' ]"); // the export's feature names
    // It used the installed tarball, not this checkout.
    expect(existsSync(path.join(consumer, 'node_modules', 'retrace', 'dist', 'src', 'index.js'))).toBe(true);
    expect(existsSync(path.join(consumer, 'mine-model', 'model.json'))).toBe(true);

    // README's tf.io.fromMemory recipe loads that export with plain @tensorflow/tfjs.
    const fromMemory = codeBlockOf(readFileSync(path.join(ROOT, 'README.md'), 'utf8'), '### Loading an export without retrace');
    writeFileSync(path.join(consumer, 'from-memory.mjs'), fromMemory);
    const m = spawnSync(process.execPath, ['from-memory.mjs'], { cwd: consumer, encoding: 'utf8', timeout: 120_000 });
    expect(m.status, m.stderr).toBe(0);
    expect(m.stdout).toContain("[ 'a', 'b' ] [ '0', '1' ]");
    expect(m.stdout).toMatch(/Tensor\n\s+\[\[[\d.e-]+, [\d.e-]+\],?\]/);
  });

  it('a library error rejects the caller’s promise with retrace’s message (no abort from inside the wasm backend)', () => {
    const script = [
      "import { openStore, train } from 'retrace';",
      "await train({ store: './errors', config: { runId: 'r', dataset: 'iris', backend: 'wasm', stopPoint: 0.2, checkpoints: 1 } });",
      "const s = await openStore('./errors');",
      "await s.state('r', 'step:20');", // not caught: Node must print retrace's error and exit 1
    ].join('\n');
    writeFileSync(path.join(consumer, 'uncaught.mjs'), script);
    const r = spawnSync(process.execPath, ['uncaught.mjs'], { cwd: consumer, encoding: 'utf8', timeout: 120_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/PointError: run r has no step 20/);
    expect(r.stderr).not.toMatch(/tfjs-backend-wasm/);
  });

  it('ships the dashboard: `retrace ui` from the installed package serves its page', async () => {
    const child = spawn(process.execPath, [path.join(consumer, 'node_modules', 'retrace', 'bin', 'retrace.js'), 'ui', '--port', '0', '--json', '--store', path.join(consumer, 'ui-store')], {
      cwd: consumer,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const line = out.split('\n').find((l) => l.startsWith('{'));
          if (line) resolve((JSON.parse(line) as { url: string }).url);
        });
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        child.once('close', (code) => reject(new Error(`retrace ui exited ${code}: ${err}`)));
      });
      // The printed URL carries the token: it sets the cookie and sends the browser to the page.
      const open = await fetch(url, { redirect: 'manual' });
      expect(open.status).toBe(303);
      const cookie = open.headers.get('set-cookie')!.split(';')[0]!;
      const page = await fetch(new URL('/', url), { headers: { cookie } });
      expect(page.status).toBe(200);
      expect(await page.text()).toMatch(/<script/);
      expect((await fetch(new URL('/', url))).status).toBe(401);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('close', r));
    }
  });

  it('installs the retrace command: --version prints the package version', () => {
    const r = spawnSync(process.execPath, [path.join(consumer, 'node_modules', 'retrace', 'bin', 'retrace.js'), '--version'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });
});
