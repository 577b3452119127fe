// Forgot password: `POST /api/v1/auth/forgot-password` {email}. The answer is the same whether or not the
// address has an account; the mailed link opens the /reset-password page (served by the platform).
import { h, errorText, loadCss } from '../lib/ui.js';
import { idField } from './login.js';

export default async function mount(root, ctx) {
  await loadCss('/app/pages/login.css');
  const { api, session } = ctx;
  const msg = h('div', { id: 'forgot-error', class: 'error-box', role: 'alert', hidden: true });
  const done = h('p', { id: 'forgot-done', class: 'notice', role: 'status', hidden: true });
  const email = idField('forgot-email', { label: 'E-mail', type: 'email', name: 'email', autocomplete: 'email', required: true, value: session.user ? session.user.email : '' });
  const submit = h('button', { id: 'forgot-submit', class: 'btn btn-primary', type: 'submit' }, 'Send reset link');
  const form = h('form', { class: 'panel auth-form', novalidate: true, 'aria-labelledby': 'forgot-title' },
    h('h1', { id: 'forgot-title' }, 'Reset your password'),
    h('p', { class: 'muted' }, 'Enter the address of your account: we mail you a link to choose a new password.'),
    msg, done, email,
    h('div', { class: 'auth-actions' }, submit),
    h('p', { class: 'auth-links' }, h('a', { href: session.signedIn ? '#/security' : '#/login' }, session.signedIn ? 'Back to security' : 'Back to sign in')));
  root.append(h('div', { class: 'auth' }, form));
  const input = email.querySelector('input');

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.hidden = true;
    const address = input.value.trim();
    if (!address) { msg.textContent = 'Enter your e-mail address.'; msg.hidden = false; return; }
    submit.disabled = true;
    submit.textContent = 'Sending…';
    try {
      await api('/api/v1/auth/forgot-password', { method: 'POST', body: { email: address }, auth: false });
      done.textContent = `If ${address} has an account, a reset link is on its way. It opens a page where you choose a new password.`;
      done.hidden = false;
    } catch (err) {
      msg.textContent = errorText(err);
      msg.hidden = false;
    } finally {
      submit.disabled = false;
      submit.textContent = 'Send reset link';
    }
  }, { signal: ctx.signal });
  input.focus();
}
