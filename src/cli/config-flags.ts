// Every config key is also a flag (batchSize ↔ --batch-size), generated from the schema so the two
// never drift apart. Values are parsed here only as far as the shell needs (numbers, lists);
// the schema then validates them and names the field in its error.
import { NotRegularFileError, readRegularFile } from '../log/regular-file.js';
import path from 'node:path';
import type { Command } from 'commander';
import { ConfigError, ConfigSchema, flagName, validatePartialConfig, type ConfigInput } from '../config.js';

type Kind = 'boolean' | 'number' | 'string' | 'list';

function kindOf(key: string): Kind {
  if (key === 'freeze') return 'list';
  const shape = ConfigSchema.shape as Record<string, { def?: { type?: string; innerType?: { def?: { type?: string } } } }>;
  let def = shape[key]?.def;
  while (def && (def.type === 'optional' || def.type === 'nullable')) def = def.innerType?.def as typeof def;
  if (def?.type === 'boolean') return 'boolean';
  if (def?.type === 'number') return 'number';
  return 'string';
}

const DESCRIPTIONS: Record<string, string> = {
  runId: 'id of the new run (default: generated)',
  dataset: 'mnist, iris or csv:PATH',
  label: 'label column of a CSV data set',
  valFraction: 'validation fraction for iris and CSV',
  model: 'mlp, cnn or module:PATH',
  initFrom: 'start from a TF.js model.json folder',
  seed: 'seed of every random stream',
  backend: 'auto, wasm, cpu or tensorflow',
  batchSize: 'examples per step',
  trainingExamples: 'examples per virtual epoch (default: the data set size)',
  stopPoint: 'passes over trainingExamples (may be fractional)',
  checkpoints: 'checkpoints in the whole run',
  lr: 'base learning rate',
  optimizer: 'sgd, momentum, adam or rmsprop',
  momentum: 'momentum of the momentum optimizer',
  l2: 'L2 regularization factor',
  warmupSteps: 'steps of linear learning-rate warmup',
  earlyStopping: 'stop when the monitor stops improving (policy earlyStopping)',
  earlyStopPatience: 'evaluations without improvement before early stop',
  plateauPatience: 'evaluations without improvement before the learning rate drops',
  lrFactor: 'learning-rate factor on a plateau',
  minLr: 'lowest learning rate',
  minDelta: 'smallest change that counts as an improvement',
  cooldown: 'evaluations after a drop before plateau counting resumes',
  monitor: 'valLoss or valAccuracy',
  divergenceThreshold: 'stop as diverged when the loss exceeds this',
  snapshotEvery: 'also snapshot weights every N steps (0 = off)',
  freeze: 'comma-separated layer names to freeze',
};

export function addConfigFlags(cmd: Command, opts: { exclude?: string[] } = {}): Command {
  cmd.option('--config <file>', 'JSON config file (flags win over it)');
  for (const key of Object.keys(ConfigSchema.shape)) {
    if (opts.exclude?.includes(key)) continue;
    const flag = `--${flagName(key)}`;
    const kind = kindOf(key);
    const desc = DESCRIPTIONS[key] ?? key;
    if (kind === 'boolean') {
      // Both forms, so a flag can switch off what a --config file switched on; neither given
      // leaves the key undefined (the file's value or the default stands).
      cmd.option(flag, desc);
      cmd.option(`--no-${flagName(key)}`, `turn ${flag} off (overrides --config)`);
    }
    else cmd.option(`${flag} <value>`, desc);
  }
  return cmd;
}

function parseFlagValue(key: string, raw: unknown): unknown {
  const kind = kindOf(key);
  if (kind === 'boolean' || typeof raw !== 'string') return raw;
  if (kind === 'list') return raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (kind === 'number') {
    if (raw === 'null' || raw === 'off') return null;
    const n = Number(raw);
    return raw.trim() !== '' && Number.isFinite(n) ? n : raw; // the schema names the field if not a number
  }
  return raw;
}

/** The config a command's flags and --config file describe (file first, flags win). */
export async function configFromFlags(flags: Record<string, unknown>, cwd = process.cwd()): Promise<ConfigInput> {
  let fromFile: ConfigInput = {};
  if (typeof flags.config === 'string') {
    const file = path.resolve(cwd, flags.config);
    let text: string;
    try {
      // Only a regular file: /dev/zero grew memory until it failed, a named pipe waited forever.
      text = await readRegularFile(file, 'utf8');
    } catch (err) {
      if (err instanceof NotRegularFileError) throw new ConfigError(`config file ${flags.config} is ${err.what}, not a file`);
      throw new ConfigError(`config file ${flags.config} cannot be read`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new ConfigError(`config file ${flags.config} is not valid JSON: ${(err as Error).message}`);
    }
    fromFile = validatePartialConfig(json, `config file ${flags.config}`);
  }
  const fromFlags: Record<string, unknown> = {};
  for (const key of Object.keys(ConfigSchema.shape)) {
    if (flags[key] !== undefined) fromFlags[key] = parseFlagValue(key, flags[key]);
  }
  return { ...fromFile, ...validatePartialConfig(fromFlags, 'flags') };
}
