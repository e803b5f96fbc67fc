// `retrace ui [--store DIR] [--port N] [--host 127.0.0.1] [--token-file FILE]`: the local dashboard
// (docs/ui.md). Its API needs a token: a new one printed once in the URL, or a fixed one from
// $RETRACE_UI_TOKEN or --token-file (never a flag's value: every local user sees the process list).
import { Option, type Command } from 'commander';
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
    .option('--data-root <dir>', 'a folder whose files (csv:, module:, initFrom) a config from the page may name; repeatable (default: the current folder)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--token-file <file>', 'a fixed API token: the first line of FILE (or set $RETRACE_UI_TOKEN); default: a new token, printed once in the URL')
    // Not offered: a token on the command line is in every local user's process list. Accepted
    // only to say so and how to give it instead.
    .addOption(new Option('--token <token>').hideHelp())
    .option('--json', 'print {"url": ...} as one JSON line once listening')
    .action(async (flags: { store?: string; port: string; host: string; exportDir: string; dataRoot: string[]; tokenFile?: string; token?: string; json?: boolean }) => {
      const out = makeOutput(Boolean(flags.json));
      if (flags.token !== undefined) {
        throw new UsageError('--token is not accepted: a command line is visible to every local user; put the token in a file for --token-file FILE or in $RETRACE_UI_TOKEN');
      }
      if (!/^\d{1,5}$/.test(flags.port) || Number(flags.port) > 65535) throw new UsageError(`--port must be 0..65535, got "${flags.port}"`);
      if (flags.host !== 'localhost' && isIP(flags.host) === 0) throw new UsageError(`--host must be an IP address or localhost, got "${flags.host}"`);
      const { chooseToken, TokenError } = await import('../../ui/auth.js');
      let choice: Awaited<ReturnType<typeof chooseToken>>;
      try {
        choice = await chooseToken({ tokenFile: flags.tokenFile });
      } catch (err) {
        if (err instanceof TokenError) throw new UsageError(err.message);
        throw err;
      }
      if (choice.warning) out.warn(choice.warning);
      const { startUiServer, isLoopback } = await import('../../ui/server.js');
      const { DataRootError } = await import('../../ui/data-roots.js');
      let server: Awaited<ReturnType<typeof startUiServer>>;
      try {
        server = await startUiServer({ store: flags.store, port: Number(flags.port), host: flags.host, exportDir: flags.exportDir, token: choice.token, dataRoots: flags.dataRoot });
      } catch (err) {
        if (err instanceof DataRootError) throw new UsageError(err.message);
        throw err;
      }
      if (!isLoopback(flags.host)) {
        out.warn(`listening on ${flags.host}: other hosts can reach the dashboard, and its token crosses the network unencrypted (plain HTTP)`);
      }
      // A new token is printed once, in the URL to open; a fixed one the user already has is not
      // written to the terminal (or a service's log) again.
      const generated = choice.source === 'generated';
      const shown = generated ? server.openUrl : server.url;
      const how = generated ? 'open this URL once; it sets a cookie' : `token from ${choice.source === 'env' ? '$RETRACE_UI_TOKEN' : flags.tokenFile}: open ${server.url}?token=TOKEN once`;
      out.result({ url: shown, store: server.store.location, dataRoots: server.dataRoots }, () => `retrace ui: ${shown}  (${how}; store ${server.store.location}; data roots ${server.dataRoots.join(', ')}; Ctrl-C to stop)`);
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
