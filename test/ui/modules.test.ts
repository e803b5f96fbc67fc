// The page is ES modules with no build step: every module app.js imports (and what they import)
// is served, without the token, as JavaScript, and every import names an export that module has.
// Anything else under /assets/ stays closed: the allow-list is the folder's own .js files.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUiServer, type UiServer } from '../../src/ui/server.js';
import { ROOT, removeTempDirs, tempDir } from './helpers.js';

let server: UiServer;

beforeAll(async () => {
  const dir = await tempDir();
  server = await startUiServer({ store: path.join(dir, 'store'), port: 0, pollMs: 200 });
});

afterAll(async () => {
  await server?.close();
  await removeTempDirs();
});

const IMPORT = /^import \{([^}]*)\} from '\.\/([\w-]+\.js)';$/gm;
const EXPORT = /^export (?:async )?(?:function|const|let|class) ([\w$]+)/gm;

describe('the page as ES modules', () => {
  it('serves every module app.js reaches, without a token, as text/javascript, and each import is exported', async () => {
    const seen = new Map<string, string>();
    const imports: Array<{ from: string; module: string; names: string[] }> = [];
    const queue = ['app.js'];
    while (queue.length > 0) {
      const name = queue.shift()!;
      if (seen.has(name)) continue;
      const res = await fetch(new URL(`/assets/${name}`, server.url));
      expect(res.status, name).toBe(200);
      expect(res.headers.get('content-type'), name).toMatch(/^text\/javascript\b/);
      const text = await res.text();
      seen.set(name, text);
      for (const m of text.matchAll(IMPORT)) {
        imports.push({ from: name, module: m[2]!, names: m[1]!.split(',').map((s) => s.trim()).filter(Boolean) });
        queue.push(m[2]!);
      }
    }
    // The split is real: app.js wires modules, and every .js file of the folder is reached.
    const files = readdirSync(path.join(ROOT, 'src/ui/public')).filter((f) => f.endsWith('.js')).sort();
    expect([...seen.keys()].sort()).toEqual(files);
    expect(files.length).toBeGreaterThan(2);
    for (const { from, module, names } of imports) {
      const exported = new Set([...seen.get(module)!.matchAll(EXPORT)].map((m) => m[1]));
      for (const n of names) expect(exported.has(n), `${from} imports ${n} from ${module}`).toBe(true);
    }
  });

  it('serves nothing else under /assets/ without the token', async () => {
    for (const route of ['/assets/nothing.js', '/assets/index.html', '/assets/app.css.js', '/assets/../server.ts']) {
      const res = await fetch(new URL(route, server.url));
      expect(res.status, route).toBe(401);
    }
  });
});
