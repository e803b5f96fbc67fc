// Time travel: the machine state folded up to the selected event, fetched as the slider moves.
import { $, fmt, h } from './util.js';
import { api, S } from './state.js';
import { stateBadge } from './runs-list.js';
import { absOfSeq } from './run-page.js';
import { renderActions } from './actions.js';

// ---------------------------------------------------------------------------------------------
// Time travel: the state folded up to the selected event

let stateTimer = null;

export function selectSeq(seq, opts = {}) {
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
  // The run this seq belongs to, taken now: by the time the timer fires the page may show
  // another run, whose events are numbered otherwise.
  const runId = S.selected;
  stateTimer = setTimeout(() => runId === S.selected && fetchState(runId, seq), opts.now ? 0 : 60);
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
  // The metric with its real sign, as the server gives it (the context's is the machine's ordering).
  const best = v.best ? `C${v.best.checkpoint} at step ${v.best.step} (${v.best.monitor} ${v.best.metric === null ? '–' : fmt(v.best.metric)})` : 'none';
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
