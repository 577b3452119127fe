// Trading: candle chart of the stored candles (with the selected position's entry / SL / TP), the order ticket
// (position-size calculator, risk preview, one order per intent), live positions and account over the dashboard
// socket, per-position close / modify SL-TP / trailing stop + breakeven, and the history with cursor pagination.
//
// REST for the first paint (`trading/positions`, `trading/dashboard/stats`, `brokers/connections`), then the socket:
// ORDER_UPDATE / TRADE_RESULT / POSITION_UPDATE / ACCOUNT_UPDATE / CONNECTIONS_STATUS / MT5_STATUS_UPDATE /
// CONNECTOR_DISCONNECTED; `socket.onResync` refetches what a dropped link may have missed.
import { api, ApiError, idempotencyKey } from '../lib/api.js';
import { h, panel, toast, fmt, field, countdown, table, loadCss, errorText } from '../lib/ui.js';
import { candleChart } from '../lib/candles.js';

const SYMBOLS = ['EURUSD', 'GBPUSD', 'USDJPY', 'XAUUSD', 'AUDUSD', 'USDCAD', 'USDCHF', 'NZDUSD', 'EURJPY', 'GBPJPY', 'EURGBP', 'XAGUSD', 'BTCUSD'];
const TIMEFRAMES = [['M1', 60], ['M5', 300], ['M15', 900], ['M30', 1800], ['H1', 3600], ['H4', 14400], ['D1', 86400], ['W1', 604800]];
const LIVE = new Set(['pending', 'open', 'unknown', 'close_pending', 'modify_pending', 'external']);
const CAN_ACT = new Set(['open', 'external']);
const HISTORY_PAGE = 20;

const digitsOf = (sym) => (/JPY$/.test(sym) ? 3 : /^XA[UG]|BTC|^US|^GER|^UK|^NAS|^SPX|^JP/.test(sym) ? 2 : 5);
const num = (v) => (v === null || v === undefined || v === '' ? NaN : Number(v));
const present = (v) => Number.isFinite(num(v)) && num(v) > 0;

/** A form action that sends one request per user intent: the button disables while it is in flight, the intent's
 *  Idempotency-Key is reused when the same intent is retried after a transient failure (network, 409 still being
 *  processed, 429, 5xx), a 429 counts its Retry-After down on the button, errors show in `errorEl`. After a success
 *  the button stays disabled for SETTLE_MS ("Sent ✓"): the second click of a double click that lands after a fast
 *  answer is not a new order. */
const SETTLE_MS = 700;

function guarded(button, errorEl, label) {
  let intent = null;
  let busy = false;
  let cooling = null;
  let settling = null;
  const idle = () => { button.textContent = typeof label === 'function' ? label() : label; };
  idle();
  // `payload`: what the first attempt of an intent sent; a retry sends exactly that again (same key, same body).
  const run = async (fingerprint, send, payload) => {
    if (busy || cooling || settling) return undefined;
    if (!intent || intent.fp !== fingerprint) intent = { fp: fingerprint, key: idempotencyKey(), payload };
    busy = true;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    button.textContent = 'Sending…';
    errorEl.replaceChildren();
    try {
      const out = await send(intent.key, intent.payload);
      intent = null;
      settling = setTimeout(() => { settling = null; button.disabled = false; idle(); }, SETTLE_MS);
      button.textContent = 'Sent ✓';
      return out;
    } catch (e) {
      // Keep the key when the first attempt may still land: no answer, throttled, server trouble, or the same key
      // still being processed (409 "still being processed"); any other answer is final and the next try a new intent.
      const transient = e instanceof ApiError && (e.status === 0 || e.status === 429 || e.status >= 500
        || (e.status === 409 && /still being processed/i.test(e.message)));
      if (!transient) intent = null;
      errorEl.replaceChildren(h('p', null, errorText(e)));
      if (e instanceof ApiError && e.status === 429) {
        cooling = countdown(button, e.retryAfter || 1, (left) => (left > 0 ? `Retry in ${left} s` : 'Retry'), () => {
          cooling = null;
          button.disabled = false;
          idle();
        });
      }
      return undefined;
    } finally {
      busy = false;
      button.removeAttribute('aria-busy');
      if (!cooling && !settling) { button.disabled = false; idle(); }
    }
  };
  run.relabel = () => { if (!busy && !cooling) idle(); };
  run.dispose = () => { if (cooling) cooling(); };
  return run;
}

/** A modal <dialog> with a form; `build(form, errorEl, close)` fills it. Esc / Cancel close it. */
function openDialog(title, build) {
  const id = 'dlg-' + Math.random().toString(36).slice(2);
  const errorEl = h('div', { class: 'form-error', role: 'alert' });
  const form = h('form', { class: 'dialog-form', novalidate: true });
  const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': id }, h('h2', { id }, title), form);
  document.body.append(dlg);
  dlg.addEventListener('close', () => dlg.remove());
  const close = () => { if (dlg.open) dlg.close(); };
  build(form, errorEl, close);
  dlg.showModal();
  return dlg;
}

function input(form, name) { return form.querySelector(`[name="${name}"]`); }

export default async function mount(root, ctx) {
  await loadCss('/app/pages/trading.css');
  const { socket, params, onCleanup } = ctx;
  const st = {
    symbol: (params.get('symbol') || 'EURUSD').toUpperCase(),
    timeframe: (params.get('tf') || 'H1').toUpperCase(),
    positions: new Map(),
    account: {},
    links: new Map(),
    quotes: new Map(),
    selected: null,
    lastClose: null,
    datasets: [],
  };

  // ------------------------------------------------------------------ connector status line
  const linkLine = h('p', { class: 'trade-link', id: 'trade-link', role: 'status', 'aria-live': 'polite' });
  const paintLink = () => {
    const online = [...st.links.values()];
    linkLine.dataset.state = online.length ? 'online' : 'offline';
    if (!online.length) {
      linkLine.replaceChildren(h('span', { class: 'badge badge-warn' }, 'No connector online'), ' Orders need a running connector — ',
        h('a', { href: '#/connections' }, 'see Connections'), '.');
      return;
    }
    linkLine.replaceChildren(...online.flatMap((c) => [
      h('span', { class: 'badge ' + (c.mt5_connected === false ? 'badge-warn' : 'badge-ok') }, c.mt5_connected === false ? 'Connector online, MT5 down' : 'Connector online'),
      ` ${c.broker_name || 'MT5'} ${c.account_number || ''}${c.server ? ' @ ' + c.server : ''}`]));
  };
  paintLink();

  // ------------------------------------------------------------------ chart
  const symSel = h('select', { id: 'chart-symbol', 'aria-label': 'Symbol' });
  const tfSel = h('select', { id: 'chart-tf', 'aria-label': 'Timeframe' }, TIMEFRAMES.map(([t]) => h('option', { value: t, selected: t === st.timeframe }, t)));
  const paintSymbols = () => {
    const have = new Map();
    for (const d of st.datasets) have.set(d.symbol, [...(have.get(d.symbol) || []), d.timeframe]);
    const all = [...new Set([...have.keys(), ...SYMBOLS, ...[...st.positions.values()].map((p) => p.symbol), st.symbol])];
    symSel.replaceChildren(...all.map((sym) => h('option', { value: sym, selected: sym === st.symbol },
      have.has(sym) ? `${sym} (${have.get(sym).join(', ')})` : sym)));
  };
  let chart = null;
  const chartLines = () => {
    const p = st.selected && st.positions.get(st.selected);
    if (!p || p.symbol !== st.symbol) return [];
    const trailing = p.trailing_stop && p.trailing_stop.enabled;
    return [
      { price: p.open_price, label: 'Entry', kind: 'entry' },
      { price: p.stop_loss, label: trailing ? 'SL trail' : 'SL', kind: trailing ? 'trail' : 'sl' },
      { price: p.take_profit, label: 'TP', kind: 'tp' },
    ].filter((l) => present(l.price));
  };
  const chartPanel = panel({
    title: 'Chart', id: 'chart-panel', class: 'chart-panel',
    actions: [h('label', { class: 'inline' }, h('span', { class: 'sr-only' }, 'Symbol'), symSel), h('label', { class: 'inline' }, h('span', { class: 'sr-only' }, 'Timeframe'), tfSel)],
    load: async (signal) => {
      st.datasets = await api('/api/v1/ml/datasets', { signal }).catch(() => []);
      paintSymbols();
      try {
        return await api(`/api/v1/ml/datasets/${encodeURIComponent(st.symbol)}/${st.timeframe}/candles`, { query: { limit: 300 }, signal });
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) return null;
        throw e;
      }
    },
    render: (data, body) => {
      if (chart) chart.dispose();
      chart = null;
      if (!data || !data.candles || !data.candles.length) { renderNoData(body); return undefined; }
      st.lastClose = data.candles[data.candles.length - 1].close;
      chart = candleChart({ candles: data.candles, lines: chartLines(), digits: digitsOf(st.symbol), height: 320,
        title: `${st.symbol} ${st.timeframe} · ${data.candles.length} bars${data.source ? ' · ' + data.source : ''}` });
      body.append(chart);
      if (data.source === 'generated') body.append(h('p', { class: 'hint' }, 'Generated candles: not market data.'));
      prefillPrice();
      return () => { if (chart) chart.dispose(); };
    },
  });
  const renderNoData = (body) => {
    const status = h('p', { role: 'status', class: 'import-status' });
    const btn = h('button', { class: 'btn btn-primary', type: 'button', id: 'import-candles' }, `Import ${st.symbol} ${st.timeframe} from my connector`);
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      status.textContent = 'Asking the connector for its history…';
      const tf = TIMEFRAMES.find(([t]) => t === st.timeframe)[1];
      const end = new Date(Math.floor(Date.now() / 60000) * 60000);
      const start = new Date(end.getTime() - 600 * tf * 1000);
      try {
        let imp = await api('/api/v1/ml/datasets/from-connector', { method: 'POST', body: { symbol: st.symbol, timeframe: st.timeframe, start: start.toISOString(), end: end.toISOString() } });
        while (imp.status === 'running') {
          status.textContent = `Importing… page ${imp.pages_done ?? 0} of ${imp.pages ?? '?'}, ${imp.bars_received ?? 0} bars.`;
          await new Promise((r) => setTimeout(r, 1000));
          if (ctx.signal.aborted) return;
          imp = await api(`/api/v1/ml/datasets/imports/${imp.id}`);
        }
        if (imp.status === 'failed') throw new Error(imp.error || 'The import failed.');
        toast(`Imported ${imp.bars_added ?? 0} bars of ${st.symbol} ${st.timeframe}.`, 'ok');
        chartPanel.reload();
      } catch (e) {
        status.textContent = errorText(e);
        btn.disabled = false;
      }
    });
    body.append(h('div', { class: 'notice no-candles' },
      h('p', null, h('strong', null, `No stored ${st.symbol} ${st.timeframe} candles yet.`), ' The chart draws your own candle dataset. Get one by:'),
      h('ul', null,
        h('li', null, 'importing the history from your running connector (', h('code', null, 'POST /api/v1/ml/datasets/from-connector'), '), or'),
        h('li', null, 'uploading a CSV (', h('code', null, `POST /api/v1/ml/datasets?symbol=${st.symbol}&timeframe=${st.timeframe}`), ', header ', h('code', null, 'time,open,high,low,close,volume'), ').')),
      btn, status));
  };
  symSel.addEventListener('change', () => { st.symbol = symSel.value; ticketSymbol.textContent = st.symbol; priceEdited = false; input(ticket, 'price').value = ''; chartPanel.reload(); preview(); ticketRun.relabel(); });
  tfSel.addEventListener('change', () => { st.timeframe = tfSel.value; chartPanel.reload(); });
  const redrawLines = () => { if (chart) chart.update({ lines: chartLines() }); };

  // ------------------------------------------------------------------ order ticket
  const ticketSymbol = h('strong', { id: 'ticket-symbol' }, st.symbol);
  const ticketError = h('div', { class: 'form-error', id: 'ticket-error', role: 'alert' });
  const previewEl = h('div', { class: 'risk-preview', id: 'risk-preview', 'aria-live': 'polite' });
  const submitBtn = h('button', { class: 'btn btn-buy', type: 'submit', id: 'ticket-submit' });
  const sideBox = h('fieldset', { class: 'side' }, h('legend', null, 'Side'),
    ['BUY', 'SELL'].map((sd) => h('label', { class: 'side-opt side-' + sd.toLowerCase() },
      h('input', { type: 'radio', name: 'side', value: sd, checked: sd === 'BUY' }), sd === 'BUY' ? 'Buy' : 'Sell')));
  const sizeBtn = h('button', { class: 'btn btn-small', type: 'button', id: 'ticket-size' }, 'Size from risk');
  const ticket = h('form', { class: 'ticket', id: 'ticket', novalidate: true },
    h('p', { class: 'ticket-sym' }, 'Market order · ', ticketSymbol),
    sideBox,
    h('div', { class: 'row' },
      field({ label: 'Lots', name: 'lots', type: 'number', value: '0.10', min: '0.01', max: '10', step: '0.01', required: true, inputmode: 'decimal' }),
      field({ label: 'Reference price', name: 'price', type: 'number', step: 'any', min: '0', inputmode: 'decimal', 'aria-describedby': 'price-hint' })),
    h('small', { class: 'hint', id: 'price-hint' }, 'Fills at the market; the reference price bounds slippage and places SL/TP.'),
    h('div', { class: 'row' },
      field({ label: 'Stop loss', name: 'sl', type: 'number', step: 'any', min: '0', inputmode: 'decimal' }),
      field({ label: 'Take profit', name: 'tp', type: 'number', step: 'any', min: '0', inputmode: 'decimal' })),
    h('div', { class: 'row' },
      field({ label: 'Risk % of balance', name: 'risk', type: 'number', value: '1', min: '0.01', max: '100', step: '0.01', inputmode: 'decimal' }),
      h('div', { class: 'size-btn' }, sizeBtn)),
    previewEl, ticketError, submitBtn);
  const side = () => ticket.querySelector('input[name="side"]:checked').value;
  const ticketRun = guarded(submitBtn, ticketError, () => `${side() === 'BUY' ? 'Buy' : 'Sell'} ${input(ticket, 'lots').value || '?'} ${st.symbol}`);
  onCleanup(() => ticketRun.dispose());
  let priceEdited = false;
  const prefillPrice = () => {
    const el = input(ticket, 'price');
    if (priceEdited && el.value) return;
    const q = st.quotes.get(st.symbol);
    const p = q ?? st.lastClose;
    if (present(p)) { el.value = String(+(+p).toFixed(digitsOf(st.symbol))); preview(); }
  };
  input(ticket, 'price').addEventListener('input', () => { priceEdited = true; });
  const balance = () => num(st.account.balance);
  let calcSeq = 0;
  let calcTimer = null;
  const sizing = async (risk) => {
    const body = { symbol: st.symbol, account_balance: present(balance()) ? balance() : 10000, risk_percent: risk,
      entry_price: num(input(ticket, 'price').value), stop_loss: num(input(ticket, 'sl').value) };
    if (st.account.currency) body.account_currency = st.account.currency;
    return api('/api/v1/trading/position-size/calculate', { method: 'POST', body });
  };
  async function preview() {
    const mine = ++calcSeq;
    const price = num(input(ticket, 'price').value);
    const sl = num(input(ticket, 'sl').value);
    const tp = num(input(ticket, 'tp').value);
    const lots = num(input(ticket, 'lots').value);
    const parts = [];
    const rr = present(sl) && present(tp) && present(price) && price !== sl ? Math.abs(tp - price) / Math.abs(price - sl) : NaN;
    if (!present(sl) || !present(price)) {
      previewEl.replaceChildren(h('p', { class: 'muted' }, present(price) ? 'No stop loss: the money at risk is not bounded.' : 'Enter a reference price and a stop loss to see the risk.'));
      return;
    }
    try {
      const r = await sizing(num(input(ticket, 'risk').value) > 0 ? num(input(ticket, 'risk').value) : 1);
      if (mine !== calcSeq) return;
      const perLot = num(r.pip_value_per_lot) * num(r.stop_loss_pips);
      const money = Number.isFinite(perLot) && Number.isFinite(lots) ? perLot * lots : NaN;
      const cur = r.account_currency || st.account.currency || 'USD';
      parts.push(h('div', null, h('dt', null, 'At risk'), h('dd', { id: 'risk-money' }, fmt.money(money, cur))));
      parts.push(h('div', null, h('dt', null, 'Of balance'), h('dd', { id: 'risk-pct' }, present(balance()) ? fmt.pct(money / balance(), 2) : '—')));
      parts.push(h('div', null, h('dt', null, 'Stop'), h('dd', null, `${fmt.num(r.stop_loss_pips, 1)} pips`)));
      parts.push(h('div', null, h('dt', null, 'R:R'), h('dd', { id: 'risk-rr' }, Number.isFinite(rr) ? `1 : ${fmt.num(rr, 2)}` : '—')));
      previewEl.replaceChildren(h('dl', { class: 'risk' }, parts));
    } catch (e) {
      if (mine !== calcSeq) return;
      previewEl.replaceChildren(h('p', { class: 'muted' }, errorText(e)));
    }
  }
  const schedulePreview = () => { clearTimeout(calcTimer); calcTimer = setTimeout(preview, 250); ticketRun.relabel(); };
  ticket.addEventListener('input', schedulePreview);
  ticket.addEventListener('change', () => {
    submitBtn.className = 'btn ' + (side() === 'BUY' ? 'btn-buy' : 'btn-sell');
    schedulePreview();
  });
  onCleanup(() => clearTimeout(calcTimer));
  sizeBtn.addEventListener('click', async () => {
    ticketError.replaceChildren();
    sizeBtn.disabled = true;
    try {
      const r = await sizing(num(input(ticket, 'risk').value));
      input(ticket, 'lots').value = String(r.lot_size);
      if (r.capped) toast('Size capped at the instrument maximum.', 'info');
      ticketRun.relabel();
      preview();
    } catch (e) {
      ticketError.replaceChildren(h('p', null, errorText(e)));
    } finally { sizeBtn.disabled = false; }
  });
  ticket.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const body = { symbol: st.symbol, order_type: side(), lot_size: num(input(ticket, 'lots').value),
      price: present(input(ticket, 'price').value) ? num(input(ticket, 'price').value) : 1.0 };
    if (!(body.lot_size > 0)) { ticketError.replaceChildren(h('p', null, 'Lots: enter a size above 0.')); input(ticket, 'lots').focus(); return; }
    if (present(input(ticket, 'sl').value)) body.stop_loss = num(input(ticket, 'sl').value);
    if (present(input(ticket, 'tp').value)) body.take_profit = num(input(ticket, 'tp').value);
    // The intent is the trade; the connector it goes to is fixed by its first attempt (a retry resends that body).
    const fingerprint = JSON.stringify(body);
    const online = [...st.links.values()];
    if (online.length === 1) body.connection_id = online[0].connection_id;
    ticketRun(fingerprint, (key, sent) => api('/api/v1/trading/orders', { method: 'POST', body: sent, idempotencyKey: key }), body).then((r) => {
      if (!r) return;
      upsert(r.trade);
      st.selected = r.trade.id;
      paintPositions();
      redrawLines();
      toast(r.mt5_execution && r.mt5_execution.success === false
        ? 'Order sent; delivery to MT5 is uncertain — it will be reconciled.'
        : `${r.trade.trade_type} ${r.trade.lot_size} ${r.trade.symbol} sent.`, r.mt5_execution && r.mt5_execution.success === false ? 'info' : 'ok');
    });
  });
  const ticketPanel = panel({ title: 'Order ticket', id: 'ticket-panel', render: (_, body) => { body.append(ticket); prefillPrice(); preview(); } });

  // ------------------------------------------------------------------ account
  const accountBody = h('dl', { class: 'stats', id: 'account-stats' });
  const paintAccount = () => {
    const a = st.account;
    const cur = a.currency || 'USD';
    const item = (label, v, cls, id) => h('div', { class: 'stat' }, h('dt', null, label), h('dd', { class: cls || '', id }, v));
    accountBody.replaceChildren(
      item('Balance', fmt.money(a.balance, cur), '', 'acct-balance'),
      item('Equity', fmt.money(a.equity, cur), '', 'acct-equity'),
      item('Floating P/L', fmt.money(a.profit, cur), fmt.tone(a.profit), 'acct-profit'),
      item('Free margin', fmt.money(a.free_margin, cur), '', 'acct-free'));
  };
  const accountPanel = panel({
    title: 'Account', id: 'account-panel',
    load: async (signal) => {
      const [stats, conns] = await Promise.all([
        api('/api/v1/trading/dashboard/stats', { signal }),
        api('/api/v1/brokers/connections', { signal }),
      ]);
      return { stats, conns };
    },
    render: ({ stats, conns }, body) => {
      st.account = { ...st.account, balance: st.account.balance ?? stats.balance, equity: st.account.equity ?? stats.equity, profit: st.account.profit ?? stats.unrealized_pnl };
      for (const c of conns) if (c.is_active && !st.links.has(c.id)) st.links.set(c.id, { connection_id: c.id, broker_name: c.broker_name, account_number: c.account_number, server: c.server });
      paintLink();
      paintAccount();
      body.append(linkLine, accountBody);
      preview();
    },
  });

  // ------------------------------------------------------------------ positions
  const upsert = (t) => {
    if (!t || !t.id) return;
    const old = st.positions.get(t.id);
    if (old && old.updated_at && t.updated_at && Date.parse(t.updated_at) < Date.parse(old.updated_at)) return;
    if (!LIVE.has(t.status)) { st.positions.delete(t.id); return; }
    st.positions.set(t.id, { ...(old || {}), ...t, trailing_stop: t.trailing_stop !== undefined ? t.trailing_stop : old && old.trailing_stop });
  };
  const posBody = h('div', { id: 'positions' });
  const paintPositions = () => {
    const rows = [...st.positions.values()].sort((a, b) => (a.id < b.id ? 1 : -1));
    if (!rows.length) { posBody.replaceChildren(h('p', { class: 'empty' }, 'No open positions.')); return; }
    const act = (p, label, cls, fn, dis) => h('button', { class: 'btn btn-small ' + cls, type: 'button', onclick: () => fn(p), disabled: dis, 'aria-label': `${label} ${p.trade_type} ${p.lot_size} ${p.symbol}` }, label);
    posBody.replaceChildren(table([
      { label: 'Symbol', value: (p) => h('button', { class: 'linkish', type: 'button', onclick: () => selectPosition(p), 'aria-pressed': String(st.selected === p.id) }, p.symbol) },
      { label: 'Side', value: (p) => h('span', { class: p.trade_type === 'BUY' ? 'pos' : 'neg' }, p.trade_type) },
      { label: 'Lots', align: 'right', value: (p) => fmt.num(p.lot_size, 2) },
      { label: 'Open', align: 'right', value: (p) => fmt.price(p.open_price, digitsOf(p.symbol)) },
      { label: 'Current', align: 'right', value: (p) => fmt.price(p.current_price, digitsOf(p.symbol)) },
      { label: 'SL', align: 'right', class: () => 'col-sl', value: (p) => (present(p.stop_loss) ? fmt.price(p.stop_loss, digitsOf(p.symbol)) : '—') },
      { label: 'TP', align: 'right', class: () => 'col-tp', value: (p) => (present(p.take_profit) ? fmt.price(p.take_profit, digitsOf(p.symbol)) : '—') },
      { label: 'P/L', align: 'right', class: (p) => fmt.tone(p.profit), value: (p) => fmt.signed(p.profit) },
      { label: 'Status', value: (p) => h('span', { class: 'status' }, h('span', { class: 'badge ' + (p.status === 'open' || p.status === 'external' ? 'badge-ok' : 'badge-warn') }, p.status.replace('_', ' ')),
        p.trailing_stop && (p.trailing_stop.enabled || p.trailing_stop.breakeven_enabled) ? h('span', { class: 'badge trail-badge' }, p.trailing_stop.enabled ? 'trailing' : 'breakeven') : null) },
      { label: 'Actions', value: (p) => h('div', { class: 'acts' },
        act(p, 'Modify', 'act-modify', modifyDialog, !CAN_ACT.has(p.status)),
        act(p, 'Trailing', 'act-trailing', trailingDialog, !CAN_ACT.has(p.status)),
        act(p, 'Close', 'btn-danger act-close', closeDialog, !CAN_ACT.has(p.status))) },
    ], rows, { caption: 'Open positions, live', rowAttrs: (p) => ({ 'data-id': p.id, 'data-status': p.status, 'data-symbol': p.symbol, class: st.selected === p.id ? 'selected' : '' }) }));
  };
  const positionsPanel = panel({
    title: 'Positions', id: 'positions-panel',
    load: (signal) => api('/api/v1/trading/positions', { query: { limit: 200 }, signal }),
    render: (list, body) => {
      st.positions.clear();
      for (const p of list || []) upsert(p);
      if (!st.selected || !st.positions.has(st.selected)) {
        const first = [...st.positions.values()].find((p) => p.symbol === st.symbol) || null;
        st.selected = first && first.id;
      }
      paintPositions();
      paintSymbols();
      redrawLines();
      body.append(posBody);
    },
  });
  const selectPosition = (p) => {
    st.selected = p.id;
    if (p.symbol !== st.symbol) {
      st.symbol = p.symbol;
      ticketSymbol.textContent = p.symbol;
      paintSymbols();
      chartPanel.reload();
    } else redrawLines();
    paintPositions();
  };

  const positionAction = (p, title, buildFields, send, done) => openDialog(title, (form, errorEl, close) => {
    const btn = h('button', { class: 'btn btn-primary', type: 'submit' });
    const run = guarded(btn, errorEl, title);
    const collect = buildFields(form);
    form.append(errorEl, h('div', { class: 'row dialog-actions' }, h('button', { class: 'btn', type: 'button', onclick: close }, 'Cancel'), btn));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const body = collect();
      if (body instanceof Error) { errorEl.replaceChildren(h('p', null, body.message)); return; }
      const r = await run(JSON.stringify(body), (key) => send(body, key));
      if (r) { done(r); close(); }
    });
  });

  function modifyDialog(p) {
    const d = digitsOf(p.symbol);
    positionAction(p, `Modify ${p.trade_type} ${p.lot_size} ${p.symbol}`, (form) => {
      form.append(h('div', { class: 'row' },
        field({ label: 'Stop loss', name: 'm_sl', type: 'number', step: 'any', min: '0', value: present(p.stop_loss) ? (+p.stop_loss).toFixed(d) : '' }),
        field({ label: 'Take profit', name: 'm_tp', type: 'number', step: 'any', min: '0', value: present(p.take_profit) ? (+p.take_profit).toFixed(d) : '' })),
      h('p', { class: 'hint' }, 'Both must be on the protective side of the current price. An empty field keeps its value.'));
      return () => {
        const body = {};
        if (present(input(form, 'm_sl').value)) body.stop_loss = num(input(form, 'm_sl').value);
        if (present(input(form, 'm_tp').value)) body.take_profit = num(input(form, 'm_tp').value);
        return Object.keys(body).length ? body : new Error('Enter a stop loss or a take profit.');
      };
    }, (body, key) => api(`/api/v1/trading/orders/${p.id}/modify`, { method: 'PUT', body, idempotencyKey: key }),
    (r) => { upsert(r.trade); paintPositions(); redrawLines(); toast('Modification sent to MT5.', 'ok'); });
  }

  function trailingDialog(p) {
    const t = p.trailing_stop || {};
    positionAction(p, `Trailing stop · ${p.trade_type} ${p.lot_size} ${p.symbol}`, (form) => {
      const type = t.trailing_type || t.type || 'fixed_pips';
      form.append(
        h('fieldset', null, h('legend', null, 'Trailing stop'),
          field({ label: 'Trail the stop', name: 't_enabled', type: 'checkbox', value: !!t.enabled }),
          field({ label: 'Distance by', name: 't_type', type: 'select', value: type, options: [['fixed_pips', 'Fixed pips'], ['atr_based', 'ATR multiple'], ['percentage', 'Percent of price']] }),
          h('div', { class: 'row' },
            field({ label: 'Activate after (pips)', name: 't_activation', type: 'number', min: '0', step: 'any', value: t.activation_pips ?? 20 }),
            field({ label: 'Distance (pips)', name: 't_distance', type: 'number', min: '0', step: 'any', value: t.trail_distance_pips ?? 15 })),
          h('div', { class: 'row' },
            field({ label: 'ATR multiplier', name: 't_atr', type: 'number', min: '0', step: 'any', value: t.atr_multiplier ?? 2 }),
            field({ label: 'Percent', name: 't_pct', type: 'number', min: '0', max: '100', step: 'any', value: t.percentage ?? 0.5 }))),
        h('fieldset', null, h('legend', null, 'Breakeven'),
          field({ label: 'Move the stop to breakeven', name: 'b_enabled', type: 'checkbox', value: !!t.breakeven_enabled }),
          h('div', { class: 'row' },
            field({ label: 'After (pips)', name: 'b_pips', type: 'number', min: '0', step: 'any', value: t.breakeven_pips ?? 20 }),
            field({ label: 'Lock profit (pips)', name: 'b_lock', type: 'number', min: '0', step: 'any', value: t.lock_profit_pips ?? 2 }))),
        h('p', { class: 'hint' }, 'The platform moves the stop on each price report, only in the protective direction, at most every 15 s. Untick both to remove the settings.'));
      return () => {
        const n = (name) => { const v = num(input(form, name).value); return Number.isFinite(v) ? v : null; };
        return {
          enabled: input(form, 't_enabled').checked, trailing_type: input(form, 't_type').value,
          activation_pips: n('t_activation'), trail_distance_pips: n('t_distance'), atr_multiplier: n('t_atr'), percentage: n('t_pct'),
          breakeven_enabled: input(form, 'b_enabled').checked, breakeven_pips: n('b_pips'), lock_profit_pips: n('b_lock'),
        };
      };
    }, (body, key) => api(`/api/v1/trading/positions/${p.id}/trailing-stop`, { method: 'PUT', body, idempotencyKey: key }),
    (r) => { upsert(r); paintPositions(); redrawLines(); toast(r.trailing_stop ? 'Trailing settings saved.' : 'Trailing settings removed.', 'ok'); });
  }

  function closeDialog(p) {
    positionAction(p, `Close ${p.trade_type} ${p.lot_size} ${p.symbol}`, (form) => {
      form.append(h('p', null, `Close this position at the market price? P/L now: ${fmt.signed(p.profit)}.`));
      return () => ({ close: p.id });
    }, (_, key) => api(`/api/v1/trading/orders/${p.id}/close`, { method: 'PUT', idempotencyKey: key }),
    (r) => { upsert(r.trade); paintPositions(); toast('Close sent to MT5.', 'ok'); });
  }

  // ------------------------------------------------------------------ history
  let cursors = [null];
  let page = 0;
  const historyPanel = panel({
    title: 'History', id: 'history-panel',
    load: (signal) => api('/api/v1/trading/history', { query: { limit: HISTORY_PAGE, cursor: cursors[page] }, raw: true, signal }),
    render: ({ data, headers }, body) => {
      const next = headers.get('X-Next-Cursor');
      cursors[page + 1] = next || undefined;
      const rows = data || [];
      if (!rows.length && page === 0) { body.append(h('p', { class: 'empty' }, 'No orders yet.')); return; }
      body.append(table([
        { label: 'Opened', value: (t) => fmt.date(t.open_time || t.created_at) },
        { label: 'Symbol', value: (t) => t.symbol },
        { label: 'Side', value: (t) => t.trade_type },
        { label: 'Lots', align: 'right', value: (t) => fmt.num(t.lot_size, 2) },
        { label: 'Open', align: 'right', value: (t) => fmt.price(t.open_price, digitsOf(t.symbol)) },
        { label: 'Close', align: 'right', value: (t) => (t.close_price === null || t.close_price === undefined ? '—' : fmt.price(t.close_price, digitsOf(t.symbol))) },
        { label: 'P/L', align: 'right', class: (t) => fmt.tone(t.profit), value: (t) => (t.profit === null || t.profit === undefined ? '—' : fmt.signed(t.profit)) },
        { label: 'Status', value: (t) => h('span', null, t.status.replace('_', ' '),
          t.close_unconfirmed ? h('span', { class: 'badge badge-warn unconfirmed', title: 'Closed in MT5 at the last known price; the closing deal is not confirmed yet' }, ' close unconfirmed') : null,
          t.error ? h('span', { class: 'hint' }, ' ' + t.error) : null) },
      ], rows, { caption: `Orders, newest first — page ${page + 1}`, rowAttrs: (t) => ({ 'data-id': t.id, 'data-status': t.status }) }),
      h('nav', { class: 'pager', 'aria-label': 'History pages' },
        h('button', { class: 'btn btn-small', type: 'button', id: 'history-prev', disabled: page === 0, onclick: () => { page -= 1; historyPanel.reload(); } }, '← Newer'),
        h('button', { class: 'btn btn-small', type: 'button', id: 'history-next', disabled: !next, onclick: () => { page += 1; historyPanel.reload(); } }, 'Older →')));
      return undefined;
    },
  });
  const refreshHistory = () => { if (page === 0) { cursors = [null]; historyPanel.reload(); } };

  // ------------------------------------------------------------------ layout
  root.append(
    h('h1', null, 'Trading'),
    h('div', { class: 'trade-grid' }, chartPanel, h('div', { class: 'trade-side' }, ticketPanel, accountPanel)),
    positionsPanel, historyPanel);

  // ------------------------------------------------------------------ live updates
  let refetchTimer = null;
  const refetchSoon = (ms = 300) => { clearTimeout(refetchTimer); refetchTimer = setTimeout(() => positionsPanel.reload(), ms); };
  let historyTimer = null;
  const historySoon = () => { clearTimeout(historyTimer); historyTimer = setTimeout(refreshHistory, 400); };
  onCleanup(() => { clearTimeout(refetchTimer); clearTimeout(historyTimer); });
  let paintPending = false;
  const paintSoon = () => { if (paintPending) return; paintPending = true; requestAnimationFrame(() => { paintPending = false; paintPositions(); }); };
  const subs = [
    socket.on('ORDER_UPDATE', (m) => {
      if (!m.order) return;
      upsert(m.order);
      paintSoon();
      redrawLines();
      historySoon();
    }),
    socket.on('TRADE_RESULT', (m) => {
      if (m.success === false) toast(`MT5 refused the command: ${m.error || 'retcode ' + (m.retcode ?? '?')}`, 'err', 8000);
      refetchSoon();
    }),
    socket.on('POSITION_UPDATE', (m) => {
      const list = Array.isArray(m.positions) ? m.positions : Array.isArray(m.data) ? m.data : [];
      let changed = false;
      for (const q of list) {
        const price = num(q.price_current ?? q.current_price);
        const sym = String(q.symbol || '').toUpperCase().replace(/[^A-Z0-9].*$/, '');
        if (sym && present(price)) st.quotes.set(sym, price);
        for (const p of st.positions.values()) {
          if (p.ticket !== null && p.ticket !== undefined && String(p.ticket) === String(q.ticket)) {
            if (present(price)) p.current_price = price;
            if (Number.isFinite(num(q.profit))) p.profit = num(q.profit);
            const sl = num(q.sl ?? q.stop_loss);
            if (Number.isFinite(sl)) p.stop_loss = sl > 0 ? sl : null;
            changed = true;
          }
        }
      }
      if (!priceEdited) prefillPrice();
      if (changed) { paintSoon(); redrawLines(); }
    }),
    socket.on('ACCOUNT_UPDATE', (m) => {
      st.account = { ...st.account, ...Object.fromEntries(['balance', 'equity', 'margin', 'free_margin', 'profit', 'currency', 'leverage'].filter((k) => m[k] !== undefined).map((k) => [k, m[k]])) };
      paintAccount();
    }),
    socket.on('CONNECTIONS_STATUS', (m) => {
      st.links = new Map((m.connections || []).map((c) => [c.connection_id, c]));
      paintLink();
    }),
    socket.on('MT5_STATUS_UPDATE', (m) => {
      const c = st.links.get(m.connection_id);
      if (c) { c.mt5_connected = m.connected; paintLink(); } else socket.send({ type: 'GET_CONNECTIONS_STATUS' });
    }),
    socket.on('CONNECTOR_DISCONNECTED', (m) => { st.links.delete(m.connection_id); paintLink(); }),
    socket.onResync(() => {
      socket.send({ type: 'GET_CONNECTIONS_STATUS' });
      positionsPanel.reload();
      accountPanel.reload();
      refreshHistory();
    }),
  ];
  onCleanup(() => subs.forEach((off) => off()));
  // The greeting went out when the socket connected, maybe before this page: ask again.
  socket.send({ type: 'GET_CONNECTIONS_STATUS' });
}
