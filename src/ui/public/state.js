// The page's state and its API client: what is loaded (runs, jobs, each run's series) and the
// fetches that fill it. A run's data grows by views merged after what it has.

export async function api(path, body) {
  const res = await fetch(path, body === undefined ? {} : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  let json = null;
  try {
    json = await res.json();
  } catch {
    // not JSON
  }
  if (!res.ok) {
    const err = new Error(json?.error ?? `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return json;
}

// ---------------------------------------------------------------------------------------------
// State

export const S = {
  meta: null,
  runs: [],
  byId: new Map(),
  jobs: [],
  filter: '',
  selected: null, // run id
  data: new Map(), // run id → { run, created, steps, evals, checkpoints, transitions, marks, lastSeq }
  hidden: new Set(), // overlay runs the user unticked
  selSeq: null,
  follow: true,
  stream: null,
  chart: null,
  stateReq: 0,
  replayJob: null,
  pending: new Map(), // run id → promise of a fetch in flight
};

export function emptyData(run) {
  return { run, created: null, steps: { seq: [], step: [], loss: [], lr: [] }, evals: [], checkpoints: [], transitions: [], marks: [], lastSeq: -1 };
}

/** Appends the part of `view` after what `d` has (views may overlap: a fetch and the stream).
 * Returns false when the view starts after a gap (the caller fetches what is missing). */
export function merge(d, view) {
  if (view.from > d.lastSeq + 1) return false;
  const after = d.lastSeq;
  const steps = view.steps;
  for (let i = 0; i < steps.seq.length; i += 1) {
    if (steps.seq[i] <= after) continue;
    d.steps.seq.push(steps.seq[i]);
    d.steps.step.push(steps.step[i]);
    d.steps.loss.push(steps.loss[i]);
    d.steps.lr.push(steps.lr[i]);
  }
  for (const k of ['evals', 'checkpoints', 'transitions', 'marks']) d[k].push(...view[k].filter((x) => x.seq > after));
  d.lastSeq = Math.max(d.lastSeq, view.lastSeq);
  return true;
}

/** The part of `d` after event `after`, shaped as a view (what the stream added meanwhile). */
function tailOf(d, after) {
  const keep = d.steps.seq.map((seq, i) => (seq > after ? i : -1)).filter((i) => i >= 0);
  const pick = (xs) => keep.map((i) => xs[i]);
  const view = { from: after + 1, lastSeq: d.lastSeq, steps: { seq: pick(d.steps.seq), step: pick(d.steps.step), loss: pick(d.steps.loss), lr: pick(d.steps.lr) } };
  for (const k of ['evals', 'checkpoints', 'transitions', 'marks']) view[k] = d[k].filter((x) => x.seq > after);
  return view;
}

/** Replaces a run's sampled series with the whole one, keeping what the stream added since, then
 * tells the page (`retrace:series`) to draw it again. */
function completeSeries(runId) {
  return api(`/api/runs/${encodeURIComponent(runId)}?since=-1`).then(
    (res) => {
      const d = S.data.get(runId);
      if (!d) return;
      const full = emptyData(res.run);
      merge(full, res.view);
      if (d.lastSeq > full.lastSeq) merge(full, tailOf(d, full.lastSeq));
      for (const k of ['steps', 'evals', 'checkpoints', 'transitions', 'marks', 'lastSeq']) d[k] = full[k];
      d.sampled = false;
      window.dispatchEvent(new CustomEvent('retrace:series', { detail: runId }));
    },
    () => {
      // The sampled series stays; the next delta or a reload brings the rest.
    },
  );
}

/** Asks for the whole series of every run drawn from a sample (after the first paint: reading a
 * long log keeps the server busy for a moment, which must not delay what the page draws first). */
export function completeSampled() {
  for (const [runId, d] of S.data) {
    if (d.sampled && !d.completing) {
      d.completing = true;
      completeSeries(runId).finally(() => {
        d.completing = false;
      });
    }
  }
}

export async function loadRun(runId) {
  if (S.pending.has(runId)) return S.pending.get(runId);
  const p = (async () => {
    const have = S.data.get(runId);
    const since = have ? have.lastSeq : -1;
    // A run opened for the first time draws from an overview (its steps sampled when it is long);
    // the whole series follows in the background (completeSeries).
    const res = await api(`/api/runs/${encodeURIComponent(runId)}?since=${since}${have ? '' : '&overview=1'}`);
    let d = S.data.get(runId);
    if (!d) {
      d = emptyData(res.run);
      S.data.set(runId, d);
    }
    d.run = res.run;
    if (res.created) d.created = res.created;
    merge(d, res.view);
    // Drawn from a sample: the page asks for the rest once it has drawn (completeSampled).
    if (res.view.sampled) d.sampled = true;
    return d;
  })();
  S.pending.set(runId, p);
  try {
    return await p;
  } finally {
    S.pending.delete(runId);
  }
}
