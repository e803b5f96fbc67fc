#!/usr/bin/env node
// The `retrace` command line. Each command is thin: it parses flags, calls the library API and
// prints the result (one JSON line with --json). Exit codes: 0 success, 1 failure, 2 bad usage.
import { Command, CommanderError } from 'commander';
import { registerCommands } from './commands/index.js';
import { MEMORY_PREFIX } from '../storage/open.js';
import { describeError, exitCodeFor, UsageError } from './output.js';
import { packageVersion } from './version.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('retrace')
    .description('Event-sourced TensorFlow.js training: resume, replay bit-exactly and branch from any event.')
    .version(packageVersion(), '-V, --version', "print retrace's version")
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  // An in-memory store lives inside one process: a command would train into it and lose
  // everything at exit, or list nothing. It is for the library (README, "As a library").
  program.hook('preAction', (_program, command) => {
    const store = (command.opts() as { store?: unknown }).store ?? process.env.RETRACE_STORE;
    if (typeof store === 'string' && store.startsWith(MEMORY_PREFIX)) {
      throw new UsageError(`${store} is an in-memory store, which lives only inside one process; give the command a folder (--store DIR or RETRACE_STORE)`);
    }
  });
  registerCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  // `retrace log RUN | head`: a closed pipe ends the output, it is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are not errors; commander already printed its message.
      return err.exitCode === 0 ? 0 : 2;
    }
    process.stderr.write(`retrace: ${describeError(err)}\n`);
    if (process.env.RETRACE_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    return exitCodeFor(err);
  }
}

const code = await main(process.argv.slice(2));
// Let stdout drain before exiting; tfjs-wasm keeps no handle that would hold the process.
process.exitCode = code;
setImmediate(() => process.exit(code));
