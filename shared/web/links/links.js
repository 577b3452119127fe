// Mailed-link pages: /verify-email and /reset-password (see <body data-page>).
// The token is read once, removed from the address bar and kept only in this closure; it is never logged.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const stateEl = $('state');
  const messageEl = $('message');
  const hintEl = $('hint');
  const home = $('home');

  // What happened to a link opened earlier in this tab (history.state holds a marker, never the token).
  const previous = history.state && typeof history.state.link === 'string' ? history.state.link : null;
  const mark = (link) => { try { history.replaceState({ link }, ''); } catch (_) { /* ignore */ } };

  function takeToken() {
    const params = new URLSearchParams(location.search);
    if (!params.has('token')) return null;
    const token = (params.get('token') || '').trim();
    params.delete('token');
    const query = params.toString();
    try {
      history.replaceState({ link: 'opened' }, '', location.pathname + (query ? '?' + query : '') + location.hash);
    } catch (_) { /* ignore */ }
    return token || null;
  }

  function show(state, message, hint) {
    const urgent = state === 'error' || state === 'missing';
    stateEl.setAttribute('role', urgent ? 'alert' : 'status');
    stateEl.setAttribute('aria-live', urgent ? 'assertive' : 'polite');
    stateEl.dataset.state = state;
    messageEl.textContent = message || '';
    hintEl.textContent = hint || '';
    hintEl.hidden = !hint;
  }

  const sentence = (s) => (s && !/[.!?…]$/.test(s) ? s + '.' : s);

  function detailText(data) {
    const d = data && data.detail;
    if (typeof d === 'string') return sentence(d.trim());
    if (Array.isArray(d)) {
      return d
        .map((e) => (e && typeof e.msg === 'string' ? sentence(e.msg.replace(/^Value error, /, '').trim()) : ''))
        .filter(Boolean)
        .join(' ');
    }
    return '';
  }

  function retryAfter(res, data) {
    const h = res.headers.get('Retry-After');
    let s = h === null ? NaN : Number(h);
    if (h !== null && !Number.isFinite(s)) s = (Date.parse(h) - Date.now()) / 1000;
    if (!Number.isFinite(s) && data && Number.isFinite(data.retry_after)) s = data.retry_after;
    return Number.isFinite(s) ? Math.min(Math.max(Math.ceil(s), 1), 3600) : 0;
  }

  async function post(path, body) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), 20000);
    try {
      const res = await fetch(path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(body),
        cache: 'no-store',
        credentials: 'same-origin',
        referrerPolicy: 'no-referrer',
        signal: ctrl.signal,
      });
      let data = null;
      try { data = await res.json(); } catch (_) { /* not JSON */ }
      return { ok: res.ok, status: res.status, data, wait: res.status === 429 ? retryAfter(res, data) : 0 };
    } catch (_) {
      return { ok: false, status: 0, data: null, wait: 0 };
    } finally {
      clearTimeout(timer);
    }
  }

  const waitText = (s) =>
    !s ? 'Please wait a moment and try again.'
      : s < 90 ? `Please wait ${s} second${s === 1 ? '' : 's'} and try again.`
        : `Please wait about ${Math.ceil(s / 60)} minutes and try again.`;

  // Failures worth retrying with the same token: nothing was decided about it.
  function transient(r) {
    if (r.status === 0) return 'We could not reach NusaTrade. Check your internet connection and try again.';
    if (r.status === 429) return (detailText(r.data) || 'Too many attempts.') + ' ' + waitText(r.wait);
    if (r.status >= 500) return (detailText(r.data) || `The server had a problem (HTTP ${r.status}).`) + ' Please try again in a moment.';
    return null;
  }

  const REOPENED = 'This link was already opened in this tab, and its code was removed from the address for your security. To try again, open the link from your e-mail once more.';

  function verifyPage() {
    const retry = $('retry');
    const NEW_LINK = 'If your address is not verified yet, sign in and request a new verification link from your dashboard.';
    const SUCCESS = 'Your e-mail address is verified. You can sign in now.';
    const token = takeToken();
    if (!token) {
      home.hidden = false;
      if (previous === 'verified') show('success', SUCCESS);
      else if (previous) show('missing', REOPENED, NEW_LINK);
      else show('missing', 'This link is incomplete: the verification code is missing. Open the link from your e-mail again, or copy the complete address into your browser.', NEW_LINK);
      return;
    }
    let busy = false;
    let timer = 0;
    async function run() {
      if (busy) return;
      busy = true;
      if (document.activeElement === retry) messageEl.focus();
      retry.hidden = true;
      show('loading', 'Verifying…');
      const r = await post('/api/v1/auth/verify-email', { token });
      busy = false;
      home.hidden = false;
      if (r.ok) {
        mark('verified');
        show('success', SUCCESS);
        return;
      }
      const again = transient(r);
      if (again) {
        show('error', again);
        retry.hidden = false;
        if (r.wait) {
          retry.disabled = true;
          clearTimeout(timer);
          timer = setTimeout(() => { retry.disabled = false; }, r.wait * 1000);
        }
        return;
      }
      mark('failed');
      show('error', detailText(r.data) || `The link could not be verified (HTTP ${r.status}).`, NEW_LINK);
    }
    retry.addEventListener('click', run);
    run();
  }

  const SPECIAL = '!@#$%^&*()_+-=[]{}|;:,.<>?';
  const list = (a) => (a.length < 2 ? a.join('') : a.slice(0, -1).join(', ') + ' and ' + a[a.length - 1]);

  // Mirrors the server's policy (shared/domain/src/auth.rs): lengths in code points, Unicode case.
  function policyError(p) {
    if (!p) return 'Enter a new password.';
    const chars = Array.from(p);
    if (chars.length < 8) return 'Password must be at least 8 characters long.';
    if (chars.length > 128) return 'Password must be at most 128 characters long.';
    const missing = [];
    if (!/\p{Uppercase}/u.test(p)) missing.push('one uppercase letter');
    if (!/\p{Lowercase}/u.test(p)) missing.push('one lowercase letter');
    if (!/[0-9]/.test(p)) missing.push('one digit');
    if (!chars.some((c) => SPECIAL.includes(c))) missing.push('one special character');
    return missing.length ? `Password must contain at least ${list(missing)}.` : '';
  }

  function resetPage() {
    const form = $('reset-form');
    const pw = $('new-password');
    const confirm = $('confirm-password');
    const submit = $('submit');
    const NEW_LINK = 'You can ask for a new link with “Forgot password?” on the sign-in page.';
    const SUCCESS = 'Your password has been changed. All your sessions were signed out; sign in with the new password.';
    let token = takeToken();
    if (!token) {
      home.hidden = false;
      if (previous === 'reset') show('success', SUCCESS);
      else if (previous) show('missing', REOPENED, NEW_LINK);
      else show('missing', 'This link is incomplete: the reset code is missing. Open the link from your e-mail again, or copy the complete address into your browser.', NEW_LINK);
      return;
    }
    form.hidden = false;

    const fieldError = (input, text) => {
      $(input.id + '-error').textContent = text;
      if (text) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    };
    for (const input of [pw, confirm]) input.addEventListener('input', () => fieldError(input, ''));
    $('show-passwords').addEventListener('change', (e) => {
      const type = e.target.checked ? 'text' : 'password';
      pw.type = type;
      confirm.type = type;
    });

    const finish = (state, message, hint) => {
      token = null;
      pw.value = '';
      confirm.value = '';
      form.hidden = true;
      home.hidden = false;
      show(state, message, hint);
      messageEl.focus();
    };

    let busy = false;
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (busy || !token) return;
      const p = pw.value;
      const c = confirm.value;
      fieldError(pw, policyError(p));
      fieldError(confirm, !c ? 'Repeat the new password.' : c !== p ? 'The two passwords do not match.' : '');
      const first = [pw, confirm].find((i) => i.getAttribute('aria-invalid') === 'true');
      if (first) {
        show('idle', '');
        first.focus();
        return;
      }
      busy = true;
      // a disabled button drops the focus: keep it on the status text instead
      if (document.activeElement === submit) messageEl.focus();
      submit.disabled = true;
      form.setAttribute('aria-busy', 'true');
      show('loading', 'Changing your password…');
      const r = await post('/api/v1/auth/reset-password', { token, new_password: p });
      busy = false;
      submit.disabled = false;
      form.removeAttribute('aria-busy');
      if (r.ok) {
        mark('reset');
        finish('success', SUCCESS);
        return;
      }
      const again = transient(r);
      if (again) {
        show('error', again);
        return;
      }
      const text = detailText(r.data) || `The password could not be changed (HTTP ${r.status}).`;
      const d = r.data && r.data.detail;
      const locs = Array.isArray(d) ? d.map((e) => (e && Array.isArray(e.loc) ? e.loc : [])) : [];
      const aboutPassword = locs.some((l) => l.includes('new_password')) || (typeof d === 'string' && /^password\b/i.test(d.trim()));
      const aboutToken = r.status === 400 || locs.some((l) => l.includes('token'));
      if (aboutPassword) {
        show('error', text);
        fieldError(pw, text);
        pw.focus();
      } else if (aboutToken) {
        mark('failed');
        finish('error', text, NEW_LINK);
      } else {
        show('error', text);
      }
    });
  }

  if (document.body.dataset.page === 'verify') verifyPage();
  else if (document.body.dataset.page === 'reset') resetPage();
})();
