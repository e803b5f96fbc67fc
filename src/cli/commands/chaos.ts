// `retrace chaos RUN-CONFIG [--kills N] [--seed S] [--store DIR] [--json]`: proves crash safety on a
// real run: trains the config once uninterrupted, then trains it again under SIGKILLs at seeded
// moments (between steps, inside checkpoint commits), resuming after each, and checks every run
// ends bit-identical to the reference with nothing committed lost (src/chaos/harness.ts). Exit 0
// when all checks hold, 1 on any divergence or loss.
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Command } from 'commander';
import { formatSummary, randomSeed, runChaos } from '../../chaos/harness.js';
import { ConfigError, validatePartialConfig } from '../../config.js';
import { storeDir } from '../../run/common.js';
import { makeOutput, UsageError } from '../output.js';

function positiveInt(flag: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new UsageError(`${flag} must be a positive integer, got "${raw}"`);
  return Number(raw);
}

export function registerChaos(program: Command): void {
  program
    .command('chaos')
    .argument('[run-config]', 'JSON config file (the same keys as `train --config`)')
    .option('--config <file>', 'the config file (instead of the argument)')
    .option('--kills <n>', 'mid-run SIGKILLs to reach', '20')
    .option('--seed <s>', 'seed of the kill schedule (default: random, printed)')
    .option('--kills-per-run <a-b>', 'kills per run, drawn in this range', '4-8')
    .option('--store <dir>', 'folder for the chaos stores, one per run (default: a new temporary folder, removed when all checks pass)')
    .option('--json', 'print the summary as one line of JSON on stdout')
    .description('kill training runs with SIGKILL at seeded moments, resume them, and check nothing diverges or is lost')
    .action(async (arg: string | undefined, flags: { config?: string; kills?: string; seed?: string; killsPerRun: string; store?: string; json?: boolean }) => {
      const out = makeOutput(Boolean(flags.json));
      const file = flags.config ?? arg;
      if (!file) throw new UsageError('chaos needs a RUN-CONFIG file (retrace chaos CONFIG.json, or --config CONFIG.json)');
      if (flags.config && arg && flags.config !== arg) throw new UsageError('give the config file once: as the argument or with --config');
      let text: string;
      try {
        text = await fsp.readFile(file, 'utf8');
      } catch {
        throw new ConfigError(`config file ${file} cannot be read`);
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (err) {
        throw new ConfigError(`config file ${file} is not valid JSON: ${(err as Error).message}`);
      }
      const config = validatePartialConfig(json, `config file ${file}`) as Record<string, unknown>;
      const kills = positiveInt('--kills', flags.kills, 20);
      const seed = flags.seed === undefined ? randomSeed() : Number(flags.seed);
      if (!Number.isSafeInteger(seed) || seed < 0) throw new UsageError(`--seed must be a non-negative integer, got "${flags.seed}"`);
      const m = /^(\d+)-(\d+)$/.exec(flags.killsPerRun);
      if (!m || Number(m[1]) < 1 || Number(m[2]) < Number(m[1])) throw new UsageError(`--kills-per-run must be A-B with 1 <= A <= B, got "${flags.killsPerRun}"`);
      const temporary = flags.store === undefined;
      const dir = temporary ? await fsp.mkdtemp(path.join(os.tmpdir(), 'retrace-chaos-store-')) : storeDir(flags.store);
      const summary = await runChaos({
        config,
        storeDir: dir,
        kills,
        seed,
        killsPerRun: [Number(m[1]), Number(m[2])],
        log: (line) => out.info(line),
      });
      out.result(summary, () => formatSummary(summary));
      if (!summary.ok) {
        const first = summary.problems[0];
        process.stderr.write(
          `retrace: chaos seed ${seed} failed: ${first ? `${first.runId}: ${first.message}` : `only ${summary.kills} of ${kills} kills happened`}; the store is kept in ${dir}\n`,
        );
        process.exitCode = 1;
      } else if (temporary) {
        await fsp.rm(dir, { recursive: true, force: true });
      }
    });
}
