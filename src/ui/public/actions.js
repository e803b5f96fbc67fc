// Actions from the selected point (branch, export, verify replay), resume, and training a new
// run: each asks the server for a job and reports its outcome.
import { $, h, toast } from './util.js';
import { api, S } from './state.js';
import { renderJobs } from './runs-list.js';
import { selectSeq } from './time-travel.js';

// ---------------------------------------------------------------------------------------------
// Actions from the selected point: branch, export, verify replay

function pointOf(v) {
  const r = v.record;
  if (r.type === 'checkpoint.committed' && r.data.kind !== 'interrupt') return { point: `ckpt:${r.data.index}`, text: `checkpoint ${r.data.index} (step ${r.data.step})` };
  if (r.type === 'step.finished') return { point: `step:${r.data.step}`, text: `step ${r.data.step} (re-executed from checkpoint ${v.nearestCheckpoint?.index ?? 0})` };
  return { point: String(v.seq), text: `event ${v.seq} (step ${v.step})` };
}

let currentView = null;

export function renderActions(v, d) {
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

export async function submitBranch(e) {
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

export async function doExport() {
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

export async function doResume() {
  try {
    const res = await api(`/api/runs/${encodeURIComponent(S.selected)}/resume`, {});
    toast(`resuming ${res.runId}`, 'info');
  } catch (err) {
    toast(`resume refused: ${err.message}`);
  }
}

export async function doReplay() {
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

export function renderReplayStatus() {
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

export async function submitTrain(e) {
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
