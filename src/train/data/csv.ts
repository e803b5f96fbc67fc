// `csv:PATH` data sets: a header row naming the columns, one label column (default "label"), every
// other column a numeric feature. Every problem is a one-line DatasetError naming the file and,
// where there is one, the line and column: a user should be able to fix the file from the message.
import { resolve } from 'node:path';
import { parse } from 'csv-parse/sync';
import { NotRegularFileError, readRegularFile } from '../../log/regular-file.js';
import type { Dataset } from '../types.js';
import { makeDataset } from './fingerprint.js';
import { compareCodePoints, DatasetError, gatherSplit, splitIndices } from './split.js';

export interface CsvOptions {
  /** Name of the label column. */
  readonly label: string;
  readonly valFraction: number;
  readonly seed: number;
  /** Directory PATH is relative to (default: process.cwd()). */
  readonly cwd?: string;
}

/** A plain decimal number: what a spreadsheet writes. Rejects '', '0x1f', '1,5', 'abc'. */
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
/** Spellings of non-finite values, reported as such rather than as "not a number". */
const NON_FINITE = /^[+-]?(?:inf|infinity|nan)$/i;
/** Labels that are all of this form are class indices. */
const CLASS_INDEX = /^\d+$/;
/** A guard against a numeric column mistaken for class indices (e.g. a year or an id). */
const MAX_CLASSES = 65536;

/** Quotes a cell for a message: JSON escaping keeps the message on one line; long cells are cut. */
function show(cell: string): string {
  return JSON.stringify(cell.length > 40 ? `${cell.slice(0, 40)}…` : cell);
}

interface Row {
  readonly cells: string[];
  /** 1-based line where the record ends (csv-parse's info.lines). */
  readonly line: number;
}

/**
 * Reads a CSV file, refusing anything but a regular file before reading a byte: a device such as
 * /dev/zero never ends (it grew memory to ~700 MB before failing), a FIFO blocks.
 */
async function readText(path: string, abs: string): Promise<string> {
  try {
    return await readRegularFile(abs, 'utf8');
  } catch (err) {
    if (err instanceof NotRegularFileError) {
      const what = err.code === 'EISDIR' ? 'a directory' : err.what;
      throw new DatasetError(`CSV path ${abs} is ${what}, not a regular file (dataset "csv:${path}"); give a CSV file`);
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new DatasetError(`CSV file not found: ${abs} (dataset "csv:${path}")`);
    throw new DatasetError(`cannot read CSV file ${abs}: ${(err as Error).message}`);
  }
}

function parseRows(file: string, text: string): Row[] {
  let records: Array<{ record: string[]; info: { lines: number } }>;
  try {
    // info: true gives each record's line number; column counts are checked below so the message
    // can name the header's count; blank lines are skipped.
    records = parse(text, {
      bom: true,
      info: true,
      relax_column_count: true,
      skip_empty_lines: true,
      trim: true,
    }) as unknown as typeof records;
  } catch (err) {
    throw new DatasetError(`${file}: malformed CSV: ${(err as Error).message}`);
  }
  // A whitespace-only line parses as one empty cell: treat it like a blank line.
  return records
    .filter((r) => !(r.record.length === 1 && r.record[0] === ''))
    .map((r) => ({ cells: r.record, line: r.info.lines }));
}

/** Checks the header and returns the label column's position. */
function checkHeader(file: string, header: Row, label: string): number {
  const names = header.cells;
  if (names.every((name) => NUMBER.test(name))) {
    throw new DatasetError(
      `${file}: line ${header.line} looks like data, not a header (every cell is a number); the first row must name the columns, e.g. x1,x2,${label}`,
    );
  }
  const seen = new Set<string>();
  names.forEach((name, i) => {
    if (name === '') throw new DatasetError(`${file}: line ${header.line}: header column ${i + 1} has no name`);
    if (seen.has(name)) throw new DatasetError(`${file}: line ${header.line}: column name ${show(name)} appears twice in the header`);
    seen.add(name);
  });
  const labelCol = names.indexOf(label);
  if (labelCol < 0) {
    throw new DatasetError(`${file}: label column ${show(label)} not found; columns present: ${names.join(', ')}`);
  }
  if (names.length < 2) {
    throw new DatasetError(`${file}: no feature columns: the only column is the label ${show(label)}`);
  }
  return labelCol;
}

/** One feature cell as float32, or a DatasetError naming the line and the column. */
function parseFeature(file: string, row: Row, col: number, column: string): number {
  const cell = row.cells[col]!;
  const where = `${file}: line ${row.line}, column ${col + 1} (${show(column)})`;
  if (NON_FINITE.test(cell)) throw new DatasetError(`${where}: ${show(cell)} is not finite; features must be finite numbers`);
  if (!NUMBER.test(cell)) throw new DatasetError(`${where}: ${show(cell)} is not a number; every column except the label must be numeric`);
  const v = Math.fround(Number(cell));
  if (!Number.isFinite(v)) throw new DatasetError(`${where}: ${show(cell)} is not finite as a float32 (magnitude above 3.4e38)`);
  return v;
}

/** Class indices if every label is a non-negative integer, else names in code point order. */
function encodeLabels(file: string, labels: string[], lines: number[]): { y: Int32Array; classNames: string[] } {
  const y = new Int32Array(labels.length);
  if (labels.every((l) => CLASS_INDEX.test(l))) {
    let max = 0;
    labels.forEach((l, i) => {
      const v = Number(l);
      if (v >= MAX_CLASSES) {
        throw new DatasetError(`${file}: line ${lines[i]}: label ${l} is too large for a class index (at most ${MAX_CLASSES - 1})`);
      }
      y[i] = v;
      max = Math.max(max, v);
    });
    return { y, classNames: Array.from({ length: max + 1 }, (_, i) => String(i)) };
  }
  const classNames = [...new Set(labels)].sort(compareCodePoints);
  const classOf = new Map(classNames.map((name, i) => [name, i] as const));
  labels.forEach((l, i) => {
    y[i] = classOf.get(l)!;
  });
  return { y, classNames };
}

/** Loads `csv:PATH`; PATH is resolved against opts.cwd. The Dataset's name is the spec as given. */
export async function loadCsv(path: string, opts: CsvOptions): Promise<Dataset> {
  if (path === '') throw new DatasetError('dataset "csv:" needs a path, e.g. csv:data/train.csv');
  const abs = resolve(opts.cwd ?? process.cwd(), path);
  const file = `CSV ${path}`;
  const text = await readText(path, abs);
  if (text.replace(/^\uFEFF/, '').trim() === '') throw new DatasetError(`${file}: file is empty; expected a header row and data rows`);

  const rows = parseRows(file, text);
  if (rows.length === 0) throw new DatasetError(`${file}: file is empty; expected a header row and data rows`);
  const [header, ...data] = rows as [Row, ...Row[]];
  const labelCol = checkHeader(file, header, opts.label);
  if (data.length === 0) throw new DatasetError(`${file}: no data rows after the header`);
  if (data.length < 2) {
    throw new DatasetError(`${file}: only ${data.length} data row; need at least 2 (one for training, one for validation)`);
  }

  const columns = header.cells.length;
  const features = columns - 1;
  const x = new Float32Array(data.length * features);
  const labels: string[] = [];
  const lines: number[] = [];
  data.forEach((row, i) => {
    if (row.cells.length !== columns) {
      throw new DatasetError(`${file}: line ${row.line}: expected ${columns} columns (as in the header), got ${row.cells.length}`);
    }
    let f = 0;
    for (let col = 0; col < columns; col++) {
      if (col === labelCol) continue;
      x[i * features + f++] = parseFeature(file, row, col, header.cells[col]!);
    }
    const label = row.cells[labelCol]!;
    if (label === '') throw new DatasetError(`${file}: line ${row.line}, column ${labelCol + 1} (${show(opts.label)}): the label is empty`);
    labels.push(label);
    lines.push(row.line);
  });

  const { y, classNames } = encodeLabels(file, labels, lines);
  const split = splitIndices(data.length, opts.valFraction, opts.seed);
  return makeDataset(`csv:${path}`, {
    inputShape: [features],
    numClasses: classNames.length,
    classNames,
    train: gatherSplit(x, y, features, split.train),
    val: gatherSplit(x, y, features, split.val),
  }, header.cells.filter((_, col) => col !== labelCol));
}
