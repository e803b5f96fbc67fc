// The sidebar: the runs list as a lineage tree (filtered by the search box) and the jobs of
// this server.
import { STATE_COLORS } from './chart.js';
import { $, fmt, h, toast, when } from './util.js';
import { api, S } from './state.js';
import { renderRunHead } from './run-page.js';
import { renderReplayStatus } from './actions.js';

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

export function renderRuns() {
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
  // When the list first showed runs, in ms since the page's navigation (the dashboard benchmark reads it).
  if (rows.length > 0 && !list.dataset.drawnAt) list.dataset.drawnAt = String(Math.round(performance.now()));
  if (rows.length === 0) list.append(h('li', { class: 'muted empty-row' }, S.runs.length ? 'no run matches the filter' : 'no runs yet: start one below or with `retrace train`'));
  $('#runs-count').textContent = S.filter ? `${direct.size} of ${S.runs.length}` : String(S.runs.length);
}

export function stateBadge(state, stopReason) {
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

export function renderJobs() {
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

export async function stopJob(id) {
  try {
    await api(`/api/jobs/${encodeURIComponent(id)}/stop`, {});
  } catch (err) {
    toast(err.message);
  }
}
