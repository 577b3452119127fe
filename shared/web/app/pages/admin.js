// Admin (admins only — the nav hides it for others; a 403 here says "admins only"): the platform's settings
// (`/admin/settings`: list by category, edit, delete; encrypted values arrive masked as "***ENCRYPTED***", are shown
// masked, and are never echoed — the edit field for one starts empty), the model and store checks
// (`/admin/test-llm`, `/admin/test-redis`), and the audit trail of settings changes (`/admin/audit`, newest first,
// paged here 20 at a time over the newest 200 the route returns).
import { h, panel, field, fmt, toast, table, loadCss, errorText, errorBox, clear, spinner } from '../lib/ui.js';
import { ApiError } from '../lib/api.js';

const CATEGORIES = ['ai_provider', 'redis', 'email', 'rate_limiting', 'trading', 'storage', 'general'];
const SECRET_NAME = /(^llm_api_key$|^redis_url$|_api_key$|_secret$|_password$|_token$)/;
const PAGE = 20;

function adminsOnly(err) {
  return err instanceof ApiError && (err.status === 403 || err.status === 401);
}

export default async function mount(root, ctx) {
  await loadCss('/app/pages/admin.css');
  const { api } = ctx;
  root.append(h('h1', null, 'Admin'));
  // Ask once: a trader sees one clear message, not three failing panels.
  try {
    await api('/api/v1/admin/settings', { query: { category: 'general' } });
  } catch (err) {
    if (adminsOnly(err)) {
      root.append(h('section', { class: 'panel', id: 'admins-only' }, h('div', { class: 'panel-body' },
        h('p', { class: 'warn', role: 'alert' }, 'Admins only. This page manages the platform’s settings; your account does not have the admin role.'),
        h('p', { class: 'hint' }, 'An operator grants the role with `nusatrade admin grant <email>` (see the README, “Admin settings”).'))));
      return;
    }
  }

  let category = '';
  const editorHost = h('div');
  const settings = panel({
    title: 'Settings', id: 'settings',
    actions: [
      (() => { const f = field({ label: 'Category', type: 'select', value: '', options: [['', 'All'], ...CATEGORIES.map((c) => [c, c.replace(/_/g, ' ')])] });
        f.classList.add('inline'); f.querySelector('select').addEventListener('change', (e) => { category = e.target.value; settings.reload(); }); return f; })(),
      h('button', { class: 'btn btn-primary btn-small', type: 'button', onclick: () => edit(null) }, 'New setting'),
    ],
    load: (sig) => api('/api/v1/admin/settings', { query: { category }, signal: sig }),
    render: (rows, body) => {
      body.append(rows.length ? table([
        { label: 'Key', value: (s) => h('code', null, s.key) },
        { label: 'Value', value: (s) => (s.is_encrypted ? h('span', { class: 'masked', 'aria-label': 'encrypted value, hidden' }, '•••••••• ', h('span', { class: 'badge' }, 'encrypted')) : h('code', { class: 'value' }, s.value === null || s.value === undefined ? '' : String(s.value))) },
        { label: 'Category', value: (s) => s.category },
        { label: 'Description', value: (s) => s.description || '' },
        { label: 'Updated', value: (s) => h('span', null, fmt.date(s.updated_at), s.updated_by ? h('span', { class: 'hint' }, ` by ${s.updated_by}`) : null) },
        { label: 'Actions', value: (s) => h('div', { class: 'actions' },
          h('button', { class: 'btn btn-small', type: 'button', 'aria-label': `Edit ${s.key}`, onclick: () => edit(s) }, 'Edit'),
          h('button', { class: 'btn btn-small btn-danger', type: 'button', 'aria-label': `Delete ${s.key}`, onclick: async (e) => {
            if (!confirm(`Delete the setting ${s.key}?`)) return;
            e.target.disabled = true;
            try { await api(`/api/v1/admin/settings/${encodeURIComponent(s.key)}`, { method: 'DELETE' }); toast(`Deleted ${s.key}`, 'ok'); settings.reload(); audit.reload(); } catch (err) { toast(errorText(err), 'err'); e.target.disabled = false; }
          } }, 'Delete')) },
      ], rows, { caption: 'Active settings', rowAttrs: (s) => ({ dataset: { key: s.key } }) }) : h('p', { class: 'empty' }, 'No settings stored: the platform uses its environment.'));
    },
  });

  function edit(s) {
    const isNew = !s;
    const encrypted = !!(s && s.is_encrypted);
    const key = field({ label: 'Key', value: s ? s.key : '', required: true, maxlength: 100, pattern: '[A-Za-z0-9_.\\-]+', readonly: !isNew, autocomplete: 'off' });
    const value = field({ label: encrypted ? 'New value (the stored one is never shown)' : 'Value', type: encrypted ? 'password' : 'text', maxlength: 4096, autocomplete: 'off',
      value: s && !encrypted && s.value !== null && s.value !== undefined ? String(s.value) : '', required: encrypted,
      hint: encrypted ? 'Enter the whole value again to change it; it is sealed before it is stored.' : null });
    const cat = field({ label: 'Category', type: 'select', value: s ? s.category : 'general', options: CATEGORIES.map((c) => [c, c.replace(/_/g, ' ')]) });
    const enc = field({ label: 'Encrypt (secret value)', type: 'checkbox', value: encrypted, hint: 'Keys named like secrets (…_api_key, …_secret, …_password, …_token) are always encrypted.' });
    const desc = field({ label: 'Description', value: s ? s.description || '' : '', maxlength: 500 });
    const keyInput = key.querySelector('input');
    const valInput = value.querySelector('input');
    const encInput = enc.querySelector('input');
    const syncSecret = () => { if (SECRET_NAME.test(keyInput.value)) encInput.checked = true; valInput.type = encInput.checked ? 'password' : 'text'; };
    keyInput.addEventListener('input', syncSecret);
    encInput.addEventListener('change', syncSecret);
    const msg = h('div', { role: 'status', 'aria-live': 'polite' });
    const btn = h('button', { class: 'btn btn-primary', type: 'submit' }, 'Save');
    clear(editorHost).append(h('section', { class: 'panel', id: 'setting-editor' },
      h('header', { class: 'panel-head' }, h('h2', null, isNew ? 'New setting' : `Edit ${s.key}`)),
      h('div', { class: 'panel-body' }, h('form', { autocomplete: 'off', onsubmit: async (e) => {
        e.preventDefault();
        const k = keyInput.value.trim();
        if (!k) { keyInput.focus(); return; }
        btn.disabled = true; clear(msg);
        try {
          await api(`/api/v1/admin/settings/${encodeURIComponent(k)}`, { method: 'PUT', body: { value: valInput.value, category: cat.querySelector('select').value, is_encrypted: encInput.checked, description: desc.querySelector('input').value || null } });
          valInput.value = ''; // never keep a secret in the page
          toast(`Saved ${k}`, 'ok');
          clear(editorHost);
          settings.reload(); audit.reload();
        } catch (err) { clear(msg).append(errorBox(err)); } finally { btn.disabled = false; }
      } }, h('div', { class: 'row' }, key, cat), value, enc, desc, h('div', { class: 'form-actions' }, btn, h('button', { class: 'btn btn-ghost', type: 'button', onclick: () => clear(editorHost) }, 'Cancel')), msg))));
    (isNew ? keyInput : valInput).focus();
  }

  const checks = panel({
    title: 'Checks', id: 'checks',
    render: (_, body) => {
      const out = h('div', { role: 'status', 'aria-live': 'polite' });
      const run = async (path, label) => {
        clear(out).append(spinner(label));
        try {
          const r = await api(path, { method: 'POST', timeout: 60000 });
          const d = r.details;
          clear(out).append(h('p', { class: r.success ? 'ok-line' : 'warn' }, (r.success ? '✓ ' : '✗ ') + r.message),
            d ? h('p', { class: 'hint' }, `${d.provider || ''} ${d.model || ''} ${d.response_time_ms != null ? d.response_time_ms + ' ms' : ''}`) : '');
        } catch (err) { clear(out).append(errorBox(err)); }
      };
      body.append(h('div', { class: 'form-actions' },
        h('button', { class: 'btn', type: 'button', onclick: () => run('/api/v1/admin/test-llm', 'Asking the language model…') }, 'Test the language model'),
        h('button', { class: 'btn', type: 'button', onclick: () => run('/api/v1/admin/test-redis', 'Checking the store…') }, 'Test the store (redis)')), out);
    },
  });

  let page = 0;
  const audit = panel({
    title: 'Audit log', id: 'audit',
    load: (sig) => api('/api/v1/admin/audit', { query: { limit: 200 }, signal: sig }),
    render: (rows, body) => {
      if (!rows.length) { body.append(h('p', { class: 'empty' }, 'No settings changes yet.')); return; }
      const box = h('div');
      const paint = () => {
        const pages = Math.ceil(rows.length / PAGE);
        page = Math.min(page, pages - 1);
        const slice = rows.slice(page * PAGE, page * PAGE + PAGE);
        clear(box).append(table([
          { label: 'When', value: (a) => fmt.date(a.at) },
          { label: 'Who', value: (a) => a.actor_email || a.actor_id },
          { label: 'Action', value: (a) => h('span', { class: 'badge ' + (a.action === 'deleted' ? 'badge-err' : a.action === 'created' ? 'badge-ok' : '') }, a.action) },
          { label: 'Key', value: (a) => h('code', null, a.key) },
          { label: 'Category', value: (a) => a.category },
          { label: 'Encrypted', value: (a) => (a.is_encrypted ? 'yes' : 'no') },
        ], slice, { caption: `Changes ${page * PAGE + 1}–${page * PAGE + slice.length} of ${rows.length}${rows.length >= 200 ? ' (the newest 200)' : ''}, newest first` }),
        h('div', { class: 'pager' },
          h('button', { class: 'btn btn-small', type: 'button', disabled: page === 0, onclick: () => { page -= 1; paint(); } }, '← Newer'),
          h('span', { class: 'hint' }, `Page ${page + 1} of ${pages}`),
          h('button', { class: 'btn btn-small', type: 'button', disabled: page >= pages - 1, onclick: () => { page += 1; paint(); } }, 'Older →')));
      };
      paint();
      body.append(box);
    },
  });

  root.append(settings, editorHost, h('div', { class: 'grid-2' }, audit, checks));
}
