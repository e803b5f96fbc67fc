// Registers every command. Each command file adds one subcommand and stays thin.
import type { Command } from 'commander';
import { registerBranch } from './branch.js';
import { registerChaos } from './chaos.js';
import { registerCheckpoints } from './checkpoints.js';
import { registerDemo } from './demo.js';
import { registerExport } from './export.js';
import { registerFsck } from './fsck.js';
import { registerInspect } from './inspect.js';
import { registerMaintenance } from './maintenance.js';
import { registerReplay } from './replay.js';
import { registerTensorBoard } from './tensorboard.js';
import { registerTrain } from './train.js';
import { registerUi } from './ui.js';

export function registerCommands(program: Command): void {
  registerTrain(program);
  registerBranch(program);
  registerReplay(program);
  registerExport(program);
  registerInspect(program);
  registerCheckpoints(program);
  registerMaintenance(program);
  registerDemo(program);
  registerFsck(program);
  registerChaos(program);
  registerUi(program);
  registerTensorBoard(program);
}

/** Flags every command takes. */
export function commonFlags(cmd: Command): Command {
  return cmd.option('--store <dir>', 'store folder (default: $RETRACE_STORE or ./.retrace)').option('--json', 'print one line of JSON on stdout');
}
