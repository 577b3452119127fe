// Overview: the numbers a trader looks at first. Four panels, each its own error boundary:
//   stats   — balance, equity, P/L (total, today, floating), win rate, trades (`GET trading/dashboard/stats`)
//   account — who is signed in, e-mail verification (with "send the link again"), 2FA (`GET users/me`)
//   equity  — the equity curve from the closed trades (`GET trading/history`, newest first, paged by cursor),
//             ending at today's balance (lineChart of lib/chart.js)
//   bots    — active models with today's last signal (`GET ml/dashboard/active-bots`)
// Refreshes after a socket reconnect (what may have been missed) and when a trade result arrives.
import { h, panel, fmt, table, loadCss, errorText, toast } from '../lib/ui.js';
import { lineChart } from '../lib/chart.js';

const HISTORY_PAGE = 200;
const HISTORY_MAX = 1000;

export default async function mount(root, ctx) {
  await loadCss('/app/pages/overview.css');
  const { api, socket, onCleanup } = ctx;

  const stats = panel({
    id: 'overview-stats', title: 'Account', class: 'overview-stats',
    load: (signal) => api('/api/v1/trading/dashboard/stats', { signal }),
    render: (s, body) => {
      const stat = (id, label, value, tone) => h('div', { class: 'stat', id }, h('dt', null, label), h('dd', { class: tone || '' }, value));
      body.append(
        h('dl', { class: 'stats' },
          stat('stat-balance', 'Balance', fmt.money(s.balance)),
          stat('stat-equity', 'Equity', fmt.money(s.equity)),
          stat('stat-pnl', 'Total P/L', fmt.signed(s.total_pnl), fmt.tone(s.total_pnl)),
          stat('stat-today', 'Today', fmt.signed(s.today_pnl), fmt.tone(s.today_pnl)),
          stat('stat-floating', 'Floating P/L', fmt.signed(s.unrealized_pnl), fmt.tone(s.unrealized_pnl)),
          stat('stat-winrate', 'Win rate', fmt.num(s.win_rate, 1) + ' %'),
          stat('stat-trades', 'Closed trades', String(s.total_trades ?? 0)),
          stat('stat-open', 'Open positions', String(s.open_positions ?? 0))),
        h('p', { class: 'muted overview-live' },
          s.has_live_connection
            ? h('span', { class: 'badge badge-ok' }, 'Live connection')
            : h('span', { class: 'badge badge-warn' }, 'No live connection'),
          ' ', s.has_live_connection ? 'Balance and equity come from your connector.' : h('a', { href: '#/connections' }, 'Connect MT5')));
    },
  });

  const account = panel({
    id: 'overview-account', title: 'Profile',
    load: (signal) => api('/api/v1/users/me', { signal }),
    render: (me, body) => {
      const resend = h('button', { class: 'btn btn-small', type: 'button', id: 'overview-resend' }, 'Send the link again');
      resend.addEventListener('click', async () => {
        resend.disabled = true;
        try { await api('/api/v1/auth/verify-email/resend', { method: 'POST' }); toast('Verification link sent.', 'ok'); } catch (err) { toast(errorText(err), 'err'); } finally { resend.disabled = false; }
      });
      body.append(...[
        h('p', { class: 'overview-name' }, h('strong', null, me.full_name || me.email), h('br'), h('span', { class: 'muted' }, me.email)),
        h('p', null,
          me.email_verified ? h('span', { class: 'badge badge-ok', id: 'overview-verified' }, 'E-mail verified') : h('span', { class: 'badge badge-warn', id: 'overview-unverified' }, 'E-mail not verified'),
          ' ', me.totp_enabled ? h('span', { class: 'badge badge-ok' }, '2FA on') : h('a', { href: '#/security' }, 'Turn on 2FA')),
        me.email_verified ? null : h('p', { class: 'warn' }, 'Confirm your address with the link we mailed you. ', resend),
        h('p', { class: 'muted' }, `Plan: ${me.subscription_tier || 'free'} · role: ${me.role || 'trader'}`)].filter(Boolean));
    },
  });

  const equity = panel({
    id: 'overview-equity', title: 'Equity curve', class: 'overview-equity',
    load: async (signal) => {
      const [s, trades] = await Promise.all([api('/api/v1/trading/dashboard/stats', { signal }), closedTrades(api, signal)]);
      return { s, trades };
    },
    render: ({ s, trades }, body) => {
      if (trades.length === 0) {
        body.append(h('p', { class: 'empty' }, 'No closed trades yet: the curve starts with your first closed trade.'));
        return;
      }
      const realised = trades.reduce((a, t) => a + Number(t.profit || 0), 0);
      let eq = Number(s.balance) - realised;
      const points = [[Date.parse(trades[0].open_time || trades[0].close_time), eq]];
      for (const t of trades) { eq += Number(t.profit || 0); points.push([Date.parse(t.close_time), eq]); }
      body.append(lineChart({ series: [{ name: 'Equity', points }], x: 'time', yFormat: (v) => fmt.num(v, 0), height: 220, title: 'Equity after each closed trade' }),
        h('p', { class: 'muted' }, `${trades.length} closed trade${trades.length === 1 ? '' : 's'}, realised ${fmt.signed(realised)}.`));
    },
  });

  const bots = panel({
    id: 'overview-bots', title: 'Active bots', actions: [h('a', { class: 'btn btn-small', href: '#/bots' }, 'Manage')],
    load: (signal) => api('/api/v1/ml/dashboard/active-bots', { signal }),
    render: (d, body) => {
      if (!d.bots || d.bots.length === 0) {
        body.append(h('p', { class: 'empty' }, 'No active bot. Train and activate a model on the Bots page.'));
        return;
      }
      body.append(table([
        { label: 'Bot', value: (b) => b.name },
        { label: 'Symbol', value: (b) => `${b.symbol} ${b.timeframe}` },
        { label: 'Accuracy', value: (b) => (b.accuracy == null ? '—' : fmt.pct(b.accuracy)), align: 'right' },
        { label: 'Last signal', value: (b) => (b.last_prediction ? `${b.last_prediction.direction} ${fmt.pct(b.last_prediction.confidence, 0)}` : '—') },
      ], d.bots, { caption: `${d.active_count} active, ${d.total_signals_today} signal${d.total_signals_today === 1 ? '' : 's'} today` }));
    },
  });

  root.append(h('h1', null, 'Overview'), h('div', { class: 'overview-grid' }, stats, account, equity, bots));

  const reload = () => { stats.reload(); equity.reload(); };
  onCleanup(socket.onResync(() => { reload(); bots.reload(); }));
  let t = null;
  onCleanup(socket.on('TRADE_RESULT', () => { clearTimeout(t); t = setTimeout(reload, 500); }));
  onCleanup(() => { clearTimeout(t); for (const p of [stats, account, equity, bots]) p.dispose(); });
}

/** The closed trades, oldest first (history is newest first, paged with X-Next-Cursor). */
async function closedTrades(api, signal) {
  const out = [];
  let cursor = null;
  do {
    const r = await api('/api/v1/trading/history', { signal, raw: true, query: { limit: HISTORY_PAGE, cursor } });
    for (const t of r.data || []) if (t.status === 'closed' && t.close_time && t.profit != null) out.push(t);
    cursor = r.headers.get('X-Next-Cursor');
  } while (cursor && out.length < HISTORY_MAX);
  return out.sort((a, b) => Date.parse(a.close_time) - Date.parse(b.close_time));
}
