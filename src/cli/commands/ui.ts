// `retrace ui [--store DIR] [--port N] [--host 127.0.0.1]`: the local dashboard (docs/ui.md).
import type { Command } from 'commander';
import { isIP } from 'node:net';
import { makeOutput, UsageError } from '../output.js';

export function registerUi(program: Command): void {
  program
    .command('ui')
    .description('a local dashboard: runs as a lineage tree, charts, time travel, branch/export/replay from the page')
    .option('--store <dir>', 'store folder (default: $RETRACE_STORE or ./.retrace)')
    .option('--port <n>', 'port to listen on (0 = a free one)', '7077')
    .option('--host <address>', 'address to listen on; anything but loopback makes the dashboard reachable from other hosts', '127.0.0.1')
    .option('--export-dir <dir>', 'where exports made from the page go', 'retrace-exports')
    .option('--json', 'print {"url": ...} as one JSON line once listening')
    .action(async (flags: { store?: string; port: string; host: string; exportDir: string; json?: boolean }) => {
      const out = makeOutput(Boolean(flags.json));
      if (!/^\d{1,5}$/.test(flags.port) || Number(flags.port) > 65535) throw new UsageError(`--port must be 0..65535, got "${flags.port}"`);
      if (flags.host !== 'localhost' && isIP(flags.host) === 0) throw new UsageError(`--host must be an IP address or localhost, got "${flags.host}"`);
      const { startUiServer, isLoopback } = await import('../../ui/server.js');
      const server = await startUiServer({ store: flags.store, port: Number(flags.port), host: flags.host, exportDir: flags.exportDir });
      if (!isLoopback(flags.host)) {
        out.warn(`listening on ${flags.host}: anyone who can reach this machine can see the runs and start trainings (there is no login)`);
      }
      out.result({ url: server.url, store: server.store.dir }, () => `retrace ui: ${server.url}  (store ${server.store.dir}; Ctrl-C to stop)`);
      // Ctrl-C: stop the page's trainings gracefully (each commits an interrupt checkpoint), then exit.
      await new Promise<void>((resolve) => {
        let stopping = false;
        const onSignal = (name: NodeJS.Signals) => {
          if (stopping) {
            process.stderr.write(`\n${name} again: exiting now\n`);
            process.exit(130);
          }
          stopping = true;
          const running = server.jobs.running().length;
          out.warn(`${name}: stopping${running > 0 ? ` (${running === 1 ? 'a job commits' : `${running} jobs commit`} an interrupt checkpoint first; again to exit at once)` : ''}`);
          server.close().then(resolve, (err: unknown) => {
            process.stderr.write(`retrace ui: ${(err as Error).message}\n`);
            resolve();
          });
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
      });
    });
}
