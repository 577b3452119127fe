// Security: the caller's sessions, two-factor authentication and account activity. Three panels, each its own
// error boundary:
//   sessions — `GET auth/sessions` (this one marked); revoke one (`DELETE auth/sessions/{id}`) or every other
//              (`POST auth/sessions/revoke-others`). A revoked browser's socket closes at once and it is signed out.
//   2FA      — `GET totp/status`; set up (`POST totp/setup` → the QR code as a data: PNG, the secret and its
//              otpauth URI), confirm with a code (`POST totp/verify` {token}); turn off with password and code
//              (`POST totp/disable` {password, totp_token}).
//   activity — `GET users/activity?limit=&cursor=` → {items, next_cursor}: older/newer pages.
import { h, panel, fmt, table, loadCss, errorText, toast } from '../lib/ui.js';
import { idField } from './login.js';

const EVENTS = {
  register: 'Account created', login_succeeded: 'Signed in', login_failed: 'Failed sign-in', account_locked: 'Account locked',
  token_refreshed: 'Session refreshed', refresh_token_reuse_detected: 'Reused refresh token (session revoked)', logout: 'Signed out',
  session_revoked: 'Session revoked', password_reset_requested: 'Password reset requested', password_reset: 'Password reset',
  email_verified: 'E-mail verified', totp_setup_started: '2FA setup started', totp_enabled: '2FA turned on',
  totp_disabled: '2FA turned off', totp_failed: 'Wrong 2FA code', profile_updated: 'Profile updated',
  role_granted: 'Role granted', role_revoked: 'Role revoked',
};
const PAGE = 10;

/** "Chrome on Linux"-ish from a user agent; the raw string stays in the title. */
export function device(ua) {
  if (!ua) return 'Unknown device';
  const browser = /Edg\//.test(ua) ? 'Edge' : /Chrom(e|ium)\//.test(ua) ? 'Chrome' : /Firefox\//.test(ua) ? 'Firefox'
    : /Safari\//.test(ua) ? 'Safari' : ua.split(/[ /]/)[0];
  const os = /Windows/.test(ua) ? 'Windows' : /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS'
    : /Mac OS X/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : '';
  return os ? `${browser} on ${os}` : browser;
}

export default async function mount(root, ctx) {
  await loadCss('/app/pages/security.css');
  const { api, onCleanup } = ctx;

  const sessions = panel({
    id: 'security-sessions', title: 'Active sessions',
    load: (signal) => api('/api/v1/auth/sessions', { signal }),
    render: (list, body, { reload }) => {
      const others = list.filter((s) => !s.current);
      const revokeOthers = h('button', { class: 'btn btn-danger', type: 'button', id: 'revoke-others', disabled: others.length === 0 },
        'Sign out all other sessions');
      revokeOthers.addEventListener('click', async () => {
        revokeOthers.disabled = true;
        try {
          await api('/api/v1/auth/sessions/revoke-others', { method: 'POST' });
          toast('Every other session is signed out.', 'ok');
          reload();
        } catch (err) { toast(errorText(err), 'err'); revokeOthers.disabled = false; }
      });
      const revoke = (s) => {
        if (s.current) return h('span', { class: 'badge badge-ok' }, 'This browser');
        const b = h('button', { class: 'btn btn-small btn-danger', type: 'button', 'data-session': s.id, 'aria-label': `Revoke the session of ${device(s.user_agent)} from ${s.ip || 'an unknown address'}, signed in ${fmt.date(s.created_at)}` }, 'Revoke');
        b.addEventListener('click', async () => {
          b.disabled = true;
          try {
            await api(`/api/v1/auth/sessions/${encodeURIComponent(s.id)}`, { method: 'DELETE' });
            toast('Session revoked: that browser is signed out.', 'ok');
            reload();
          } catch (err) { toast(errorText(err), 'err'); b.disabled = false; }
        });
        return b;
      };
      body.append(
        table([
          { label: 'Device', value: (s) => h('span', { title: s.user_agent || '' }, device(s.user_agent)) },
          { label: 'Address', value: (s) => s.ip || '—', class: () => 'mono' },
          { label: 'Signed in', value: (s) => fmt.date(s.created_at) },
          { label: 'Last used', value: (s) => fmt.date(s.last_used_at) },
          { label: 'Action', value: revoke },
        ], list, { caption: `${list.length} session${list.length === 1 ? '' : 's'}`, rowAttrs: (s) => ({ 'data-current': s.current ? 'true' : 'false', class: s.current ? 'session-current' : '' }) }),
        h('div', { class: 'row security-actions' }, h('div', null, revokeOthers)));
    },
  });

  const totp = panel({
    id: 'security-2fa', title: 'Two-factor authentication',
    load: (signal) => api('/api/v1/totp/status', { signal }),
    render: (st, body, { reload }) => {
      if (st.enabled) renderDisable(body, api, reload);
      else renderSetup(body, api, reload);
    },
  });

  let cursors = [null];
  const activity = panel({
    id: 'security-activity', title: 'Account activity',
    load: (signal) => api('/api/v1/users/activity', { signal, query: { limit: PAGE, cursor: cursors[cursors.length - 1] } }),
    render: (d, body, { reload }) => {
      const items = d.items || [];
      if (items.length === 0) body.append(h('p', { class: 'empty' }, 'Nothing recorded yet.'));
      else {
        body.append(table([
          { label: 'When', value: (e) => fmt.date(e.at) },
          { label: 'Event', value: (e) => EVENTS[e.event] || e.event },
          { label: 'Address', value: (e) => e.ip || '—', class: () => 'mono' },
          { label: 'Device', value: (e) => h('span', { title: e.user_agent || '' }, device(e.user_agent)) },
        ], items, { caption: `Page ${cursors.length}` }));
      }
      const newer = h('button', { class: 'btn btn-small', type: 'button', id: 'activity-newer', disabled: cursors.length === 1 }, 'Newer');
      const older = h('button', { class: 'btn btn-small', type: 'button', id: 'activity-older', disabled: !d.next_cursor }, 'Older');
      newer.addEventListener('click', () => { cursors = cursors.slice(0, -1); reload(); });
      older.addEventListener('click', () => { cursors = [...cursors, d.next_cursor]; reload(); });
      body.append(h('nav', { class: 'pager', 'aria-label': 'Activity pages' }, newer, older));
    },
  });

  root.append(h('h1', null, 'Security'),
    h('div', { class: 'grid-2' }, h('div', { class: 'security-main' }, sessions, activity), totp),
    h('p', { class: 'muted' }, 'Forgot your password or want a new one? ', h('a', { href: '#/forgot' }, 'Get a reset link by e-mail'), ' (it signs out every session).'));
  onCleanup(() => { for (const p of [sessions, totp, activity]) p.dispose(); });
}

function renderSetup(body, api, reload) {
  const start = h('button', { class: 'btn btn-primary', type: 'button', id: 'totp-setup' }, 'Set up 2FA');
  const area = h('div', { class: 'totp-setup' });
  body.append(h('p', null, h('span', { class: 'badge badge-warn' }, 'Off'), ' Protect your account with an authenticator app (a 6-digit code at sign-in).'), start, area);
  start.addEventListener('click', async () => {
    start.disabled = true;
    try {
      const s = await api('/api/v1/totp/setup', { method: 'POST' });
      start.hidden = true;
      const msg = h('div', { class: 'error-box', role: 'alert', hidden: true, id: 'totp-error' });
      const code = idField('totp-code', { label: 'Code from the app', name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: 6, required: true });
      const verify = h('button', { class: 'btn btn-primary', type: 'submit', id: 'totp-verify' }, 'Verify and turn on');
      const form = h('form', { class: 'totp-form', novalidate: true },
        h('ol', null,
          h('li', null, 'Scan this code with your authenticator app:'),
          h('li', { class: 'totp-qr-item' }, h('img', { src: s.qr_code, alt: 'QR code for your authenticator app', width: 196, height: 196, class: 'totp-qr' })),
          h('li', null, 'or enter the key by hand: ', h('code', { id: 'totp-secret', class: 'mono' }, s.secret)),
          h('li', null, 'then type the 6-digit code it shows.')),
        msg, code, verify);
      area.append(form);
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        msg.hidden = true;
        const token = code.querySelector('input').value.trim();
        if (!/^[0-9]{6}$/.test(token)) { msg.textContent = 'Enter the 6-digit code.'; msg.hidden = false; return; }
        verify.disabled = true;
        try {
          await api('/api/v1/totp/verify', { method: 'POST', body: { token } });
          toast('Two-factor authentication is on.', 'ok');
          reload();
        } catch (err) { msg.textContent = errorText(err); msg.hidden = false; verify.disabled = false; }
      });
      code.querySelector('input').focus();
    } catch (err) { toast(errorText(err), 'err'); start.disabled = false; }
  });
}

function renderDisable(body, api, reload) {
  const msg = h('div', { class: 'error-box', role: 'alert', hidden: true, id: 'totp-error' });
  const password = idField('totp-disable-password', { label: 'Password', type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const code = idField('totp-disable-code', { label: 'Code from the app', name: 'code', inputmode: 'numeric', autocomplete: 'one-time-code', pattern: '[0-9]{6}', maxlength: 6, required: true });
  const off = h('button', { class: 'btn btn-danger', type: 'submit', id: 'totp-disable' }, 'Turn off 2FA');
  const form = h('form', { class: 'totp-form', novalidate: true }, msg, password, code, off);
  body.append(h('p', { id: 'totp-on' }, h('span', { class: 'badge badge-ok' }, 'On'), ' Sign-in asks for a code from your authenticator app.'), form);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.hidden = true;
    const b = { password: password.querySelector('input').value, totp_token: code.querySelector('input').value.trim() };
    if (!b.password || !/^[0-9]{6}$/.test(b.totp_token)) { msg.textContent = 'Enter your password and the 6-digit code.'; msg.hidden = false; return; }
    off.disabled = true;
    try {
      await api('/api/v1/totp/disable', { method: 'POST', body: b });
      toast('Two-factor authentication is off.', 'ok');
      reload();
    } catch (err) { msg.textContent = errorText(err); msg.hidden = false; off.disabled = false; }
  });
}
