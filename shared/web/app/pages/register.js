// Create an account (`POST /api/v1/auth/register` → the user and a token pair: signed in at once), then
// "check your mail": the platform mailed a verification link (it opens /verify-email); the page offers to send
// it again (`POST /api/v1/auth/verify-email/resend`, bearer) and the way on to the dashboard.
import { h, errorText, loadCss, toast } from '../lib/ui.js';
import { idField } from './login.js';

export default async function mount(root, ctx) {
  await loadCss('/app/pages/login.css');
  const { api, session, navigate } = ctx;
  const msg = h('div', { id: 'register-error', class: 'error-box', role: 'alert', hidden: true });
  const name = idField('register-name', { label: 'Full name', name: 'full_name', autocomplete: 'name', required: true, maxlength: 100 });
  const email = idField('register-email', { label: 'E-mail', type: 'email', name: 'email', autocomplete: 'email', required: true });
  const password = idField('register-password', {
    label: 'Password', type: 'password', name: 'password', autocomplete: 'new-password', required: true,
    hint: 'At least 8 characters with upper- and lower-case letters, a digit and a symbol.',
  });
  const submit = h('button', { id: 'register-submit', class: 'btn btn-primary', type: 'submit' }, 'Create account');
  const form = h('form', { class: 'panel auth-form', novalidate: true, 'aria-labelledby': 'register-title' },
    h('h1', { id: 'register-title' }, 'Create your account'),
    msg, name, email, password,
    h('div', { class: 'auth-actions' }, submit),
    h('p', { class: 'auth-links' }, 'Already have an account? ', h('a', { href: '#/login' }, 'Sign in')));
  const wrap = h('div', { class: 'auth' }, form);
  root.append(wrap);
  const val = (f) => f.querySelector('input').value;

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    msg.hidden = true;
    const body = { full_name: val(name).trim(), email: val(email).trim(), password: val(password) };
    if (!body.full_name || !body.email || !body.password) {
      msg.textContent = 'Fill in your name, e-mail and a password.';
      msg.hidden = false;
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Creating…';
    try {
      const answer = await api('/api/v1/auth/register', { method: 'POST', body, auth: false });
      const { access_token, refresh_token, token_type, ...user } = answer;
      void token_type;
      session.set({ access_token, refresh_token, user });
      wrap.replaceChildren(checkMail(api, body.email, navigate));
    } catch (err) {
      msg.textContent = errorText(err);
      msg.hidden = false;
    } finally {
      submit.disabled = false;
      submit.textContent = 'Create account';
    }
  }, { signal: ctx.signal });
  name.querySelector('input').focus();
}

function checkMail(api, email, navigate) {
  const status = h('p', { id: 'register-resent', role: 'status', 'aria-live': 'polite', class: 'muted empty-status' });
  const resend = h('button', { id: 'register-resend', class: 'btn', type: 'button' }, 'Send the link again');
  resend.addEventListener('click', async () => {
    resend.disabled = true;
    try {
      await api('/api/v1/auth/verify-email/resend', { method: 'POST' });
      status.textContent = `A new link is on its way to ${email}.`;
      status.classList.remove('empty-status');
    } catch (err) {
      status.textContent = errorText(err);
      status.classList.remove('empty-status');
      toast(errorText(err), 'err');
    } finally {
      resend.disabled = false;
    }
  });
  return h('section', { id: 'register-done', class: 'panel auth-form', 'aria-labelledby': 'register-done-title', tabindex: '-1' },
    h('h1', { id: 'register-done-title' }, 'Check your mail'),
    h('p', { class: 'notice' }, `Your account is ready. We sent a verification link to ${email}: open it to confirm your address.`),
    status,
    h('div', { class: 'auth-actions' }, resend,
      h('button', { class: 'btn btn-primary', type: 'button', onclick: () => navigate('#/overview') }, 'Continue to the dashboard')));
}
