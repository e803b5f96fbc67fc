// The dashboard page: plain DOM, no framework. Data comes from the JSON API; two event streams
// keep it live (/api/stream: the runs list and the jobs; /api/runs/ID/stream: the open run's new
// events). Every text from the server goes through textContent, never innerHTML.
// The page is ES modules, no build step: util.js, state.js (API client and state), runs-list.js,
// run-page.js, time-travel.js, actions.js and chart.js; this module wires them to the DOM and starts.
import { $, toast } from './util.js';
import { api, loadRun, S } from './state.js';
import { renderJobs, renderRuns } from './runs-list.js';
import { lineageOf, refreshLineage, renderRun, selectRun, showHover } from './run-page.js';
import { selectSeq } from './time-travel.js';
import { doExport, doReplay, doResume, submitBranch, submitTrain } from './actions.js';

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
  // A page opened on a run draws that run first (from its overview), then loads the list: the
  // first chart waits for neither the list nor the server reading it; the run's parent and
  // branches join the chart once the list says which they are (refreshLineage).
  const opened = /^#\/run\/(.+)$/.exec(location.hash);
  if (opened) await selectRun(decodeURIComponent(opened[1])).catch(() => {});
  try {
    // The list comes in pages (at most 1000 runs each); the stream below keeps it current.
    // The first page small, so its rows show at once; each page is drawn as it comes.
    const runs = [];
    for (let cursor = null, first = true; first || cursor; first = false) {
      const page = await api(`/api/runs?limit=${first ? 100 : 1000}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      runs.push(...page.runs);
      S.runs = runs.slice();
      S.byId = new Map(runs.map((r) => [r.runId, r]));
      if (first) {
        S.jobs = page.jobs;
        renderJobs();
      }
      renderRuns();
      cursor = page.nextCursor;
    }
  } catch (err) {
    toast(`cannot list runs: ${err.message}`);
  }
  connectGlobal();
  if (opened) await refreshLineage();
  else onRoute();
  showHover(null);
  document.body.dataset.ready = '1';
}

main();
