// The dashboard's page: its files (src/ui/public, found next to this module or, from dist/, in the
// sources) and uPlot's from node_modules, read once at start and served by exact path. Nothing else
// on disk is reachable through these routes, and nothing comes from the network.
import { existsSync, promises as fsp } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Hono } from 'hono';

/** The static page's folder: next to this module in the sources, or in the sources from dist/. */
function publicDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, 'public'), path.resolve(here, '../../../src/ui/public')];
  const found = candidates.find((p) => existsSync(path.join(p, 'index.html')));
  if (!found) throw new Error(`retrace ui: the page's files are missing (looked in ${candidates.join(', ')})`);
  return found;
}

export interface Asset {
  body: Buffer;
  type: string;
}

export async function loadAssets(): Promise<Map<string, Asset>> {
  const dir = publicDir();
  const require = createRequire(import.meta.url);
  const files: Array<[string, string, string]> = [
    ['/', path.join(dir, 'index.html'), 'text/html; charset=utf-8'],
    // The page's ES modules (app.js imports the others): every .js file of the folder, by exact path.
    ...(await fsp.readdir(dir))
      .filter((name) => name.endsWith('.js'))
      .sort()
      .map((name): [string, string, string] => [`/assets/${name}`, path.join(dir, name), 'text/javascript; charset=utf-8']),
    ['/assets/app.css', path.join(dir, 'app.css'), 'text/css; charset=utf-8'],
    ['/assets/uPlot.iife.min.js', require.resolve('uplot/dist/uPlot.iife.min.js'), 'text/javascript; charset=utf-8'],
    ['/assets/uPlot.min.css', require.resolve('uplot/dist/uPlot.min.css'), 'text/css; charset=utf-8'],
  ];
  const out = new Map<string, Asset>();
  for (const [route, file, type] of files) out.set(route, { body: await fsp.readFile(file), type });
  return out;
}

/** Serves each asset at its route (no token needed for these: see publicPaths in auth.ts) and an empty favicon. */
export function staticRoutes(app: Hono, assets: ReadonlyMap<string, Asset>): void {
  for (const [route, asset] of assets) {
    app.get(route, (c) => {
      c.header('Content-Type', asset.type);
      c.header('Cache-Control', 'no-cache');
      return c.body(new Uint8Array(asset.body));
    });
  }
  app.get('/favicon.ico', (c) => c.body(null, 204));
}

/** The paths served without a token: the page's scripts and styles and the favicon, not the page itself. */
export function publicPaths(assets: ReadonlyMap<string, Asset>): Set<string> {
  return new Set([...assets.keys()].filter((route) => route !== '/').concat('/favicon.ico'));
}
