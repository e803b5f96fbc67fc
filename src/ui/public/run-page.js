// The selected run's page: its head, its chart with its lineage's curves and checkpoints, its
// live stream, and hovering or picking a point on the chart.
import { RunChart, runColor, STATE_COLORS, visibleBands } from './chart.js';
import { $, fmt, h, toast, when } from './util.js';
import { api, completeSampled, emptyData, loadRun, merge, S } from './state.js';
import { renderRuns, stateBadge, stopJob } from './runs-list.js';
import { selectSeq } from './time-travel.js';

// ---------------------------------------------------------------------------------------------
// The selected run

export function lineageOf(runId) {
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

export async function selectRun(runId) {
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
  completeSampled();
}

// A run's whole series arrived after its overview: draw it (it may be the run shown or one drawn with it).
window.addEventListener('retrace:series', () => {
  if (S.selected && S.data.has(S.selected)) renderRun();
});

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

/** Draws the selected run's parent and branches with it, once the run list says which they are
 * (a page opened on a run draws the run before the list has loaded). */
export async function refreshLineage() {
  const runId = S.selected;
  if (!runId || !S.data.has(runId)) return;
  await loadOverlays();
  if (S.selected !== runId) return;
  renderRun();
  completeSampled();
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

export function renderRunHead() {
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

export function renderRun() {
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

export function absOfSeq(seq) {
  const d = S.data.get(S.selected);
  if (!d || seq === null) return null;
  return (d.created?.origin?.step ?? 0) + stepOfSeq(d, seq);
}

export function showHover(abs) {
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
