// Bots & models: candle datasets (CSV upload ≤ 4 MiB, or an import from the trader's own connector, polled),
// ML models (create, train — a job: `POST …/train` 202, then `GET …/status` polled for its stage and fraction —,
// predict, activate/deactivate, delete), the selected model's predictions, and the auto-trading status.
import { h, panel, field, fmt, toast, table, loadCss, errorText, errorBox, clear, spinner } from '../lib/ui.js';

const TIMEFRAMES = ['M1', 'M5', 'M15', 'M30', 'H1', 'H4', 'D1', 'W1'];
const MAX_UPLOAD = 4 * 1024 * 1024;
const sleep = (ms, signal) => new Promise((res, rej) => { const t = setTimeout(res, ms); if (signal) signal.addEventListener('abort', () => { clearTimeout(t); rej(new DOMException('left', 'AbortError')); }, { once: true }); });
const price = (v) => (v === null || v === undefined ? '—' : fmt.price(v));
const STAGES = { queued: 'Queued', loading_data: 'Loading candles', features: 'Computing features', labels: 'Labelling', training: 'Training', evaluating: 'Evaluating', packaging: 'Packaging', saving: 'Saving', done: 'Done' };

export default async function mount(root, ctx) {
  await loadCss('/app/pages/bots.css');
  const { api, signal } = ctx;
  let selected = null;
  const polling = new Set();

  // ---- datasets ----
  const datasets = panel({
    title: 'Datasets', id: 'datasets',
    load: (sig) => api('/api/v1/ml/datasets', { signal: sig }),
    render: (rows, body) => {
      body.append(rows.length ? table([
        { label: 'Symbol', value: (d) => d.symbol }, { label: 'Timeframe', value: (d) => d.timeframe },
        { label: 'Bars', align: 'right', value: (d) => fmt.num(d.bars, 0) },
        { label: 'From', value: (d) => fmt.date(d.first) }, { label: 'To', value: (d) => fmt.date(d.last) },
        { label: 'Source', value: (d) => d.source },
        { label: '', value: (d) => h('div', { class: 'actions' },
          h('a', { class: 'btn btn-small', href: '#/backtest' }, 'Backtest'),
          h('button', { class: 'btn btn-small btn-danger', type: 'button', 'aria-label': `Delete dataset ${d.symbol} ${d.timeframe}`, onclick: async (e) => {
            if (!confirm(`Delete the ${d.symbol} ${d.timeframe} candles?`)) return;
            e.target.disabled = true;
            try { await api(`/api/v1/ml/datasets/${encodeURIComponent(d.symbol)}/${encodeURIComponent(d.timeframe)}`, { method: 'DELETE' }); datasets.reload(); } catch (err) { toast(errorText(err), 'err'); e.target.disabled = false; }
          } }, 'Delete')) },
      ], rows, { caption: 'Your candle datasets' }) : h('p', { class: 'empty' }, 'No candles yet: upload a CSV or import from your connector.'));

      // Upload.
      const sym = field({ label: 'Symbol', value: 'EURUSD', maxlength: 32, required: true, autocomplete: 'off' });
      const tf = field({ label: 'Timeframe', type: 'select', value: 'H1', options: TIMEFRAMES.map((x) => [x, x]) });
      const file = field({ label: 'CSV file', type: 'file', accept: '.csv,text/csv', required: true, hint: 'time,open,high,low,close[,volume] — at most 4 MiB and 100,000 rows per upload' });
      const upStatus = h('div', { role: 'status', 'aria-live': 'polite' });
      const upBtn = h('button', { class: 'btn btn-primary', type: 'submit', id: 'upload-csv' }, 'Upload');
      const upload = h('form', { class: 'sub-form', onsubmit: async (e) => {
        e.preventDefault();
        const f = file.querySelector('input').files[0];
        if (!f) { clear(upStatus).append(h('p', { class: 'warn' }, 'Choose a CSV file first.')); return; }
        if (f.size > MAX_UPLOAD) { clear(upStatus).append(h('p', { class: 'warn' }, `The file is ${fmt.num(f.size / 1048576, 1)} MiB; the limit is 4 MiB per upload — split it into several uploads (they merge).`)); return; }
        upBtn.disabled = true;
        clear(upStatus).append(spinner('Uploading…'));
        try {
          const r = await api('/api/v1/ml/datasets', { method: 'POST', query: { symbol: sym.querySelector('input').value.trim().toUpperCase(), timeframe: tf.querySelector('select').value },
            body: f, headers: { 'Content-Type': 'text/csv' }, timeout: 120000 });
          clear(upStatus).append(h('p', { class: 'ok-line' }, `Uploaded: ${fmt.num(r.received, 0)} rows received, ${fmt.num(r.added, 0)} added, ${fmt.num(r.replaced, 0)} replaced, ${fmt.num(r.unchanged, 0)} unchanged.`));
          datasets.reload();
        } catch (err) { clear(upStatus).append(errorBox(err)); } finally { upBtn.disabled = false; }
      } }, h('h3', null, 'Upload candles'), h('div', { class: 'row' }, sym, tf, file), h('div', { class: 'form-actions' }, upBtn), upStatus);

      // Import from the connector.
      const now = new Date();
      const monthAgo = new Date(now.getTime() - 30 * 86400000);
      const isym = field({ label: 'Symbol', value: 'EURUSD', maxlength: 32, autocomplete: 'off' });
      const itf = field({ label: 'Timeframe', type: 'select', value: 'H1', options: TIMEFRAMES.map((x) => [x, x]) });
      const istart = field({ label: 'From', type: 'date', value: monthAgo.toISOString().slice(0, 10) });
      const iend = field({ label: 'To', type: 'date', value: now.toISOString().slice(0, 10) });
      const imStatus = h('div', { role: 'status', 'aria-live': 'polite' });
      const imBtn = h('button', { class: 'btn', type: 'submit' }, 'Import from connector');
      const imp = h('form', { class: 'sub-form', onsubmit: async (e) => {
        e.preventDefault();
        imBtn.disabled = true;
        clear(imStatus).append(spinner('Asking the connector…'));
        try {
          const endIso = new Date(iend.querySelector('input').value + 'T00:00:00Z');
          const endAt = new Date(Math.min(endIso.getTime(), Date.now() - 60000)).toISOString();
          let im = await api('/api/v1/ml/datasets/from-connector', { method: 'POST', body: { symbol: isym.querySelector('input').value.trim().toUpperCase(), timeframe: itf.querySelector('select').value,
            start: istart.querySelector('input').value + 'T00:00:00Z', end: endAt } });
          const bar = h('progress', { max: Math.max(1, im.pages || 1), value: im.pages_done || 0, 'aria-label': 'Import progress' });
          const txt = h('span');
          clear(imStatus).append(h('div', { class: 'progress-line' }, bar, txt));
          while (im.status === 'running' || im.status === 'queued') {
            txt.textContent = `Page ${im.pages_done || 0} of ${im.pages || '?'} — ${fmt.num(im.bars_received || 0, 0)} bars received`;
            await sleep(1000, signal);
            im = await api(im.status_url || `/api/v1/ml/datasets/imports/${im.id}`, { signal });
            bar.max = Math.max(1, im.pages || 1); bar.value = im.pages_done || 0;
          }
          if (im.status === 'failed') throw new Error(im.error || 'The import failed.');
          clear(imStatus).append(h('p', { class: 'ok-line' }, `Imported: ${fmt.num(im.bars_received || 0, 0)} bars received, ${fmt.num(im.bars_added || 0, 0)} added.`));
          datasets.reload();
        } catch (err) { if (err.name !== 'AbortError') clear(imStatus).append(errorBox(err)); } finally { imBtn.disabled = false; }
      } }, h('h3', null, 'Import from your connector'), h('div', { class: 'row' }, isym, itf, istart, iend), h('div', { class: 'form-actions' }, imBtn), imStatus);
      body.append(h('div', { class: 'grid' }, upload, imp));
    },
  });

  // ---- models ----
  const models = panel({
    title: 'Models', id: 'models',
    load: (sig) => api('/api/v1/ml/models', { query: { limit: 100 }, signal: sig }),
    render: (rows, body) => {
      body.append(rows.length ? table([
        { label: 'Name', value: (m) => m.name },
        { label: 'Type', value: (m) => m.model_type.replace(/_/g, ' ') },
        { label: 'Market', value: (m) => `${m.symbol} ${m.timeframe}` },
        { label: 'Status', value: (m) => statusCell(m) },
        { label: 'Accuracy', align: 'right', value: (m) => m.performance_metrics && m.performance_metrics.accuracy != null ? fmt.pct(m.performance_metrics.accuracy) : '—' },
        { label: 'Active', value: (m) => h('span', { class: 'badge ' + (m.is_active ? 'badge-ok' : '') }, m.is_active ? 'active' : 'off') },
        { label: 'Actions', value: (m) => h('div', { class: 'actions' },
          h('button', { class: 'btn btn-small', type: 'button', 'aria-label': `Train ${m.name}`, disabled: m.training_status === 'training', onclick: (e) => train(m, e.target) }, m.training_status === 'completed' ? 'Retrain' : 'Train'),
          h('button', { class: 'btn btn-small', type: 'button', 'aria-label': `Predict with ${m.name}`, disabled: m.training_status !== 'completed', onclick: (e) => predict(m, e.target) }, 'Predict'),
          h('button', { class: 'btn btn-small', type: 'button', 'aria-label': `${m.is_active ? 'Deactivate' : 'Activate'} ${m.name}`, disabled: m.training_status !== 'completed' && !m.is_active,
            onclick: async (e) => { e.target.disabled = true; try { await api(`/api/v1/ml/models/${m.id}/${m.is_active ? 'deactivate' : 'activate'}`, { method: 'POST' }); models.reload(); auto.reload(); } catch (err) { toast(errorText(err), 'err'); e.target.disabled = false; } } },
          m.is_active ? 'Deactivate' : 'Activate'),
          h('button', { class: 'btn btn-small', type: 'button', 'aria-label': `Predictions of ${m.name}`, onclick: () => { selected = m; predictions.reload(); predictions.scrollIntoView({ block: 'nearest' }); } }, 'Predictions'),
          h('button', { class: 'btn btn-small btn-danger', type: 'button', 'aria-label': `Delete ${m.name}`, onclick: async (e) => {
            if (!confirm(`Delete the model “${m.name}” with its versions and predictions?`)) return;
            e.target.disabled = true;
            try { await api(`/api/v1/ml/models/${m.id}`, { method: 'DELETE' }); if (selected && selected.id === m.id) { selected = null; predictions.reload(); } models.reload(); } catch (err) { toast(errorText(err), 'err'); e.target.disabled = false; }
          } }, 'Delete')) },
      ], rows, { caption: 'Your models', rowAttrs: (m) => ({ dataset: { id: m.id, status: m.training_status } }) }) : h('p', { class: 'empty' }, 'No models yet: create one below, then train it on your candles.'));
      for (const m of rows) if (m.training_status === 'training') watch(m.id);

      const name = field({ label: 'Name', value: 'My EURUSD model', maxlength: 100, required: true });
      const type = field({ label: 'Model', type: 'select', value: 'gradient_boosting', options: [['gradient_boosting', 'Gradient boosting'], ['random_forest', 'Random forest'], ['logistic_regression', 'Logistic regression']] });
      const sym = field({ label: 'Symbol', value: 'EURUSD', maxlength: 20 });
      const tf = field({ label: 'Timeframe', type: 'select', value: 'H1', options: TIMEFRAMES.map((x) => [x, x]) });
      const btn = h('button', { class: 'btn btn-primary', type: 'submit', id: 'create-model' }, 'Create model');
      const st = h('div', { role: 'status' });
      body.append(h('form', { class: 'sub-form', onsubmit: async (e) => {
        e.preventDefault();
        btn.disabled = true; clear(st);
        try {
          const m = await api('/api/v1/ml/models', { method: 'POST', body: { name: name.querySelector('input').value, model_type: type.querySelector('select').value, symbol: sym.querySelector('input').value.trim().toUpperCase(), timeframe: tf.querySelector('select').value } });
          toast(`Model “${m.name}” created — train it next`, 'ok');
          models.reload();
        } catch (err) { clear(st).append(errorBox(err)); } finally { btn.disabled = false; }
      } }, h('h3', null, 'New model'), h('div', { class: 'row' }, name, type, sym, tf, h('div', { class: 'form-actions' }, btn)), st));
    },
  });

  function statusCell(m) {
    const p = m.training_progress || {};
    if (m.training_status === 'training') {
      const frac = typeof p.fraction === 'number' ? p.fraction : 0;
      return h('div', { class: 'train-progress', dataset: { model: m.id }, role: 'status' },
        h('progress', { max: 1, value: frac, 'aria-label': `Training ${m.name}` }), h('span', { class: 'hint' }, ` ${STAGES[p.stage] || p.stage || 'Queued'} ${fmt.num(frac * 100, 0)} %`));
    }
    if (m.training_status === 'failed') return h('span', { class: 'badge badge-err', title: m.training_error || '' }, 'failed: ' + (m.training_error || ''));
    if (m.training_status === 'completed') return h('span', { class: 'badge badge-ok' }, `trained v${m.version ?? ''}`);
    return h('span', { class: 'badge' }, 'not trained');
  }

  async function train(m, btn) {
    btn.disabled = true;
    try {
      await api(`/api/v1/ml/models/${m.id}/train`, { method: 'POST', body: {} });
      toast(`Training “${m.name}”…`, 'info', 2500);
      models.reload();
    } catch (err) { toast(errorText(err), 'err'); btn.disabled = false; }
  }

  // Poll one model's status while it trains; update its row in place, reload the list when it finishes.
  async function watch(id) {
    if (polling.has(id)) return;
    polling.add(id);
    try {
      for (;;) {
        await sleep(1000, signal);
        const s = await api(`/api/v1/ml/models/${id}/status`, { signal });
        const cell = document.querySelector(`.train-progress[data-model="${id}"]`);
        if (cell && s.progress) {
          const frac = typeof s.progress.fraction === 'number' ? s.progress.fraction : 0;
          cell.querySelector('progress').value = frac;
          cell.querySelector('span').textContent = ` ${STAGES[s.progress.stage] || s.progress.stage} ${fmt.num(frac * 100, 0)} %`;
        }
        if (s.training_status !== 'training') {
          if (s.training_status === 'completed') toast('Training completed', 'ok');
          else if (s.training_status === 'failed') toast('Training failed: ' + (s.training_error || ''), 'err');
          break;
        }
      }
      polling.delete(id);
      models.reload();
    } catch (err) { polling.delete(id); if (err.name !== 'AbortError') toast(errorText(err), 'err'); }
  }

  async function predict(m, btn) {
    btn.disabled = true;
    try {
      await api(`/api/v1/ml/models/${m.id}/predict`, { method: 'POST', body: { symbol: m.symbol } });
      selected = m;
      predictions.reload();
    } catch (err) { toast(errorText(err), 'err'); } finally { btn.disabled = false; }
  }

  // ---- predictions of the selected model ----
  const predictions = panel({
    title: 'Predictions', id: 'predictions',
    load: (sig) => (selected ? api(`/api/v1/ml/models/${selected.id}/predictions`, { query: { limit: 20 }, signal: sig }) : null),
    render: (rows, body) => {
      if (!selected) { body.append(h('p', { class: 'empty' }, 'Choose “Predict” or “Predictions” on a trained model.')); return; }
      body.append(h('p', { class: 'muted' }, `Model “${selected.name}” (${selected.symbol} ${selected.timeframe}), newest first.`));
      body.append(rows && rows.length ? table([
        { label: 'When', value: (p) => fmt.date(p.created_at) },
        { label: 'Bar', value: (p) => fmt.date(p.prediction && p.prediction.bar_time) },
        { label: 'Signal', value: (p) => { const d = (p.prediction || {}).direction || '—'; return h('span', { class: 'badge ' + (d === 'BUY' ? 'badge-ok' : d === 'SELL' ? 'badge-err' : '') }, d); } },
        { label: 'Confidence', align: 'right', value: (p) => fmt.pct(p.confidence ?? (p.prediction || {}).confidence) },
        { label: 'Entry', align: 'right', value: (p) => price((p.prediction || {}).entry_price) },
        { label: 'Stop', align: 'right', value: (p) => price((p.prediction || {}).stop_loss) },
        { label: 'Target', align: 'right', value: (p) => price((p.prediction || {}).take_profit) },
        { label: 'Candles', value: (p) => { const c = (p.prediction || {}).candles || {}; return c.origin === 'generated' ? h('span', { class: 'badge badge-warn' }, 'generated') : (c.kind || '—'); } },
      ], rows) : h('p', { class: 'empty' }, 'No predictions yet.'));
    },
  });

  // ---- auto-trading ----
  const auto = panel({
    title: 'Auto-trading', id: 'auto-trading',
    actions: [h('button', { class: 'btn btn-small', type: 'button', onclick: () => auto.reload() }, 'Refresh')],
    load: (sig) => api('/api/v1/ml/auto-trading/status', { signal: sig }),
    render: (s, body) => {
      body.append(h('dl', { class: 'stats' }, [
        ['Scheduler', s.scheduler_running ? 'running' : 'stopped'], ['Every', `${s.interval_minutes} min`], ['Active models', fmt.num(s.active_models, 0)],
        ['Predictions today', fmt.num(s.predictions_today, 0)], ['Trades today', fmt.num(s.trades_today, 0)], ['Last run', s.last_run ? fmt.date(s.last_run) : 'never'],
      ].map(([k, v]) => h('div', { class: 'stat' }, h('dt', null, k), h('dd', null, v)))));
      if (s.config) body.append(h('p', { class: 'hint' }, `Defaults: confidence ≥ ${fmt.pct(s.config.default_confidence_threshold, 0)}, at most ${s.config.default_max_trades_per_day} trades a day, ${s.config.default_cooldown_minutes} min cooldown, ${s.config.default_lot_size} lots.`));
      const out = h('div', { role: 'status' });
      const trig = h('button', { class: 'btn', type: 'button', disabled: !s.active_models, onclick: async () => {
        trig.disabled = true; clear(out).append(spinner('Running one cycle…'));
        try {
          const r = await api('/api/v1/ml/auto-trading/trigger', { method: 'POST', timeout: 60000 });
          const res = r.result || {};
          clear(out).append(h('p', null, r.status === 'skipped' ? `Skipped: ${r.reason}` : `Cycle done: ${res.models_checked ?? 0} models checked, ${res.predictions_generated ?? 0} predictions, ${res.trades_executed ?? 0} trades.`),
            (res.errors || []).length ? h('ul', { class: 'warn' }, res.errors.map((x) => h('li', null, typeof x === 'string' ? x : JSON.stringify(x)))) : '');
        } catch (err) { clear(out).append(errorBox(err)); } finally { trig.disabled = false; }
      } }, 'Run a cycle now');
      body.append(h('div', { class: 'form-actions' }, trig, s.active_models ? null : h('span', { class: 'hint' }, 'Activate a trained model to trade automatically.')), out);
    },
  });

  root.append(h('h1', null, 'Bots & models'), models, h('div', { class: 'grid-2' }, predictions, auto), datasets);
}
