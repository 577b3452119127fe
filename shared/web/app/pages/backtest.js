// Backtest: pick a strategy (#/backtest?strategy=<id> preselects one), a dataset (the caller's uploaded candles, or
// generated data — labelled as such) and costs; run (`POST /backtest/run`: 200 with the result, or 202 `queued` —
// then the session is polled for its progress). The result: statistics, equity and drawdown charts from the full
// equity curve (`GET /backtest/sessions/{id}/trades`), the trades paged, Monte Carlo bands
// (`POST …/monte-carlo`), and an optimizer (`POST /backtest/optimize` → 202, polled) drawn as a heatmap.
import { h, panel, field, fmt, table, loadCss, errorBox, clear, spinner } from '../lib/ui.js';
import { lineChart } from '../lib/chart.js';
import { heatmapFromApi } from '../lib/heatmap.js';

const OBJECTIVES = [['sharpe_ratio', 'Sharpe ratio'], ['net_profit', 'Net profit'], ['return_pct', 'Return %'], ['sortino_ratio', 'Sortino ratio'],
  ['calmar_ratio', 'Calmar ratio'], ['profit_factor', 'Profit factor'], ['sqn', 'SQN'], ['win_rate_pct', 'Win rate %'], ['expectancy', 'Expectancy'], ['max_drawdown', 'Max drawdown']];
const sleep = (ms, signal) => new Promise((res, rej) => { const t = setTimeout(res, ms); if (signal) signal.addEventListener('abort', () => { clearTimeout(t); rej(new DOMException('left', 'AbortError')); }, { once: true }); });
const day = (iso) => (iso ? String(iso).slice(0, 10) : '');

export default async function mount(root, ctx) {
  await loadCss('/app/pages/backtest.css');
  const { api, signal } = ctx;
  let strategies = [];

  const resultHost = h('div', { class: 'results' });
  const optHost = h('div');

  const runPanel = panel({
    title: 'Run a backtest', id: 'bt-run',
    load: async (sig) => {
      const [s, d] = await Promise.all([api('/api/v1/strategies', { signal: sig }), api('/api/v1/ml/datasets', { signal: sig })]);
      return { strategies: s, datasets: d };
    },
    render: (data, body) => {
      strategies = data.strategies;
      if (!strategies.length) {
        body.append(h('p', { class: 'empty' }, 'No strategy yet. ', h('a', { href: '#/strategies' }, 'Build one'), ' or ', h('a', { href: '#/ai' }, 'generate one with the AI supervisor'), '.'));
        return;
      }
      const want = ctx.params.get('strategy');
      const stratF = field({ label: 'Strategy', name: 'strategy', type: 'select', value: want || strategies[0].id, options: strategies.map((s) => [s.id, s.name]) });
      const dsOptions = data.datasets.map((d) => [`${d.symbol}|${d.timeframe}`, `${d.symbol} ${d.timeframe} — ${fmt.num(d.bars, 0)} bars, ${day(d.first)} → ${day(d.last)}`]);
      dsOptions.push(['generated|H1', 'Generated data (random walk, EURUSD H1) — not market data']);
      const dsF = field({ label: 'Data', name: 'dataset', type: 'select', value: dsOptions[0][0], options: dsOptions,
        hint: data.datasets.length ? 'Your uploaded candles (Bots & models → Datasets).' : 'No dataset uploaded yet: upload candles on Bots & models, or run on generated data.' });
      const first = data.datasets[0];
      const start = field({ label: 'From', name: 'start_date', type: 'date', value: first ? day(first.first) : '2024-01-01', required: true });
      const end = field({ label: 'To', name: 'end_date', type: 'date', value: first ? day(first.last) : '2024-03-01', required: true });
      const bal = field({ label: 'Initial balance', name: 'initial_balance', type: 'number', value: 10000, min: 1, step: 'any' });
      const comm = field({ label: 'Commission per lot', name: 'commission', type: 'number', value: 7, min: 0, step: 'any' });
      const spread = field({ label: 'Spread (pips)', name: 'spread_pips', type: 'number', value: 1, min: 0, step: 'any' });
      const dsSel = dsF.querySelector('select');
      dsSel.addEventListener('change', () => {
        const [sym, tf] = dsSel.value.split('|');
        const d = data.datasets.find((x) => x.symbol === sym && x.timeframe === tf);
        if (d) { start.querySelector('input').value = day(d.first); end.querySelector('input').value = day(d.last); }
      });
      const status = h('div', { class: 'run-status', role: 'status', 'aria-live': 'polite' });
      const btn = h('button', { class: 'btn btn-primary', type: 'submit', id: 'run-backtest' }, 'Run backtest');
      const val = (f) => f.querySelector('input, select').value;
      const form = h('form', { onsubmit: async (e) => {
        e.preventDefault();
        const [sym, tf] = val(dsF).split('|');
        const body = { strategy_id: val(stratF), start_date: val(start), end_date: val(end), initial_balance: Number(val(bal)), commission: Number(val(comm)), spread_pips: Number(val(spread)) };
        if (sym === 'generated') { body.data = 'generated'; } else { body.symbol = sym; body.timeframe = tf; }
        btn.disabled = true;
        clear(status).append(spinner('Running…'));
        try {
          const r = await api('/api/v1/backtest/run', { method: 'POST', body, raw: true, timeout: 120000, signal });
          let sessionId = r.data.session_id;
          if (r.status === 202 || r.data.status === 'queued' || r.data.status === 'running') {
            const bar = h('progress', { max: 100, value: 0, 'aria-label': 'Backtest progress' });
            const txt = h('span', null, 'Queued…');
            clear(status).append(h('div', { class: 'progress-line' }, bar, txt));
            for (;;) {
              await sleep(1000, signal);
              const s = await api(`/api/v1/backtest/sessions/${sessionId}`, { signal });
              bar.value = s.progress || 0; txt.textContent = `${s.status} — ${s.progress || 0} %`;
              if (s.status === 'completed') break;
              if (s.status === 'failed') throw new Error(s.error || 'The backtest failed.');
            }
          }
          clear(status);
          showSession(sessionId, strategies.find((s) => s.id === body.strategy_id));
          sessions.reload();
        } catch (err) {
          if (err.name === 'AbortError') return;
          clear(status).append(errorBox(err));
        } finally { btn.disabled = false; }
      } },
      h('div', { class: 'row' }, stratF, dsF), h('div', { class: 'row' }, start, end, bal, comm, spread),
      h('div', { class: 'form-actions' }, btn, h('a', { class: 'btn btn-ghost', href: '#/strategies' }, 'Edit strategies')), status);
      body.append(form);
      const stratSel = stratF.querySelector('select');
      const paintOpt = () => { clear(optHost).append(optimizerPanel(strategies.find((s) => s.id === stratSel.value), () => ({
        ...(() => { const [sym, tf] = val(dsF).split('|'); return sym === 'generated' ? { data: 'generated' } : { symbol: sym, timeframe: tf }; })(),
        strategy_id: stratSel.value, start_date: val(start), end_date: val(end), initial_balance: Number(val(bal)), commission: Number(val(comm)), spread_pips: Number(val(spread)),
      }))); };
      stratSel.addEventListener('change', paintOpt);
      paintOpt();
    },
  });

  const sessions = panel({
    title: 'Recent runs', id: 'bt-sessions',
    load: (sig) => api('/api/v1/backtest/sessions', { query: { limit: 10 }, signal: sig }),
    empty: 'No backtest yet.',
    render: (rows, body) => {
      if (!rows.length) return;
      body.append(table([
        { label: 'When', value: (r) => fmt.date(r.created_at) },
        { label: 'Strategy', value: (r) => (strategies.find((s) => s.id === r.strategy_id) || {}).name || '—' },
        { label: 'Data', value: (r) => `${r.symbol} ${r.timeframe} ${r.start_date} → ${r.end_date}${r.data === 'generated' ? ' (generated)' : ''}` },
        { label: 'Status', value: (r) => h('span', { class: 'badge ' + (r.status === 'completed' ? 'badge-ok' : r.status === 'failed' ? 'badge-err' : 'badge-warn') }, r.status) },
        { label: 'Net profit', align: 'right', value: (r) => r.result ? h('span', { class: fmt.tone(r.result.net_profit) }, fmt.signed(r.result.net_profit)) : '—' },
        { label: '', value: (r) => r.status === 'completed' ? h('button', { class: 'btn btn-small', type: 'button', onclick: () => showSession(r.id, strategies.find((s) => s.id === r.strategy_id)) }, 'Show') : (r.error || '') },
      ], rows));
    },
  });

  root.append(h('h1', null, 'Backtest'), runPanel, resultHost, optHost, sessions);

  function showSession(id, strategy) {
    clear(resultHost).append(
      panel({
        title: 'Result' + (strategy ? ` — ${strategy.name}` : ''), id: 'bt-result',
        load: async (sig) => {
          const [s, t] = await Promise.all([api(`/api/v1/backtest/sessions/${id}`, { signal: sig }), api(`/api/v1/backtest/sessions/${id}/trades`, { query: { limit: 50, offset: 0 }, signal: sig })]);
          return { s, t };
        },
        render: ({ s, t }, body) => renderResult(body, s, t),
      }),
      monteCarloPanel(id));
    resultHost.scrollIntoView({ behavior: 'smooth', block: 'start' });
  }

  function renderResult(body, s, t) {
    const r = s.result || {};
    const st = r.statistics || {};
    const ccy = 'USD';
    const money = (v) => fmt.money(v, ccy);
    const pct = (v) => fmt.num(v) + ' %';
    // [label, value, formatter, tone?]; a null statistic (e.g. no losing trade for the profit factor) reads "—".
    const stats = [
      ['Net profit', r.net_profit, money, fmt.tone(r.net_profit)], ['Return', st.return_pct, pct, fmt.tone(st.return_pct)],
      ['Trades', r.total_trades, (v) => fmt.num(v, 0)], ['Win rate', r.win_rate, (v) => fmt.num(v, 1) + ' %'],
      ['Profit factor', r.profit_factor, fmt.num], ['Max drawdown', r.max_drawdown_pct ?? st.max_drawdown_pct, (v) => fmt.num(Math.abs(v)) + ' %', 'neg'],
      ['Sharpe', r.sharpe_ratio ?? st.sharpe_ratio, fmt.num], ['Sortino', st.sortino_ratio, fmt.num], ['SQN', st.sqn, fmt.num],
      ['Avg win', r.avg_win, money], ['Avg loss', r.avg_loss, money], ['Final equity', st.equity_final, money],
      ['Buy & hold', st.buy_hold_return_pct, pct], ['Exposure', st.exposure_time_pct, (v) => fmt.num(v, 1) + ' %'], ['Bars', r.bars, (v) => fmt.num(v, 0)],
    ].map(([k, v, f, tone]) => [k, v === null || v === undefined ? '—' : f(v), tone]);
    body.append(
      s.data === 'generated' ? h('p', { class: 'warn' }, 'Generated data (a seeded random walk) — not market data; the numbers show the mechanics only.') : '',
      h('p', { class: 'muted' }, `${s.symbol} ${s.timeframe}, ${s.start_date} → ${s.end_date}, initial balance ${fmt.money(s.initial_balance, ccy)}.`),
      h('dl', { class: 'stats', id: 'bt-stats' }, stats.map(([k, v, tone]) => h('div', { class: 'stat' }, h('dt', null, k), h('dd', { class: tone || '' }, v)))));
    const eq = t.equity_curve || [];
    const points = eq.map((v, i) => [i, v]);
    let peak = -Infinity;
    const dd = eq.map((v, i) => { peak = Math.max(peak, v); return [i, peak > 0 ? ((v - peak) / peak) * 100 : 0]; });
    body.append(h('div', { class: 'charts', id: 'bt-charts' },
      lineChart({ title: 'Equity (by bar)', series: [{ name: 'Equity', points }], x: 'number', yFormat: (v) => fmt.num(v, 0), xFormat: (v) => 'bar ' + Math.round(v), height: 240 }),
      lineChart({ title: 'Drawdown % (by bar)', series: [{ name: 'Drawdown', points: dd, class: 'line-2' }], x: 'number', zero: true, yFormat: (v) => fmt.num(v, 1) + ' %', xFormat: (v) => 'bar ' + Math.round(v), height: 140 })));
    // Trades, paged with offset/limit.
    const tradesBox = h('div', { id: 'bt-trades' });
    body.append(h('h3', null, `Trades (${fmt.num(t.total, 0)})`), tradesBox);
    const paint = (page, offset) => {
      clear(tradesBox).append(table([
        { label: 'Side', value: (x) => x.order_type },
        { label: 'Entry', value: (x) => fmt.date(x.entry_time) },
        { label: 'Entry price', align: 'right', value: (x) => fmt.price(x.entry_price) },
        { label: 'Exit', value: (x) => fmt.date(x.exit_time) },
        { label: 'Exit price', align: 'right', value: (x) => fmt.price(x.exit_price) },
        { label: 'Lots', align: 'right', value: (x) => fmt.num(x.lots) },
        { label: 'P/L', align: 'right', value: (x) => h('span', { class: fmt.tone(x.profit) }, fmt.signed(x.profit)) },
        { label: 'Reason', value: (x) => x.exit_reason || '—' },
      ], page.trades || [], { caption: `Trades ${offset + 1}–${offset + (page.trades || []).length} of ${page.total}` }),
      h('div', { class: 'pager' },
        h('button', { class: 'btn btn-small', type: 'button', disabled: offset === 0, onclick: () => load(Math.max(0, offset - 50)) }, '← Previous'),
        h('button', { class: 'btn btn-small', type: 'button', disabled: offset + 50 >= page.total, onclick: () => load(offset + 50) }, 'Next →')));
    };
    const load = async (offset) => {
      clear(tradesBox).append(spinner());
      try { paint(await api(`/api/v1/backtest/sessions/${s.id}/trades`, { query: { limit: 50, offset } }), offset); } catch (e) { clear(tradesBox).append(errorBox(e, () => load(offset))); }
    };
    paint(t, 0);
  }

  function monteCarloPanel(id) {
    const out = h('div', { id: 'mc-out' });
    const sims = field({ label: 'Simulations', type: 'number', value: 500, min: 10, max: 10000, step: 1 });
    const method = field({ label: 'Method', type: 'select', value: 'bootstrap', options: [['bootstrap', 'Bootstrap trades'], ['reshuffle', 'Reshuffle trades (same final equity)']] });
    const ruin = field({ label: 'Ruin at drawdown (%)', type: 'number', value: 50, min: 1, max: 100, step: 'any' });
    const btn = h('button', { class: 'btn', type: 'submit', id: 'run-mc' }, 'Run Monte Carlo');
    return panel({
      title: 'Monte Carlo', id: 'bt-mc',
      render: (_, body) => {
        body.append(h('form', { onsubmit: async (e) => {
          e.preventDefault();
          btn.disabled = true;
          clear(out).append(spinner('Simulating…'));
          try {
            const mc = await api(`/api/v1/backtest/sessions/${id}/monte-carlo`, { method: 'POST', timeout: 120000,
              body: { simulations: Number(sims.querySelector('input').value), method: method.querySelector('select').value, seed: 7, ruin_pct: Number(ruin.querySelector('input').value) } });
            const b = mc.bands || {};
            const xs = b.trade_index || [];
            const pts = (arr) => (arr || []).map((v, i) => [xs[i] ?? i, v]);
            const fe = mc.final_equity || {};
            const md = mc.max_drawdown_pct || {};
            clear(out).append(
              h('dl', { class: 'stats' },
                [['P(loss)', fmt.pct(mc.probability_of_loss)], ['P(ruin)', fmt.pct(mc.probability_of_ruin)], ['Final equity p5', fmt.money(fe.p5)], ['Final equity p50', fmt.money(fe.p50)],
                  ['Final equity p95', fmt.money(fe.p95)], ['Max DD p50', fmt.num(md.p50, 1) + ' %'], ['Max DD p95', fmt.num(md.p95, 1) + ' %']]
                  .map(([k, v]) => h('div', { class: 'stat' }, h('dt', null, k), h('dd', null, v)))),
              lineChart({ title: `Equity by trade: ${mc.simulations} ${mc.method} paths (5–95 % band)`, x: 'number', xFormat: (v) => 'trade ' + Math.round(v), yFormat: (v) => fmt.num(v, 0),
                series: [{ name: 'Median', points: pts(b.p50) }, { name: 'Actual', points: pts(b.actual), class: 'line-3' }],
                bands: [{ name: 'p5 – p95', lower: pts(b.p5), upper: pts(b.p95) }] }));
          } catch (err) { clear(out).append(errorBox(err)); } finally { btn.disabled = false; }
        } }, h('div', { class: 'row' }, sims, method, ruin, h('div', null, btn))), out);
      },
    });
  }

  function optimizerPanel(strategy, base) {
    if (!strategy) return h('div');
    const params = strategy.parameters || [];
    return panel({
      title: 'Optimize parameters', id: 'bt-opt',
      render: (_, body) => {
        if (!params.length) { body.append(h('p', { class: 'empty' }, 'This strategy has no parameters to optimize. Add some in the rule builder (e.g. fast and slow periods).')); return; }
        const rows = params.map((p) => {
          const lo = p.min ?? Math.max(1, Number(p.default_value) / 2);
          const hi = p.max ?? Number(p.default_value) * 2;
          const step = +(((hi - lo) / 4) || 1).toPrecision(2);
          const on = field({ label: `Vary ${p.name}`, type: 'checkbox', value: params.indexOf(p) < 2 });
          const mn = field({ label: `${p.name} min`, name: 'opt-min', type: 'number', value: lo, step: 'any' });
          const mx = field({ label: `${p.name} max`, name: 'opt-max', type: 'number', value: hi, step: 'any' });
          const sp = field({ label: `${p.name} step`, name: 'opt-step', type: 'number', value: step, step: 'any', min: 0 });
          return { p, on, mn, mx, sp, el: h('div', { class: 'row opt-param', dataset: { param: p.name } }, on, mn, mx, sp) };
        });
        const objective = field({ label: 'Objective', type: 'select', value: 'sharpe_ratio', options: OBJECTIVES });
        const constraints = field({ label: 'Constraints (one per line, rule language)', type: 'textarea', value: params.length >= 2 ? `${params[0].name} < ${params[1].name}` : '', rows: 2, hint: 'e.g. fast < slow' });
        const out = h('div', { id: 'opt-out' });
        const btn = h('button', { class: 'btn btn-primary', type: 'submit', id: 'run-opt' }, 'Optimize');
        body.append(h('form', { onsubmit: async (e) => {
          e.preventDefault();
          const parameters = {};
          for (const r of rows) if (r.on.querySelector('input').checked) {
            parameters[r.p.name] = { min: Number(r.mn.querySelector('input').value), max: Number(r.mx.querySelector('input').value), step: Number(r.sp.querySelector('input').value) };
          }
          const body2 = { ...base(), parameters, objective: objective.querySelector('select').value,
            constraints: constraints.querySelector('textarea').value.split('\n').map((x) => x.trim()).filter(Boolean) };
          btn.disabled = true;
          const bar = h('progress', { max: 100, value: 0, 'aria-label': 'Optimization progress' });
          const txt = h('span', null, 'Queued…');
          clear(out).append(h('div', { class: 'progress-line', role: 'status' }, bar, txt));
          try {
            const job = await api('/api/v1/backtest/optimize', { method: 'POST', body: body2 });
            txt.textContent = `Queued: ${job.combinations} combinations in ${job.chunks} chunk(s)…`;
            let o;
            for (;;) {
              await sleep(800, signal);
              o = await api(`/api/v1/backtest/optimize/${job.id}`, { signal });
              bar.value = o.progress || 0;
              txt.textContent = `${o.status} — ${o.progress || 0} % (${o.evaluated ?? 0} evaluated, ${o.skipped ?? 0} skipped)`;
              if (o.status === 'completed') break;
              if (o.status === 'failed') throw new Error(o.error || 'The optimization failed.');
            }
            const metric = (OBJECTIVES.find(([k]) => k === o.objective) || [o.objective, o.objective])[1];
            clear(out).append(
              o.heatmap ? heatmapFromApi(o.heatmap, metric, (v) => fmt.num(v, Math.abs(v) >= 100 ? 0 : 2)) : h('p', { class: 'empty' }, 'Vary two parameters to see a heatmap.'),
              h('h3', null, 'Best combinations'),
              table([
                { label: 'Parameters', value: (r) => Object.entries(r.params).map(([k, v]) => `${k} ${v}`).join(', ') },
                { label: metric, align: 'right', value: (r) => fmt.num(r.objective) },
                { label: 'Trades', align: 'right', value: (r) => fmt.num(r.statistics && r.statistics.trades, 0) },
                { label: 'Net profit', align: 'right', value: (r) => h('span', { class: fmt.tone(r.statistics && r.statistics.net_profit) }, fmt.signed(r.statistics && r.statistics.net_profit)) },
                { label: 'Qualified', value: (r) => (r.qualified ? 'yes' : 'too few trades') },
              ], (o.results || []).slice(0, 10)));
          } catch (err) {
            if (err.name === 'AbortError') return;
            clear(out).append(errorBox(err));
          } finally { btn.disabled = false; }
        } }, rows.map((r) => r.el), h('div', { class: 'row' }, objective, constraints), h('div', { class: 'form-actions' }, btn)), out);
      },
    });
  }
}
