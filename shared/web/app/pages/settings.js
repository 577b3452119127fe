// Settings: the profile (`GET/PUT users/me` — the name; the e-mail is fixed) and the trading preferences
// (`GET/PUT users/settings`, the original's camelCase, string-typed shape: numbers are sent as strings, switches
// as booleans). Two panels, each its own error boundary; numbers are checked here before they are sent.
import { h, panel, loadCss, errorText, toast } from '../lib/ui.js';
import { idField } from './login.js';

const NUMBERS = [
  ['defaultLotSize', 'Default lot size', { min: 0.01, max: 100, step: 0.01 }],
  ['maxLotSize', 'Largest lot size', { min: 0.01, max: 100, step: 0.01 }],
  ['defaultStopLoss', 'Default stop-loss (pips)', { min: 0, max: 10000, step: 1 }],
  ['defaultTakeProfit', 'Default take-profit (pips)', { min: 0, max: 10000, step: 1 }],
  ['riskPerTrade', 'Risk per trade (% of balance)', { min: 0.1, max: 100, step: 0.1 }],
  ['maxOpenPositions', 'Open positions at most', { min: 1, max: 20, step: 1 }],
];
const SWITCHES = [
  ['emailNotifications', 'E-mail notifications'],
  ['tradeAlerts', 'Trade alerts'],
  ['dailySummary', 'Daily summary e-mail'],
];
const LANGUAGES = [['en', 'English'], ['id', 'Bahasa Indonesia']];

function zones(current) {
  let list = [];
  try { list = Intl.supportedValuesOf('timeZone'); } catch (_) { list = ['UTC', 'Asia/Jakarta', 'Europe/London', 'America/New_York']; }
  if (current && !list.includes(current)) list = [current, ...list];
  return list.map((z) => [z, z]);
}

export default async function mount(root, ctx) {
  await loadCss('/app/pages/settings.css');
  const { api, session, onCleanup } = ctx;

  const profile = panel({
    id: 'settings-profile', title: 'Profile',
    load: (signal) => api('/api/v1/users/me', { signal }),
    render: (me, body, { reload }) => {
      const name = idField('settings-name', { label: 'Full name', name: 'full_name', autocomplete: 'name', value: me.full_name || '', maxlength: 100, required: true });
      const email = idField('settings-email', { label: 'E-mail', type: 'email', value: me.email, readonly: true, hint: me.email_verified ? 'Verified.' : 'Not verified yet: open the link we mailed you.' });
      const save = h('button', { class: 'btn btn-primary', type: 'submit', id: 'settings-profile-save' }, 'Save profile');
      const form = h('form', { class: 'settings-form', novalidate: true }, name, email, h('div', null, save));
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const full_name = name.querySelector('input').value.trim();
        if (!full_name) { name.querySelector('input').setAttribute('aria-invalid', 'true'); toast('Enter your name.', 'err'); return; }
        save.disabled = true;
        try {
          const r = await api('/api/v1/users/me', { method: 'PUT', body: { full_name } });
          if (r && r.user) session.setUser({ ...(session.user || {}), ...r.user });
          toast('Profile saved.', 'ok');
          reload();
        } catch (err) { toast(errorText(err), 'err'); save.disabled = false; }
      });
      body.append(form);
    },
  });

  const prefs = panel({
    id: 'settings-prefs', title: 'Trading preferences',
    load: (signal) => api('/api/v1/users/settings', { signal }),
    render: (st, body, { reload }) => {
      const controls = {};
      const numbers = NUMBERS.map(([key, label, range]) => {
        const f = idField('set-' + key, { label, type: 'number', name: key, value: st[key] ?? '', ...range, required: true });
        controls[key] = f.querySelector('input');
        return f;
      });
      const switches = SWITCHES.map(([key, label]) => {
        const f = idField('set-' + key, { label, type: 'checkbox', name: key, value: !!st[key] });
        controls[key] = f.querySelector('input');
        return f;
      });
      const lang = idField('set-language', { label: 'Language', type: 'select', name: 'language', value: st.language || 'en', options: LANGUAGES });
      const tz = idField('set-timezone', { label: 'Time zone', type: 'select', name: 'timezone', value: st.timezone || 'UTC', options: zones(st.timezone) });
      const msg = h('div', { class: 'error-box', role: 'alert', hidden: true, id: 'settings-error' });
      const save = h('button', { class: 'btn btn-primary', type: 'submit', id: 'settings-save' }, 'Save preferences');
      const form = h('form', { class: 'settings-form', novalidate: true },
        msg,
        h('fieldset', null, h('legend', null, 'Orders and risk'), h('div', { class: 'settings-numbers' }, numbers)),
        h('fieldset', null, h('legend', null, 'Notifications'), switches),
        h('fieldset', null, h('legend', null, 'Region'), h('div', { class: 'settings-numbers' }, lang, tz)),
        h('div', null, save));
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        msg.hidden = true;
        const patch = {};
        const bad = [];
        for (const [key, label, range] of NUMBERS) {
          const input = controls[key];
          const v = Number(input.value);
          const ok = input.value.trim() !== '' && Number.isFinite(v) && v >= range.min && v <= range.max;
          input.setAttribute('aria-invalid', ok ? 'false' : 'true');
          if (!ok) bad.push(`${label}: between ${range.min} and ${range.max}`);
          patch[key] = input.value.trim();
        }
        if (Number(patch.defaultLotSize) > Number(patch.maxLotSize)) bad.push('The default lot size cannot be larger than the largest.');
        if (bad.length) { msg.textContent = bad.join('. ') + '.'; msg.hidden = false; return; }
        for (const [key] of SWITCHES) patch[key] = controls[key].checked;
        patch.language = lang.querySelector('select').value;
        patch.timezone = tz.querySelector('select').value;
        save.disabled = true;
        try {
          await api('/api/v1/users/settings', { method: 'PUT', body: patch });
          toast('Preferences saved.', 'ok');
          reload();
        } catch (err) { msg.textContent = errorText(err); msg.hidden = false; save.disabled = false; }
      });
      body.append(form);
    },
  });

  root.append(h('h1', null, 'Settings'), h('div', { class: 'grid-2 settings-grid' }, prefs, profile),
    h('p', { class: 'muted' }, 'The colour theme is kept in this browser: use the ☾/☀ button at the top.'));
  onCleanup(() => { profile.dispose(); prefs.dispose(); });
}
