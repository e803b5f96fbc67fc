import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DatasetError, loadDataset } from '../../src/train/data/index.js';

const dir = mkdtempSync(join(tmpdir(), 'retrace-csv-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let counter = 0;
/** Writes a CSV into the temp dir and returns its name relative to it. */
function csv(text: string, name = `f${counter++}.csv`): string {
  writeFileSync(join(dir, name), text);
  return name;
}

const opts = { label: 'label', valFraction: 0.2, seed: 1, cwd: dir };
const load = (path: string, extra: Partial<typeof opts> = {}) => loadDataset(`csv:${path}`, { ...opts, ...extra });

/** Expects a one-line DatasetError whose message matches every pattern. */
async function expectError(path: string, patterns: RegExp[], extra: Partial<typeof opts> = {}): Promise<void> {
  const err = await load(path, extra).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(DatasetError);
  const { name, message } = err as DatasetError;
  expect(name).toBe('DatasetError');
  expect(message).not.toContain('\n');
  for (const p of patterns) expect(message).toMatch(p);
}

/** All examples of a data set as "features:label" strings, sorted. */
function examples(ds: Awaited<ReturnType<typeof load>>): string[] {
  const f = ds.inputShape[0]!;
  const out: string[] = [];
  for (const s of [ds.train, ds.val]) {
    for (let i = 0; i < s.size; i++) out.push(`${Array.from(s.x.subarray(i * f, (i + 1) * f)).join(',')}:${s.y[i]}`);
  }
  return out.sort();
}

describe('csv: loading', () => {
  it('reads integer labels as class indices (numClasses = max + 1)', async () => {
    const ds = await load(csv('a,b,label\n1,2,0\n3,4,2\n5,6,1\n7,8,2\n9,10,0\n'));
    expect(ds.name).toMatch(/^csv:f\d+\.csv$/);
    expect(ds.inputShape).toEqual([2]);
    expect(ds.numClasses).toBe(3);
    expect(ds.classNames).toEqual(['0', '1', '2']);
    expect(ds.train.size).toBe(4);
    expect(ds.val.size).toBe(1);
    expect(examples(ds)).toEqual(['1,2:0', '3,4:2', '5,6:1', '7,8:2', '9,10:0'].sort());
  });

  it('leaves gaps in class indices (labels 0 and 3 → 4 classes)', async () => {
    const ds = await load(csv('x,label\n1,0\n2,3\n'));
    expect(ds.numClasses).toBe(4);
    expect(ds.classNames).toEqual(['0', '1', '2', '3']);
  });

  it('maps string labels to classes in sorted (code point) order', async () => {
    const ds = await load(csv('label,x\nzebra,1\nApple,2\nmango,3\nzebra,4\né,5\n'));
    expect(ds.classNames).toEqual(['Apple', 'mango', 'zebra', 'é']);
    expect(ds.numClasses).toBe(4);
    expect(examples(ds)).toEqual(['1:2', '2:0', '3:1', '4:2', '5:3'].sort());
  });

  it('treats a mix of integers and words as string labels', async () => {
    const ds = await load(csv('x,label\n1,10\n2,9\n3,cat\n'));
    expect(ds.classNames).toEqual(['10', '9', 'cat']);
  });

  it('uses a custom label column, wherever it is', async () => {
    const ds = await load(csv('species,w,h\nb,1.5,2\na,3,-4e2\nb,5,6\n'), { label: 'species' });
    expect(ds.inputShape).toEqual([2]);
    expect(ds.classNames).toEqual(['a', 'b']);
    expect(examples(ds)).toEqual(['1.5,2:1', '3,-400:0', '5,6:1'].sort());
  });

  it('tolerates a BOM, CRLF line endings, blank lines, spaces and quoted cells', async () => {
    const ds = await load(csv('\uFEFFa,"b",label\r\n 1 , 2 ,x\r\n\r\n"3",4,y\r\n'));
    expect(examples(ds)).toEqual(['1,2:0', '3,4:1']);
  });

  it('resolves the path against cwd and names the data set by the spec', async () => {
    mkdirSync(join(dir, 'sub'), { recursive: true });
    csv('a,label\n1,0\n2,1\n', 'sub/data.csv');
    const ds = await loadDataset('csv:data.csv', { ...opts, cwd: join(dir, 'sub') });
    expect(ds.name).toBe('csv:data.csv');
    expect(ds.train.size + ds.val.size).toBe(2);
  });

  it('splits by valFraction with a seeded split', async () => {
    const rows = Array.from({ length: 50 }, (_, i) => `${i},${i % 3}`).join('\n');
    const path = csv(`x,label\n${rows}\n`);
    const a = await load(path);
    const b = await load(path);
    const c = await load(path, { seed: 2 });
    expect(a.val.size).toBe(10);
    expect(a.train.size).toBe(40);
    expect(Array.from(a.val.x)).toEqual(Array.from(b.val.x));
    expect(Array.from(a.val.x)).not.toEqual(Array.from(c.val.x));
    // Rows keep file order within each split.
    expect(Array.from(a.train.x)).toEqual(Array.from(a.train.x).sort((p, q) => p - q));
  });
});

describe('csv: fingerprint', () => {
  const text = 'a,b,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n';

  it('does not depend on the file path', async () => {
    mkdirSync(join(dir, 'moved'), { recursive: true });
    const a = await load(csv(text, 'orig.csv'));
    const b = await load(csv(text, 'moved/renamed.csv'));
    expect(a.name).not.toBe(b.name);
    expect(a.fingerprint).toBe(b.fingerprint);
    expect(a.fingerprint).toMatch(/^[0-9a-f]{64}$/);
  });

  it('changes when one cell changes', async () => {
    const a = await load(csv(text));
    const b = await load(csv(text.replace('5,6,0', '5,6.5,0')));
    const c = await load(csv(text.replace('5,6,0', '5,6,1')));
    expect(b.fingerprint).not.toBe(a.fingerprint);
    expect(c.fingerprint).not.toBe(a.fingerprint);
  });
});

describe('csv: errors name the problem', () => {
  it('file not found', async () => {
    await expectError('missing.csv', [/not found/, /missing\.csv/]);
  });

  it('a directory', async () => {
    mkdirSync(join(dir, 'adir'), { recursive: true });
    await expectError('adir', [/directory/]);
  });

  it('a device, a FIFO and a directory are refused before a byte is read (csv:/dev/zero used to grow memory to ~700 MB)', async () => {
    await expectError('/dev/zero', [/^CSV path \/dev\/zero is a device, not a regular file \(dataset "csv:\/dev\/zero"\); give a CSV file$/]);
    mkdirSync(join(dir, 'bdir'), { recursive: true });
    await expectError('bdir', [/^CSV path .*bdir is a directory, not a regular file/]);
    // A FIFO with no writer: opening it for reading would block forever without O_NONBLOCK.
    execFileSync('mkfifo', [join(dir, 'pipe.csv')]);
    await expectError('pipe.csv', [/^CSV path .*pipe\.csv is a named pipe \(FIFO\), not a regular file/]);
    // A symlink to a regular file is a regular file.
    symlinkSync(join(dir, csv('x,label\n1,0\n2,1\n3,0\n4,1\n5,0\n')), join(dir, 'link.csv'));
    expect((await load('link.csv')).train.size + (await load('link.csv')).val.size).toBe(5);
  });

  it('empty file', async () => {
    await expectError(csv(''), [/empty/]);
    await expectError(csv('\n  \n\n'), [/empty/]);
  });

  it('header only: no data rows', async () => {
    await expectError(csv('a,b,label\n'), [/no data rows/]);
  });

  it('no header (first row is data)', async () => {
    await expectError(csv('1,2,0\n3,4,1\n'), [/line 1/, /not a header/]);
  });

  it('label column missing: names the columns present', async () => {
    await expectError(csv('a,b,class\n1,2,0\n3,4,1\n'), [/label column "label" not found/, /columns present: a, b, class/]);
    await expectError(csv('a,b,label\n1,2,0\n3,4,1\n'), [/label column "species" not found/, /a, b, label/], { label: 'species' });
  });

  it('only a label column: no features', async () => {
    await expectError(csv('label\n0\n1\n'), [/no feature columns/]);
  });

  it('duplicate or empty column names', async () => {
    await expectError(csv('a,a,label\n1,2,0\n3,4,1\n'), [/"a" appears twice/]);
    await expectError(csv('a,,label\n1,2,0\n3,4,1\n'), [/line 1/, /header column 2 has no name/]);
  });

  it('ragged rows: line number, expected and actual column counts', async () => {
    await expectError(csv('a,b,label\n1,2,0\n3,1\n5,6,1\n'), [/line 3/, /expected 3 columns/, /got 2/]);
    await expectError(csv('a,b,label\n1,2,0\n\n3,4,1,9\n'), [/line 4/, /expected 3 columns/, /got 4/]);
  });

  it('non-numeric feature: line and column', async () => {
    await expectError(csv('a,b,label\n1,2,0\n3,abc,1\n'), [/line 3/, /column 2 \("b"\)/, /"abc" is not a number/]);
    await expectError(csv('a,b,label\n1,,0\n3,4,1\n'), [/line 2/, /column 2 \("b"\)/, /"" is not a number/]);
    await expectError(csv('a,b,label\n0x10,1,0\n3,4,1\n'), [/line 2/, /column 1 \("a"\)/, /not a number/]);
  });

  it('non-finite feature: line and column', async () => {
    await expectError(csv('a,b,label\n1,2,0\nNaN,4,1\n'), [/line 3/, /column 1 \("a"\)/, /not finite/]);
    await expectError(csv('a,b,label\n1,-Infinity,0\n3,4,1\n'), [/line 2/, /column 2 \("b"\)/, /not finite/]);
    await expectError(csv('a,b,label\n1,2,0\n3,1e39,1\n'), [/line 3/, /column 2 \("b"\)/, /not finite as a float32/]);
  });

  it('empty label: line and column', async () => {
    await expectError(csv('a,label\n1,0\n2,\n'), [/line 3/, /column 2 \("label"\)/, /label is empty/]);
  });

  it('fewer than 2 examples (train or validation would be empty)', async () => {
    await expectError(csv('a,label\n1,0\n'), [/only 1 data row/, /at least 2/]);
  });

  it('malformed CSV (unclosed quote)', async () => {
    await expectError(csv('a,label\n"1,0\n2,1\n'), [/malformed CSV/]);
  });

  it('absurd class index', async () => {
    await expectError(csv('a,label\n1,0\n2,1999999\n'), [/line 3/, /too large for a class index/]);
  });

  it('empty path', async () => {
    await expectError('', [/needs a path/]);
  });
});
