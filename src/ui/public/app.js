// The dashboard page: plain DOM, no framework. Data comes from the JSON API; two event streams
// keep it live (/api/stream: the runs list and the jobs; /api/runs/ID/stream: the open run's new
// events). Every text from the server goes through textContent, never innerHTML.
import { RunChart, STATE_COLORS, runColor, visibleBands } from './chart.js';

const $ = (sel) => document.querySelector(sel);

/** h('div', {class: 'x', onclick: fn, dataset: {...}}, ...children) */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style') el.style.cssText = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function fmt(v, digits = 4) {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  return String(+v.toPrecision(digits));
}

function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

async function api(path, body) {
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

function toast(message, kind = 'error') {
  const box = $('#toast');
  const item = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message, h('button', { class: 'link', 'aria-label': 'dismiss', onclick: () => item.remove() }, '×'));
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 12000 : 5000);
}

// ---------------------------------------------------------------------------------------------
// State

const S = {
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

function emptyData(run) {
  return { run, created: null, steps: { seq: [], step: [], loss: [], lr: [] }, evals: [], checkpoints: [], transitions: [], marks: [], lastSeq: -1 };
}

/** Appends the part of `view` after what `d` has (views may overlap: a fetch and the stream).
 * Returns false when the view starts after a gap (the caller fetches what is missing). */
function merge(d, view) {
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

async function loadRun(runId) {
  if (S.pending.has(runId)) return S.pending.get(runId);
  const p = (async () => {
    const have = S.data.get(runId);
    const since = have ? have.lastSeq : -1;
    const res = await api(`/api/runs/${encodeURIComponent(runId)}?since=${since}`);
    let d = S.data.get(runId);
    if (!d) {
      d = emptyData(res.run);
      S.data.set(runId, d);
    }
    d.run = res.run;
    if (res.created) d.created = res.created;
    merge(d, res.view);
    return d;
  })();
  S.pending.set(runId, p);
  try {
    return await p;
  } finally {
    S.pending.delete(runId);
  }
}

// ---------------------------------------------------------------------------------------------
// Runs list (lineage tree)

function matches(r, q) {
  if (!q) return true;
  const hay = [r.runId, r.state, r.stopReason, r.dataset, r.model, r.backend, r.optimizer, r.parent?.runId, r.parent?.point].join(' ').toLowerCase();
  return q
    .toLowerCase()
    .split(/\s+/)
    .filter(Boolean)
    .every((w) => hay.includes(w));
}

function renderRuns() {
  const list = $('#runs');
  const ids = new Set(S.runs.map((r) => r.runId));
  const children = new Map();
  for (const r of S.runs) {
    const key = r.parent && ids.has(r.parent.runId) ? r.parent.runId : null;
    if (!children.has(key)) children.set(key, []);
    children.get(key).push(r);
  }
  // A run that matches shows with its ancestors (dimmed) for context.
  const shown = new Set();
  const direct = new Set();
  for (const r of S.runs) {
    if (!matches(r, S.filter)) continue;
    direct.add(r.runId);
    let cur = r;
    while (cur && !shown.has(cur.runId)) {
      shown.add(cur.runId);
      cur = cur.parent ? S.byId.get(cur.parent.runId) : null;
    }
  }
  const rows = [];
  const walk = (parent, depth) => {
    for (const r of children.get(parent) ?? []) {
      if (shown.has(r.runId)) rows.push(runRow(r, depth, !direct.has(r.runId), ids));
      walk(r.runId, depth + 1);
    }
  };
  walk(null, 0);
  list.replaceChildren(...rows);
  if (rows.length === 0) list.append(h('li', { class: 'muted empty-row' }, S.runs.length ? 'no run matches the filter' : 'no runs yet: start one below or with `retrace train`'));
  $('#runs-count').textContent = S.filter ? `${direct.size} of ${S.runs.length}` : String(S.runs.length);
}

function stateBadge(state, stopReason) {
  return h('span', { class: `badge state-${state}`, style: `--state-color: ${STATE_COLORS[state] ?? '#e5e7eb'}` }, stopReason ? `${state} · ${stopReason}` : state);
}

function runRow(r, depth, context, ids) {
  const live = r.writer !== null;
  const pct = r.totalSteps ? Math.min(100, (100 * r.step) / r.totalSteps) : 0;
  const orphan = r.parent && !ids.has(r.parent.runId);
  return h(
    'li',
    {
      class: `run-row${r.runId === S.selected ? ' selected' : ''}${context ? ' context' : ''}`,
      role: 'treeitem',
      'aria-level': depth + 1,
      'aria-selected': r.runId === S.selected ? 'true' : 'false',
      dataset: { runId: r.runId, parent: r.parent?.runId ?? '', state: r.state, step: String(r.step), live: live ? '1' : '0' },
      style: `--depth: ${depth}`,
    },
    h(
      'a',
      { class: 'run-link', href: `#/run/${encodeURIComponent(r.runId)}` },
      depth > 0 ? h('span', { class: 'branch-mark', 'aria-hidden': 'true' }, '└ ') : null,
      h('span', { class: 'run-id' }, r.runId),
      r.parent ? h('span', { class: 'point', title: `branched from ${r.parent.runId} at ${r.parent.point} (its step ${r.parent.step})` }, ` @${r.parent.point}${orphan ? ` of ${r.parent.runId} (removed)` : ''}`) : null,
    ),
    h(
      'div',
      { class: 'run-line' },
      stateBadge(r.state, r.stopReason),
      live ? h('span', { class: 'badge live' }, r.writer.inProcess ? 'live · here' : `live · pid ${r.writer.pid}`) : null,
      h('span', { class: 'muted' }, ` step ${r.step}${r.totalSteps ? `/${r.totalSteps}` : ''}`),
    ),
    h(
      'div',
      { class: 'run-line muted small' },
      r.error
        ? h('span', { class: 'error-text' }, r.error)
        : [
            r.bestMetric !== null ? `best ${r.monitor === 'valAccuracy' ? 'acc' : 'val loss'} ${fmt(r.bestMetric)} (C${r.bestCheckpoint})` : 'no best yet',
            ' · ',
            r.backend || '?',
            ' · ',
            r.dataset,
            ' · ',
            when(r.createdAt),
          ],
    ),
    live && r.totalSteps ? h('div', { class: 'mini-progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': r.totalSteps, 'aria-valuenow': r.step }, h('div', { style: `width: ${pct}%` })) : null,
  );
}

function renderJobs() {
  const list = $('#jobs');
  const items = S.jobs.slice(0, 8).map((j) => {
    const total = j.progress.total;
    const running = j.status === 'running' || j.status === 'stopping';
    const label =
      j.kind === 'replay' && j.status === 'done'
        ? j.result?.identical
          ? 'identical'
          : `diverged at step ${j.result?.firstDivergence}`
        : j.status === 'failed'
          ? `failed: ${j.error}`
          : j.status;
    return h(
      'li',
      { class: `job ${j.status}`, dataset: { jobId: j.id, kind: j.kind, status: j.status, runId: j.runId } },
      h('div', {}, h('strong', {}, j.kind), ' ', h('a', { href: `#/run/${encodeURIComponent(j.runId)}` }, j.runId), ' ', h('span', { class: 'muted' }, label)),
      running && total ? h('progress', { max: total, value: j.progress.done }) : null,
      running && total ? h('span', { class: 'small muted' }, ` ${j.progress.done}/${total}`) : null,
      running && j.kind !== 'export' ? h('button', { class: 'small', onclick: () => stopJob(j.id) }, j.status === 'stopping' ? 'stopping…' : 'Stop') : null,
    );
  });
  list.replaceChildren(...items);
  if (!items.length) list.append(h('li', { class: 'muted small' }, 'nothing running'));
  renderReplayStatus();
  renderRunHead();
}

async function stopJob(id) {
  try {
    await api(`/api/jobs/${encodeURIComponent(id)}/stop`, {});
  } catch (err) {
    toast(err.message);
  }
}

// ---------------------------------------------------------------------------------------------
// The selected run

function lineageOf(runId) {
  // Ancestors (nearest first) and direct children: drawn with the run on one step axis.
  const ancestors = [];
  let cur = S.byId.get(runId);
  const seen = new Set([runId]);
  while (cur?.parent && S.byId.has(cur.parent.runId) && !seen.has(cur.parent.runId) && ancestors.length < 4) {
    seen.add(cur.parent.runId);
    ancestors.push(cur.parent.runId);
    cur = S.byId.get(cur.parent.runId);
  }
  const children = S.runs.filter((r) => r.parent?.runId === runId).map((r) => r.runId).slice(0, 6);
  return { ancestors, children };
}

async function selectRun(runId) {
  if (S.selected === runId && S.stream) return;
  S.selected = runId;
  S.selSeq = null;
  S.follow = true;
  S.stream?.close();
  S.stream = null;
  $('#empty').hidden = true;
  $('#run').hidden = false;
  $('#run-title').textContent = runId;
  $('#branch-form-box').hidden = true;
  $('#action-result').replaceChildren();
  renderRuns();
  try {
    await loadRun(runId);
  } catch (err) {
    if (S.selected !== runId) return;
    $('#run-title').textContent = runId;
    $('#run-meta').textContent = err.message;
    S.chart?.destroy();
    return;
  }
  if (S.selected !== runId) return;
  await loadOverlays();
  if (S.selected !== runId) return;
  renderRun();
  openStream(runId);
}

function openStream(runId) {
  const d = S.data.get(runId);
  const es = new EventSource(`/api/runs/${encodeURIComponent(runId)}/stream?since=${d ? d.lastSeq : -1}`);
  S.stream = es;
  es.addEventListener('delta', (e) => {
    if (S.selected !== runId) return;
    const msg = JSON.parse(e.data);
    let dd = S.data.get(runId);
    if (!dd) {
      dd = emptyData(msg.run);
      S.data.set(runId, dd);
    }
    dd.run = msg.run;
    const merged = merge(dd, msg.view);
    if (!merged || (!dd.created && dd.lastSeq >= 0)) loadRun(runId).then(() => S.selected === runId && renderRun(), () => {});
    else renderRun();
  });
  es.addEventListener('run', (e) => {
    if (S.selected !== runId) return;
    const msg = JSON.parse(e.data);
    const dd = S.data.get(runId);
    if (dd) dd.run = msg.run;
    renderRunHead();
  });
  es.addEventListener('reset', () => {
    S.data.delete(runId);
    S.stream?.close();
    S.stream = null;
    S.selected = null;
    selectRun(runId);
  });
  let problem = '';
  es.addEventListener('problem', (e) => {
    const msg = JSON.parse(e.data);
    if (msg.error !== problem) toast(`reading ${runId}: ${msg.error}`);
    problem = msg.error;
  });
  es.addEventListener('gone', (e) => {
    const msg = JSON.parse(e.data);
    toast(msg.error);
    es.close();
  });
}

async function loadOverlays() {
  const { ancestors, children } = lineageOf(S.selected);
  await Promise.all(
    [...ancestors, ...children].map((id) =>
      loadRun(id).catch(() => {
        // a run removed meanwhile: drawn without it
      }),
    ),
  );
}

function chartModel() {
  const primary = S.data.get(S.selected);
  const { ancestors, children } = lineageOf(S.selected);
  const runs = [];
  const add = (d, isPrimary, role) => {
    if (!d) return;
    runs.push({
      runId: d.run.runId,
      label: `${d.run.runId} (${role})`,
      role,
      primary: isPrimary,
      originStep: d.created?.origin?.step ?? d.run.originStep ?? 0,
      steps: d.steps,
      evals: d.evals,
      checkpoints: d.checkpoints,
      transitions: d.transitions,
      best: d.run.bestCheckpoint,
      stopReason: d.run.stopReason,
    });
  };
  add(primary, true, 'this run');
  for (const id of ancestors) if (!S.hidden.has(id)) add(S.data.get(id), false, id === ancestors[0] ? 'parent' : 'ancestor');
  for (const id of children) if (!S.hidden.has(id)) add(S.data.get(id), false, 'branch');
  return { runs, selectedAbs: absOfSeq(S.selSeq) };
}

function renderOverlayToggles() {
  const { ancestors, children } = lineageOf(S.selected);
  const box = $('#overlays');
  const items = [h('span', { class: 'overlay primary' }, h('span', { class: 'swatch', style: `background:${runColor(0)}` }), `this run (step 0 = step ${S.data.get(S.selected)?.created?.origin?.step ?? 0} of the axis)`)];
  let i = 1;
  for (const [id, role] of [...ancestors.map((a, k) => [a, k === 0 ? 'parent' : 'ancestor']), ...children.map((c) => [c, 'branch'])]) {
    const on = !S.hidden.has(id);
    const color = on ? runColor(i++) : '#9ca3af';
    const row = S.byId.get(id);
    items.push(
      h(
        'label',
        { class: 'overlay' },
        h('input', {
          type: 'checkbox',
          checked: on,
          dataset: { overlay: id },
          onchange: (e) => {
            if (e.target.checked) S.hidden.delete(id);
            else S.hidden.add(id);
            renderRun();
          },
        }),
        h('span', { class: 'swatch', style: `background:${color}` }),
        `${role}: ${id}${role === 'branch' && row?.parent ? ` @${row.parent.point}` : ''}`,
      ),
    );
  }
  if (items.length === 1) items.push(h('span', { class: 'muted small' }, 'no parent or branches to compare'));
  box.replaceChildren(...items);
}

function renderRunHead() {
  const d = S.data.get(S.selected);
  if (!d) return;
  const r = d.run;
  $('#run-title').textContent = r.runId;
  const badges = $('#run-badges');
  badges.replaceChildren(
    ...[
    stateBadge(r.state, r.stopReason),
    // Exporting does not end a run (rules 2): the run keeps its state and says it was exported.
    r.exported && r.state !== 'exported' ? h('span', { class: 'badge state-exported', style: `--state-color: ${STATE_COLORS.exported ?? '#e5e7eb'}` }, 'exported') : null,
    r.writer ? h('span', { class: 'badge live' }, r.writer.inProcess ? 'live · trained by this server' : `live · pid ${r.writer.pid} ${r.writer.command ? `(${r.writer.command.slice(0, 40)})` : ''}`) : null,
    r.parent ? h('a', { class: 'badge parent-link', href: `#/run/${encodeURIComponent(r.parent.runId)}` }, `branch of ${r.parent.runId} @${r.parent.point}`) : null,
    ].filter(Boolean),
  );
  const c = d.created;
  $('#run-meta').textContent = c
    ? `${c.dataset.name} · ${c.model.spec} · ${c.optimizer} lr ${fmt(c.settings.baseLr)} · batch ${c.settings.batchSize} · ${c.settings.stepsPerEpoch} steps per checkpoint · ${c.backend.name} ${c.backend.version} · seed ${c.seed} · created ${when(r.createdAt)}`
    : r.error ?? 'starting…';
  const progress = $('#run-progress');
  progress.max = r.totalSteps ?? 1;
  progress.value = r.step;
  $('#run-step').textContent = `step ${r.step}${r.totalSteps ? ` / ${r.totalSteps}` : ''}`;
  $('#run-step').dataset.step = String(r.step);
  const pct = r.totalSteps ? ` (${Math.floor((100 * r.step) / r.totalSteps)}%)` : '';
  $('#run-progress-text').textContent = `${pct} · ${r.lastSeq + 1} events${r.writer ? ' · live' : ''}`;
  const job = S.jobs.find((j) => j.runId === r.runId && ['train', 'branch', 'resume'].includes(j.kind) && (j.status === 'running' || j.status === 'stopping'));
  const stop = $('#stop-job');
  stop.hidden = !job;
  stop.disabled = job?.status === 'stopping';
  stop.textContent = job?.status === 'stopping' ? 'Stopping…' : 'Stop training';
  stop.onclick = job ? () => stopJob(job.id) : null;
}

function renderCheckpointButtons() {
  const d = S.data.get(S.selected);
  const box = $('#ckpt-buttons');
  const best = d.run.bestCheckpoint;
  box.replaceChildren(
    h('span', { class: 'muted small' }, 'checkpoints:'),
    ...d.checkpoints.map((c) =>
      h(
        'button',
        {
          class: `ckpt${c.kind !== 'interrupt' && c.index === best ? ' best' : ''}${S.selSeq === c.seq ? ' active' : ''}`,
          dataset: { index: String(c.index), seq: String(c.seq), kind: c.kind },
          title: `checkpoint ${c.index} (${c.kind}) at step ${c.step}, event ${c.seq}`,
          onclick: () => selectSeq(c.seq),
        },
        c.kind !== 'interrupt' && c.index === best ? `★ C${c.index}` : c.kind === 'interrupt' ? `C${c.index}i` : `C${c.index}`,
      ),
    ),
  );
}

function renderRun() {
  const d = S.data.get(S.selected);
  if (!d) return;
  renderRunHead();
  renderOverlayToggles();
  if (!S.chart) {
    S.chart = new RunChart($('#chart'), $('#lr-chart'), {
      onPick: ({ absStep, checkpoint }) => pickOnChart(absStep, checkpoint),
      onHover: (abs) => showHover(abs),
    });
  }
  S.chart.update(chartModel());
  const slider = $('#slider');
  const atEnd = S.selSeq === null || (S.follow && S.selSeq >= Number(slider.max));
  slider.max = String(Math.max(0, d.lastSeq));
  renderCheckpointButtons();
  renderBandsList(d);
  if (atEnd && d.lastSeq >= 0) selectSeq(d.lastSeq, { keepFollow: true });
  else S.chart.setSelected(absOfSeq(S.selSeq));
}

function renderBandsList(d) {
  // The same bands as text (screen readers, colour-blind readers, tests).
  const bands = visibleBands({ transitions: d.transitions, steps: d.steps });
  $('#bands-text').textContent = 'States: ' + bands.map((b) => (b.to > b.from ? `${b.state} ${b.from}–${b.to}` : `${b.state} at ${b.from}`)).join(' → ');
}

/** The step a run had done after event `seq` (binary search over its steps). */
function stepOfSeq(d, seq) {
  const seqs = d.steps.seq;
  let lo = 0;
  let hi = seqs.length - 1;
  let found = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (seqs[mid] <= seq) {
      found = d.steps.step[mid];
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

function absOfSeq(seq) {
  const d = S.data.get(S.selected);
  if (!d || seq === null) return null;
  return (d.created?.origin?.step ?? 0) + stepOfSeq(d, seq);
}

function showHover(abs) {
  const d = S.data.get(S.selected);
  const el = $('#hover');
  if (!d || abs === null) {
    el.textContent = 'Hover the chart for values; click to select that step or checkpoint; drag to zoom, double-click to reset.';
    return;
  }
  const origin = d.created?.origin?.step ?? 0;
  const step = abs - origin;
  const band = visibleBands(d).find((b) => step > b.from && step <= b.to) ?? visibleBands(d).find((b) => step >= b.from && step <= b.to) ?? null;
  const i = d.steps.step.indexOf(step);
  const values = i >= 0 ? ` · loss ${fmt(d.steps.loss[i])} · lr ${fmt(d.steps.lr[i], 3)}` : '';
  const ck = d.checkpoints.find((c) => c.step === step);
  el.textContent = `axis step ${abs}${origin ? ` = this run's step ${step}` : ''}${band ? ` · state ${band.state}` : step < 0 ? ' · before this run (its parent)' : ''}${values}${ck ? ` · checkpoint ${ck.index}` : ''}`;
}

function pickOnChart(absStep, checkpoint) {
  const d = S.data.get(S.selected);
  if (!d) return;
  if (checkpoint) return selectSeq(checkpoint.seq);
  const step = absStep - (d.created?.origin?.step ?? 0);
  if (step < 0) {
    toast(`step ${absStep} is before this run began (it is its parent's): open the parent to select it`, 'info');
    return;
  }
  const i = d.steps.step.findIndex((s) => s >= step);
  if (i >= 0) selectSeq(d.steps.seq[i]);
  else if (d.checkpoints.length && step === 0) selectSeq(d.checkpoints[0].seq);
}

// ---------------------------------------------------------------------------------------------
// Time travel: the state folded up to the selected event

let stateTimer = null;

function selectSeq(seq, opts = {}) {
  const d = S.data.get(S.selected);
  if (!d || d.lastSeq < 0) return;
  seq = Math.max(0, Math.min(seq, d.lastSeq));
  S.selSeq = seq;
  if (!opts.keepFollow) S.follow = seq >= d.lastSeq;
  const slider = $('#slider');
  slider.value = String(seq);
  $('#slider-label').textContent = `event ${seq} of ${d.lastSeq}`;
  S.chart?.setSelected(absOfSeq(seq));
  for (const b of document.querySelectorAll('#ckpt-buttons .ckpt')) b.classList.toggle('active', Number(b.dataset.seq) === seq);
  clearTimeout(stateTimer);
  stateTimer = setTimeout(() => fetchState(S.selected, seq), opts.now ? 0 : 60);
}

async function fetchState(runId, seq) {
  const req = ++S.stateReq;
  let view;
  try {
    view = await api(`/api/runs/${encodeURIComponent(runId)}/state?at=${seq}`);
  } catch (err) {
    if (req === S.stateReq) $('#state-body').replaceChildren(h('p', { class: 'error-text' }, err.message));
    return;
  }
  if (req !== S.stateReq || runId !== S.selected) return;
  renderState(view);
}

function kv(label, value, attrs = {}) {
  return h('div', { class: 'kv', ...attrs }, h('span', { class: 'k' }, label), h('span', { class: 'v' }, value));
}

function renderState(v) {
  const c = v.context;
  const d = S.data.get(S.selected);
  const best = c.best ? `C${c.best.index} at step ${c.best.step} (${c.settings.monitor} ${fmt(Math.abs(c.best.metric))})` : 'none';
  const last = v.metrics.evaluations.at(-1);
  const body = $('#state-body');
  body.dataset.seq = String(v.seq);
  body.dataset.state = v.state;
  body.replaceChildren(
    h('div', { class: 'state-line' }, h('span', { class: 'event-type' }, `#${v.seq} ${v.record.type}`), ' ', h('span', { class: 'muted' }, v.record.text)),
    h('div', { class: 'state-line' }, 'machine state ', stateBadge(v.state, v.stopReason), h('span', { class: 'muted' }, ` after event ${v.seq}`)),
    h(
      'div',
      { class: 'kv-grid' },
      kv('step', `${v.step} / ${c.settings.totalSteps}`, { id: 'state-step' }),
      kv('examples seen', String(v.examplesSeen)),
      kv('learning rate', fmt(v.lr)),
      kv('base lr', fmt(c.currentBaseLr)),
      kv('last loss', fmt(v.metrics.lastLoss)),
      kv('last evaluation', last ? `step ${last.step}: val loss ${fmt(last.valLoss)}, acc ${fmt(last.valAccuracy, 3)}` : 'none'),
      kv('best', best),
      kv('since improvement', `${c.sinceImprovement} eval(s)`),
      kv('plateau wait', `${c.plateauWait} / ${c.settings.plateauPatience}`),
      kv('cooldown left', String(c.cooldownLeft)),
      kv(
        'nearest checkpoint',
        v.nearestCheckpoint ? `C${v.nearestCheckpoint.index} (${v.nearestCheckpoint.kind}) at step ${v.nearestCheckpoint.step}, event ${v.nearestCheckpoint.seq}, ${v.nearestCheckpoint.weightsHash.slice(0, 12)}…` : 'none',
        { id: 'nearest-checkpoint', dataset: { index: v.nearestCheckpoint ? String(v.nearestCheckpoint.index) : '' } },
      ),
    ),
  );
  const rows = v.around.map((r) =>
    h(
      'tr',
      { class: r.seq === v.seq ? 'current' : '', dataset: { seq: String(r.seq) }, onclick: () => selectSeq(r.seq, { now: true }), title: 'select this event' },
      h('td', { class: 'num' }, String(r.seq)),
      h('td', {}, r.type),
      h('td', {}, r.text),
    ),
  );
  $('#around').replaceChildren(h('thead', {}, h('tr', {}, h('th', {}, '#'), h('th', {}, 'event'), h('th', {}, 'what'))), h('tbody', {}, ...rows));
  renderActions(v, d);
}

// ---------------------------------------------------------------------------------------------
// Actions from the selected point: branch, export, verify replay

function pointOf(v) {
  const r = v.record;
  if (r.type === 'checkpoint.committed' && r.data.kind !== 'interrupt') return { point: `ckpt:${r.data.index}`, text: `checkpoint ${r.data.index} (step ${r.data.step})` };
  if (r.type === 'step.finished') return { point: `step:${r.data.step}`, text: `step ${r.data.step} (re-executed from checkpoint ${v.nearestCheckpoint?.index ?? 0})` };
  return { point: String(v.seq), text: `event ${v.seq} (step ${v.step})` };
}

let currentView = null;

function renderActions(v, d) {
  currentView = v;
  const p = pointOf(v);
  $('#point-label').textContent = `${S.selected}@${p.point} — ${p.text}`;
  $('#point-label').dataset.point = p.point;
  const stopped = d.run.exportable; // decided by the server (machines/queries.ts canExport)
  const exportBtn = $('#export-btn');
  const ck = exportableCheckpoint(d, v.seq);
  exportBtn.textContent = ck ? `Export checkpoint ${ck.index}` : 'Export (no checkpoint yet)';
  exportBtn.disabled = !ck || !stopped;
  exportBtn.title = !stopped ? `the run is ${d.run.state}: export needs it stopped` : ck ? `write checkpoint ${ck.index} as a TF.js model under ${S.meta?.exportDir ?? 'the export folder'}` : '';
  $('#export-hint').textContent = !stopped && ck ? `(available once the run has stopped)` : '';
  const branchBtn = $('#branch-btn');
  branchBtn.disabled = !v.nearestCheckpoint;
  const resumeBtn = $('#resume-btn');
  resumeBtn.hidden = !d.run.resumable; // decided by the server (machines/queries.ts canResume)
  resumeBtn.disabled = d.run.writer !== null;
  fillBranchPlaceholders(d);
}

/** The checkpoint an export of the selected point writes: the last initial or epoch checkpoint at
 * or before it (an interrupt checkpoint has no number of its own to export by). */
function exportableCheckpoint(d, seq) {
  let found = null;
  for (const c of d.checkpoints) if (c.seq <= seq && c.kind !== 'interrupt') found = c;
  return found;
}

function fillBranchPlaceholders(d) {
  const cfg = d.created?.config ?? {};
  const form = $('#branch-form');
  for (const el of form.querySelectorAll('[data-key]')) {
    if (el.dataset.key === 'runId') continue; // a new run gets a new id
    const val = cfg[el.dataset.key];
    if (el.tagName === 'SELECT') {
      el.options[0].textContent = `inherit (${val ?? '–'})`;
    } else {
      el.placeholder = Array.isArray(val) ? val.join(',') || 'none' : val === null || val === undefined ? '' : String(val);
    }
  }
}

/** Values from a form's [data-key] fields: numbers parsed, lists split, empty = not set. */
function formConfig(form) {
  const out = {};
  for (const el of form.querySelectorAll('[data-key]')) {
    const key = el.dataset.key;
    const raw = el.value.trim();
    if (raw === '') continue;
    if (el.dataset.kind === 'number') out[key] = Number(raw);
    else if (el.dataset.kind === 'list') out[key] = raw.split(',').map((s) => s.trim()).filter(Boolean);
    else if (el.dataset.kind === 'bool') out[key] = raw === 'true';
    else out[key] = raw;
  }
  const extra = form.querySelector('[name="extra"]')?.value.trim();
  if (extra) {
    let parsed;
    try {
      parsed = JSON.parse(extra);
    } catch {
      throw new Error('"more overrides" must be a JSON object, e.g. {"l2": 0.001}');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('"more overrides" must be a JSON object');
    Object.assign(out, parsed);
  }
  return out;
}

async function submitBranch(e) {
  e.preventDefault();
  if (!currentView) return;
  const form = e.target;
  const p = pointOf(currentView);
  let overrides;
  try {
    overrides = formConfig(form);
  } catch (err) {
    toast(err.message);
    return;
  }
  const submit = form.querySelector('button[type="submit"]');
  submit.disabled = true;
  try {
    const res = await api(`/api/runs/${encodeURIComponent(S.selected)}/branch`, { point: p.point, overrides });
    toast(`branch ${res.runId} started from ${S.selected}@${p.point}`, 'info');
    $('#branch-form-box').hidden = true;
    form.reset();
    location.hash = `#/run/${encodeURIComponent(res.runId)}`;
  } catch (err) {
    toast(`branch refused: ${err.message}`);
  } finally {
    submit.disabled = false;
  }
}

async function doExport() {
  const ck = currentView ? exportableCheckpoint(S.data.get(S.selected), currentView.seq) : null;
  if (!ck) return;
  const btn = $('#export-btn');
  const runId = S.selected;
  btn.disabled = true;
  const out = $('#action-result');
  out.replaceChildren(h('p', { class: 'muted' }, 'exporting…'));
  try {
    const res = await api(`/api/runs/${encodeURIComponent(runId)}/export`, { checkpoint: ck.index });
    const r = res.result;
    out.replaceChildren(
      h('p', { class: 'ok', id: 'export-result', dataset: { out: r.out } }, `Exported checkpoint ${r.checkpoint} (step ${r.step}) of ${r.runId} to ${r.out}`),
      h('p', { class: 'muted small' }, `weightsHash ${r.weightsHash} · load it with tf.loadLayersModel('file://…/model.json')`),
    );
  } catch (err) {
    out.replaceChildren(h('p', { class: 'error-text' }, `export failed: ${err.message}`));
  } finally {
    btn.disabled = false;
  }
}

async function doResume() {
  try {
    const res = await api(`/api/runs/${encodeURIComponent(S.selected)}/resume`, {});
    toast(`resuming ${res.runId}`, 'info');
  } catch (err) {
    toast(`resume refused: ${err.message}`);
  }
}

async function doReplay() {
  const runId = S.selected;
  try {
    const res = await api(`/api/runs/${encodeURIComponent(runId)}/replay`, {});
    S.replayJob = res.job.id;
    S.jobs = [res.job, ...S.jobs.filter((j) => j.id !== res.job.id)];
    renderJobs();
  } catch (err) {
    toast(`replay refused: ${err.message}`);
  }
}

function renderReplayStatus() {
  const box = $('#replay-status');
  const job = S.jobs.find((j) => j.id === S.replayJob);
  if (!job || job.runId !== S.selected) {
    box.replaceChildren();
    return;
  }
  box.dataset.status = job.status;
  if (job.status === 'running' || job.status === 'stopping') {
    box.replaceChildren(h('span', {}, 'verifying… '), h('progress', { max: job.progress.total ?? 1, value: job.progress.done }), h('span', { class: 'small muted' }, ` ${job.progress.done}/${job.progress.total ?? '?'} events`));
  } else if (job.status === 'failed') {
    box.replaceChildren(h('p', { class: 'error-text' }, `replay failed: ${job.error}`));
  } else {
    const r = job.result;
    box.dataset.identical = String(r.identical);
    box.replaceChildren(
      r.identical
        ? h('p', { class: 'ok' }, `Replay identical: ${r.eventsVerified} events verified from checkpoint ${r.fromCheckpoint} (step ${r.fromStep}) to step ${r.toStep}.`)
        : h(
            'p',
            { class: 'error-text' },
            `Replay DIVERGED at step ${r.firstDivergence} (event ${r.divergentSeq}). `,
            h('button', { class: 'link', onclick: () => selectSeq(r.divergentSeq, { now: true }) }, 'show that event'),
            h('br'),
            r.message ?? '',
          ),
      ...(r.backendMismatch ? [h('p', { class: 'muted small' }, r.backendMismatch)] : []),
    );
  }
}

async function submitTrain(e) {
  e.preventDefault();
  const form = e.target;
  let config;
  try {
    config = formConfig(form);
  } catch (err) {
    toast(err.message);
    return;
  }
  try {
    const res = await api('/api/train', { config });
    toast(`training ${res.runId} started`, 'info');
    location.hash = `#/run/${encodeURIComponent(res.runId)}`;
  } catch (err) {
    toast(`training refused: ${err.message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring

function onRoute() {
  const m = /^#\/run\/(.+)$/.exec(location.hash);
  if (m) selectRun(decodeURIComponent(m[1]));
  else {
    S.selected = null;
    S.stream?.close();
    S.stream = null;
    $('#run').hidden = true;
    $('#empty').hidden = false;
    renderRuns();
  }
}

function connectGlobal() {
  const conn = $('#conn');
  const es = new EventSource('/api/stream');
  es.onopen = () => {
    conn.textContent = 'live';
    conn.dataset.state = 'open';
  };
  es.onerror = () => {
    conn.textContent = 'reconnecting…';
    conn.dataset.state = 'error';
  };
  es.addEventListener('runs', (e) => {
    const { runs } = JSON.parse(e.data);
    S.runs = runs;
    S.byId = new Map(runs.map((r) => [r.runId, r]));
    renderRuns();
    if (!S.selected) return;
    // The open run's parent and branches may have grown (or a new branch appeared): refresh them.
    const { ancestors, children } = lineageOf(S.selected);
    const stale = [...ancestors, ...children].filter((id) => {
      const d = S.data.get(id);
      return !d || d.lastSeq < (S.byId.get(id)?.lastSeq ?? -1);
    });
    // Redraw the run, not only the toggles: the lineage itself may have just become known (a run
    // opened before the list named its parent), and the chart must then add the parent's curves.
    if (stale.length) Promise.all(stale.map((id) => loadRun(id).catch(() => {}))).then(() => S.selected && S.data.get(S.selected) && renderRun());
    else if (S.data.get(S.selected)) renderRun();
  });
  es.addEventListener('jobs', (e) => {
    S.jobs = JSON.parse(e.data).jobs;
    renderJobs();
  });
}

async function main() {
  try {
    S.meta = await api('/api/meta');
    $('#store-path').textContent = `store ${S.meta.store}`;
    $('#store-path').title = `exports go to ${S.meta.exportDir}`;
  } catch (err) {
    toast(`cannot reach the server: ${err.message}`);
  }
  $('#filter').addEventListener('input', (e) => {
    S.filter = e.target.value;
    renderRuns();
  });
  const slider = $('#slider');
  slider.addEventListener('input', () => selectSeq(Number(slider.value)));
  $('#prev').addEventListener('click', () => S.selSeq !== null && selectSeq(S.selSeq - 1, { now: true }));
  $('#next').addEventListener('click', () => S.selSeq !== null && selectSeq(S.selSeq + 1, { now: true }));
  $('#branch-btn').addEventListener('click', () => {
    const box = $('#branch-form-box');
    box.hidden = !box.hidden;
    if (!box.hidden) box.querySelector('input')?.focus();
  });
  $('#branch-cancel').addEventListener('click', () => ($('#branch-form-box').hidden = true));
  $('#branch-form').addEventListener('submit', submitBranch);
  $('#export-btn').addEventListener('click', doExport);
  $('#replay-btn').addEventListener('click', doReplay);
  $('#resume-btn').addEventListener('click', doResume);
  $('#train-form').addEventListener('submit', submitTrain);
  window.addEventListener('hashchange', onRoute);
  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => S.chart?.resize(), 100);
  });
  document.addEventListener('keydown', (e) => {
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement || e.target instanceof HTMLSelectElement) return;
    if (S.selSeq === null) return;
    if (e.key === 'ArrowLeft') selectSeq(S.selSeq - 1, { now: true });
    else if (e.key === 'ArrowRight') selectSeq(S.selSeq + 1, { now: true });
  });
  try {
    // The list comes in pages (at most 1000 runs each); the stream below keeps it current.
    const runs = [];
    let jobs = [];
    for (let cursor = null, first = true; first || cursor; first = false) {
      const page = await api(`/api/runs?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      runs.push(...page.runs);
      if (first) jobs = page.jobs;
      cursor = page.nextCursor;
    }
    S.runs = runs;
    S.byId = new Map(runs.map((r) => [r.runId, r]));
    S.jobs = jobs;
    renderRuns();
    renderJobs();
  } catch (err) {
    toast(`cannot list runs: ${err.message}`);
  }
  connectGlobal();
  onRoute();
  showHover(null);
  document.body.dataset.ready = '1';
}

main();
