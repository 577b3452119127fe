// Sign in: e-mail + password (`POST /api/v1/auth/login`); an account with 2FA answers 403 and the page asks for
// the authenticator's 6-digit code, then signs in with `POST /api/v1/auth/login-2fa` {email, password, totp_token}.
// On success the token pair goes to the session and the user to `#/<next>` (default overview).
import { h, field, errorText, loadCss } from '../lib/ui.js';
import { ApiError } from '../lib/api.js';

/** A labelled control from `field()` with a stable id (tests and `for=` both use it). */
export function idField(id, opts) {
  const f = field(opts);
  const control = f.querySelector('input, select, textarea');
  control.id = id;
  f.htmlFor = id;
  const hint = f.querySelector('.hint');
  if (hint) { hint.id = id + '-hint'; control.setAttribute('aria-describedby', hint.id); }
  return f;
}

export default async function mount(root, ctx) {
  await loadCss('/app/pages/login.css');
  const { api, session, navigate, params } = ctx;
  const next = (params.get('next') || 'overview').replace(/[^a-z-]/g, '') || 'overview';
  const msg = h('div', { id: 'login-error', class: 'error-box', role: 'alert', hidden: true });
  const email = idField('login-email', { label: 'E-mail', type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = idField('login-password', { label: 'Password', type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const code = idField('login-code', {
    label: 'Authenticator code', type: 'text', name: 'totp', inputmode: 'numeric', autocomplete: 'one-time-code',
    pattern: '[0-9]{6}', maxlength: 6, hint: 'Two-factor authentication is on for this account: enter the 6-digit code from your authenticator app.',
  });
  code.hidden = true;
  const submit = h('button', { id: 'login-submit', class: 'btn btn-primary', type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'panel auth-form', novalidate: true, 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Sign in'),
    msg, email, password, code,
    h('div', { class: 'auth-actions' }, submit),
    h('p', { class: 'auth-links' },
      h('a', { href: '#/forgot' }, 'Forgot your password?'), ' · ',
      h('a', { href: '#/register' }, 'Create an account')));
  root.append(h('div', { class: 'auth' }, form));
  const input = (f) => f.querySelector('input');
  let needCode = false;

  const showError = (text) => { msg.textContent = text; msg.hidden = !text; };

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    showError('');
    const body = { email: input(email).value.trim(), password: input(password).value };
    if (!body.email || !body.password) { showError('Enter your e-mail and password.'); return; }
    if (needCode) {
      body.totp_token = input(code).value.trim();
      if (!/^[0-9]{6}$/.test(body.totp_token)) {
        input(code).setAttribute('aria-invalid', 'true');
        showError('Enter the 6-digit code from your authenticator app.');
        input(code).focus();
        return;
      }
      input(code).removeAttribute('aria-invalid');
    }
    submit.disabled = true;
    submit.textContent = 'Signing in…';
    try {
      const tokens = await api(needCode ? '/api/v1/auth/login-2fa' : '/api/v1/auth/login', { method: 'POST', body, auth: false });
      session.set(tokens);
      try { session.setUser(await api('/api/v1/auth/me')); } catch (_) { /* the shell fetches it again */ }
      navigate('#/' + next);
    } catch (err) {
      if (!needCode && err instanceof ApiError && err.status === 403 && /2FA/i.test(err.message)) {
        needCode = true;
        code.hidden = false;
        submit.textContent = 'Verify and sign in';
        input(code).focus();
        return;
      }
      showError(errorText(err));
    } finally {
      submit.disabled = false;
      if (submit.textContent === 'Signing in…') submit.textContent = needCode ? 'Verify and sign in' : 'Sign in';
    }
  }, { signal: ctx.signal });
  input(email).focus();
}
