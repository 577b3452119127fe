// Connections: the caller's broker connections (create, sync, delete) and a health card per connection — MT5 status,
// latency, last heartbeat, positions synced, last reconciliation, reconciliation availability, the connector's
// capabilities and flags — kept live from the dashboard socket (CONNECTIONS_STATUS, MT5_STATUS_UPDATE,
// CONNECTOR_ERROR, CONNECTOR_WARNING, CONNECTOR_DISCONNECTED), refetched after a reconnect.
import { api } from '../lib/api.js';
import { h, panel, toast, fmt, field, loadCss, errorText } from '../lib/ui.js';

const ago = (iso) => {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '—';
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  const rel = s < 60 ? `${s} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : s < 86400 ? `${Math.round(s / 3600)} h ago` : `${Math.round(s / 86400)} d ago`;
  return h('time', { datetime: iso, title: fmt.date(iso) }, rel);
};

function recon(value) {
  if (!value) return { level: 'unknown', reason: '' };
  const [level, ...rest] = String(value).split(/\s+[—-]\s+/);
  return { level: level.trim(), reason: rest.join(' — ') };
}

export default async function mount(root, ctx) {
  await loadCss('/app/pages/connections.css');
  const { socket, session, onCleanup } = ctx;
  const cards = new Map(); // id → { el (panel), live: {}, error }
  const live = new Map(); // id → CONNECTIONS_STATUS entry + socket news
  let monitor = new Map();

  // ------------------------------------------------------------------ create
  const createErr = h('div', { class: 'form-error', role: 'alert' });
  const createBtn = h('button', { class: 'btn btn-primary', type: 'submit', id: 'conn-create' }, 'Add connection');
  const createForm = h('form', { id: 'conn-form', novalidate: true },
    h('div', { class: 'row' },
      field({ label: 'Broker', name: 'broker_name', value: 'MetaTrader 5', maxlength: 100, required: true }),
      field({ label: 'Account number', name: 'account_number', maxlength: 50, inputmode: 'numeric', hint: 'The MT5 login' }),
      field({ label: 'Server', name: 'server', maxlength: 100, hint: 'e.g. NusaTrade-Paper' })),
    createErr, h('div', null, createBtn));
  createForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (createBtn.disabled) return;
    const v = (n) => createForm.querySelector(`[name="${n}"]`).value.trim();
    createBtn.disabled = true;
    createErr.replaceChildren();
    try {
      await api('/api/v1/brokers/connections', { method: 'POST', body: { broker_name: v('broker_name') || 'MetaTrader 5', account_number: v('account_number') || null, server: v('server') || null } });
      toast('Connection added.', 'ok');
      createForm.querySelector('[name="account_number"]').value = '';
      listPanel.reload();
    } catch (e) {
      createErr.replaceChildren(h('p', null, errorText(e)));
    } finally { createBtn.disabled = false; }
  });

  // ------------------------------------------------------------------ health card
  const commandLine = (c) => {
    const origin = location.origin;
    const email = (session.user && session.user.email) || 'you@example.com';
    const login = /^\d+$/.test(c.account_number || '') ? ` --account-login ${c.account_number}` : '';
    const server = c.server ? ` --mt5-server '${c.server.replace(/'/g, "'\\''")}'` : '';
    return `nusatrade connector --server ${origin} --email ${email} --password '…'${login}${server}`;
  };

  // `capabilities`: `{stated, effective}` (what the connector's AUTH stated, what is trusted after its flags) or a list.
  function capsView(caps) {
    if (!caps) return null;
    const stated = Array.isArray(caps) ? caps : Array.isArray(caps.stated) ? caps.stated : [];
    const effective = Array.isArray(caps) ? caps : Array.isArray(caps.effective) ? caps.effective : stated;
    const names = [...new Set([...stated, ...effective])].map(String);
    return h('div', { class: 'caps' }, h('h3', null, 'Capabilities'),
      names.length ? h('ul', { class: 'chips' }, names.map((x) => {
        const withdrawn = !effective.includes(x);
        return h('li', { class: 'badge' + (withdrawn ? ' badge-warn' : ''), title: withdrawn ? 'Stated, but no longer trusted after a flag' : null }, withdrawn ? `${x} (withdrawn)` : x);
      }))
        : h('p', { class: 'muted' }, 'None stated (the original connector): opens are never resent, reconciliation is limited.'));
  }

  function card(c) {
    const el = panel({
      title: `${c.broker_name}${c.account_number ? ' · ' + c.account_number : ''}`,
      id: 'conn-' + c.id, class: 'conn-card',
      actions: [
        h('button', { class: 'btn btn-small act-sync', type: 'button', onclick: (ev) => sync(c, ev.currentTarget), 'aria-label': `Sync ${c.broker_name} ${c.account_number || ''}` }, 'Sync'),
        h('button', { class: 'btn btn-small btn-danger act-delete', type: 'button', onclick: () => remove(c), 'aria-label': `Delete ${c.broker_name} ${c.account_number || ''}` }, 'Delete'),
      ],
      load: (signal) => api(`/api/v1/brokers/connections/${c.id}/status`, { signal }),
      render: (s, body) => {
        const l = live.get(c.id) || {};
        const online = s.status === 'online' || s.is_connected === true;
        const mt5 = l.mt5_connected ?? s.mt5_connected;
        const rc = recon(l.reconciliation || s.reconciliation);
        const mon = monitor.get(c.id);
        el.dataset.online = online ? 'true' : 'false';
        const row = (k, v, id, wide) => h('div', { class: wide ? 'kv kv-wide' : 'kv' }, h('dt', null, k), h('dd', { 'data-k': id }, v));
        const badge = (ok, yes, no, warn) => h('span', { class: 'badge ' + (ok ? 'badge-ok' : warn ? 'badge-warn' : 'badge-err') }, ok ? yes : no);
        const caps = s.capabilities || l.capabilities;
        const flags = s.flags || l.flags;
        body.append(h('div', { class: 'conn-body' },
          h('p', { class: 'conn-state' }, badge(online, 'Connector online', 'Connector offline', true), ' ',
            online ? badge(mt5 !== false, mt5 === true ? 'MT5 connected' : 'MT5 status pending', 'MT5 disconnected', mt5 === null || mt5 === undefined) : null),
          h('dl', { class: 'kvs' },
            row('Broker', l.broker_name || c.broker_name, 'broker'),
            row('Account', l.account_number || c.account_number || '—', 'account'),
            row('Server', l.server || c.server || '—', 'server'),
            row('Latency', Number.isFinite(s.latency_ms) ? `${s.latency_ms} ms` : '—', 'latency'),
            row('Last heartbeat', s.last_heartbeat ? ago(s.last_heartbeat) : '—', 'heartbeat'),
            row('Last message', (l.last_message_at || s.last_message_at) ? ago(l.last_message_at || s.last_message_at) : '—', 'message'),
            row('Positions synced', s.positions_synced ?? '—', 'synced'),
            row('Synced at', s.positions_synced_at ? ago(s.positions_synced_at) : '—', 'synced-at'),
            row('Last reconciliation', mon && mon.last_run ? h('span', null, ago(mon.last_run), mon.outcome ? ` · ${mon.outcome}` : '') : '—', 'recon-run'),
            row('Reconciliation', h('span', null, h('span', { class: 'badge ' + (rc.level === 'available' ? 'badge-ok' : rc.level === 'limited' ? 'badge-warn' : rc.level === 'unavailable' ? 'badge-err' : '') }, rc.level), rc.reason ? h('span', { class: 'reason' }, ' ' + rc.reason) : null), 'reconciliation', true),
            s.account_info ? row('Balance / equity', `${fmt.money(s.account_info.balance, s.account_info.currency || 'USD')} / ${fmt.money(s.account_info.equity, s.account_info.currency || 'USD')}`, 'account-info') : null),
          s.report_error ? h('p', { class: 'warn' }, 'Positions report failed: ', s.report_error) : null,
          l.error ? h('p', { class: 'warn conn-error', role: 'alert' }, 'Connector error: ', l.error) : null,
          capsView(caps),
          Array.isArray(flags) && flags.length ? h('div', { class: 'flags' }, h('h3', null, 'Flags'),
            h('ul', null, flags.map((f) => h('li', null, h('span', { class: 'badge badge-warn' }, f.kind || 'flag'), ' ', f.detail || '', f.at ? h('span', { class: 'muted' }, ' · ', ago(f.at)) : null)))) : null,
          h('details', { class: 'run' }, h('summary', null, 'Run a connector for this connection'),
            h('p', null, 'The simulated connector (paper account) finds this connection (', h('code', null, c.id), ') by its account number and server:'),
            h('pre', { class: 'cmd' }, h('code', null, commandLine(c))),
            h('p', { class: 'hint' }, `The original MT5 connector: server URL ${location.origin}, connection id ${c.id}.`))));
        return undefined;
      },
    });
    return el;
  }

  async function sync(c, btn) {
    btn.disabled = true;
    try {
      const r = await api(`/api/v1/brokers/connections/${c.id}/sync`, { method: 'POST' });
      toast(r.message || (r.synced ? 'Sync requested.' : 'No connector online for this connection.'), r.synced ? 'ok' : 'info');
      setTimeout(() => refreshCard(c.id), 800);
    } catch (e) {
      toast(errorText(e), 'err');
    } finally { btn.disabled = false; }
  }

  function remove(c) {
    const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': 'del-title' });
    const err = h('div', { class: 'form-error', role: 'alert' });
    const yes = h('button', { class: 'btn btn-danger', type: 'button', id: 'conn-delete-confirm' }, 'Delete');
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      try {
        await api(`/api/v1/brokers/connections/${c.id}`, { method: 'DELETE' });
        dlg.close();
        toast('Connection deleted.', 'ok');
        listPanel.reload();
      } catch (e) { err.replaceChildren(h('p', null, errorText(e))); yes.disabled = false; }
    });
    dlg.append(h('h2', { id: 'del-title' }, `Delete ${c.broker_name} ${c.account_number || ''}?`),
      h('p', null, 'Its live connector is disconnected; orders keep their reference to it.'), err,
      h('div', { class: 'row dialog-actions' }, h('button', { class: 'btn', type: 'button', onclick: () => dlg.close() }, 'Cancel'), yes));
    dlg.addEventListener('close', () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
  }

  const refreshTimers = new Map();
  const refreshCard = (id, ms = 0) => {
    clearTimeout(refreshTimers.get(id));
    refreshTimers.set(id, setTimeout(() => { const x = cards.get(id); if (x) x.reload(); }, ms));
  };
  onCleanup(() => refreshTimers.forEach((t) => clearTimeout(t)));

  // ------------------------------------------------------------------ list
  const grid = h('div', { class: 'conn-grid', id: 'conn-cards' });
  const listPanel = panel({
    title: 'Broker connections', id: 'conn-list',
    load: async (signal) => {
      const [list, mon] = await Promise.all([
        api('/api/v1/brokers/connections', { signal }),
        api('/api/v1/trading/position-monitor/status', { signal }).catch(() => null),
      ]);
      monitor = new Map(((mon && mon.connections) || []).map((m) => [m.connection_id, m]));
      return list;
    },
    render: (list, body) => {
      cards.forEach((x) => x.dispose());
      cards.clear();
      if (!list.length) {
        body.append(h('p', { class: 'empty' }, 'No broker connections yet. Add one below, or start a connector: it creates its own.'));
      } else {
        body.append(h('p', { class: 'muted' }, `${list.length} connection${list.length === 1 ? '' : 's'}; ${list.filter((c) => c.is_active).length} online.`));
      }
      grid.replaceChildren(...list.map((c) => { const el = card(c); cards.set(c.id, el); return el; }));
      return undefined;
    },
  });
  const addPanel = panel({ title: 'Add a connection', id: 'conn-add', render: (_, body) => body.append(createForm,
    h('p', { class: 'hint' }, 'A connector normally creates its connection itself after its MT5 login; add one here to prepare it.')) });

  root.append(h('h1', null, 'Connections'), listPanel, grid, addPanel);

  // ------------------------------------------------------------------ live
  const subs = [
    socket.on('CONNECTIONS_STATUS', (m) => {
      const seen = new Set();
      for (const c of m.connections || []) {
        seen.add(c.connection_id);
        live.set(c.connection_id, { ...(live.get(c.connection_id) || {}), ...c });
        if (!cards.has(c.connection_id)) listPanel.reload(); else refreshCard(c.connection_id, 150);
      }
      for (const id of [...live.keys()]) if (!seen.has(id)) { live.delete(id); refreshCard(id, 150); }
    }),
    socket.on('MT5_STATUS_UPDATE', (m) => {
      live.set(m.connection_id, { ...(live.get(m.connection_id) || {}), mt5_connected: m.connected, broker_name: m.broker_name, account_number: m.account_number, server: m.server });
      refreshCard(m.connection_id, 150);
    }),
    socket.on('CONNECTOR_ERROR', (m) => {
      live.set(m.connection_id, { ...(live.get(m.connection_id) || {}), error: m.error });
      refreshCard(m.connection_id, 150);
    }),
    socket.on('CONNECTOR_WARNING', (m) => { if (m.connection_id) refreshCard(m.connection_id, 150); }),
    socket.on('CONNECTOR_DISCONNECTED', (m) => { live.delete(m.connection_id); refreshCard(m.connection_id, 150); }),
    socket.onResync(() => { socket.send({ type: 'GET_CONNECTIONS_STATUS' }); listPanel.reload(); }),
  ];
  onCleanup(() => subs.forEach((off) => off()));
  socket.send({ type: 'GET_CONNECTIONS_STATUS' });
}
