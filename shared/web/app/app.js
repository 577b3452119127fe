// The shell: hash router, navigation, theme, the link banner, sign-out.
//
// A page is `pages/<name>.js` exporting `default async function mount(root, ctx)`; its own styles, if any, in
// `pages/<name>.css`, loaded by the page with `loadCss('/app/pages/<name>.css')` (lib/ui.js).
// ctx = { api, socket, session, navigate(hash), params (URLSearchParams of the hash's query: #/trading?symbol=EURUSD), onCleanup(fn), signal (aborted on leave) }.
// A page that throws while mounting shows its error with a Retry in the view; the shell keeps working.
import { api, ApiError } from './lib/api.js';
import { session } from './lib/session.js';
import { socket } from './lib/socket.js';
import { h, clear, errorBox, spinner } from './lib/ui.js';

export const ROUTES = [
  { path: 'login', title: 'Sign in', page: 'login', public: true },
  { path: 'register', title: 'Create account', page: 'register', public: true },
  { path: 'forgot', title: 'Reset password', page: 'forgot', public: true },
  { path: 'overview', title: 'Overview', page: 'overview', nav: true },
  { path: 'trading', title: 'Trading', page: 'trading', nav: true },
  { path: 'connections', title: 'Connections', page: 'connections', nav: true },
  { path: 'bots', title: 'Bots & models', page: 'bots', nav: true },
  { path: 'strategies', title: 'Strategies', page: 'strategies', nav: true },
  { path: 'backtest', title: 'Backtest', page: 'backtest', nav: true },
  { path: 'ai', title: 'AI supervisor', page: 'ai', nav: true },
  { path: 'security', title: 'Security', page: 'security', nav: true },
  { path: 'settings', title: 'Settings', page: 'settings', nav: true },
  { path: 'admin', title: 'Admin', page: 'admin', nav: true, admin: true },
];

const view = document.getElementById('view');
const nav = document.getElementById('nav');
const banner = document.getElementById('link');
const themeBtn = document.getElementById('theme');
const signoutBtn = document.getElementById('signout');

// ---- theme -------------------------------------------------------------------------------------------------
const media = matchMedia('(prefers-color-scheme: dark)');
function effectiveTheme() { return document.documentElement.dataset.theme || (media.matches ? 'dark' : 'light'); }
function paintThemeButton() {
  const next = effectiveTheme() === 'dark' ? 'light' : 'dark';
  themeBtn.textContent = next === 'dark' ? '☾ Dark' : '☀ Light';
  themeBtn.setAttribute('aria-label', `Switch to ${next} theme`);
  themeBtn.dataset.theme = effectiveTheme();
}
themeBtn.addEventListener('click', () => {
  const next = effectiveTheme() === 'dark' ? 'light' : 'dark';
  document.documentElement.dataset.theme = next;
  try { localStorage.setItem('nt.theme', next); } catch (_) { /* ignore */ }
  paintThemeButton();
});
media.addEventListener('change', paintThemeButton);
paintThemeButton();

// ---- link banner -------------------------------------------------------------------------------------------
socket.onStatus((st) => {
  banner.dataset.state = st.state;
  if (!session.signedIn || st.state === 'connected') { banner.hidden = true; return; }
  banner.hidden = false;
  banner.textContent = st.state === 'reconnecting'
    ? (st.retryIn > 0 ? `Live updates lost — reconnecting in ${st.retryIn} s…` : 'Live updates lost — reconnecting…')
    : st.state === 'connecting' ? 'Connecting live updates…' : 'Offline — live updates paused.';
});

// ---- navigation --------------------------------------------------------------------------------------------
function paintNav(current) {
  const user = session.user;
  const isAdmin = !!(user && (user.role === 'admin' || user.is_admin));
  nav.hidden = !session.signedIn;
  signoutBtn.hidden = !session.signedIn;
  clear(nav).append(h('ul', null, ROUTES.filter((r) => r.nav && (!r.admin || isAdmin)).map((r) =>
    h('li', null, h('a', { href: '#/' + r.path, 'aria-current': r.path === current ? 'page' : undefined }, r.title)))));
}

signoutBtn.addEventListener('click', async () => {
  signoutBtn.disabled = true;
  try { await api('/api/v1/auth/logout', { method: 'POST', body: { refresh_token: session.refreshToken } }); } catch (_) { /* signed out anyway */ }
  signoutBtn.disabled = false;
  session.clear();
});

export function navigate(hash) { if (location.hash !== hash) location.hash = hash; else route(); }

// ---- router ------------------------------------------------------------------------------------------------
let leave = null;
let mounting = 0;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = raw.split('?');
  return { path: path || '', params: new URLSearchParams(query) };
}

async function route() {
  const { path, params } = parseHash();
  let r = ROUTES.find((x) => x.path === path);
  if (!r) { navigate(session.signedIn ? '#/overview' : '#/login'); return; }
  if (!r.public && !session.signedIn) { navigate('#/login?next=' + encodeURIComponent(path)); return; }
  if (r.public && session.signedIn && path !== 'forgot') { navigate('#/overview'); return; }
  if (leave) { const f = leave; leave = null; f(); }
  const mine = ++mounting;
  const cleanups = [];
  const ctrl = new AbortController();
  leave = () => { ctrl.abort(); for (const f of cleanups.reverse()) { try { f(); } catch (e) { console.error(e); } } };
  document.title = `${r.title} · NusaTrade`;
  paintNav(r.path);
  document.body.dataset.page = r.page;
  const root = h('div', { class: 'page page-' + r.page });
  clear(view).append(spinner());
  const mount = async () => {
    clear(root);
    try {
      const mod = await import(`./pages/${r.page}.js`);
      if (mine !== mounting) return;
      clear(view).append(root);
      await mod.default(root, { api, socket, session, navigate, params, signal: ctrl.signal, onCleanup: (f) => cleanups.push(f) });
    } catch (err) {
      if (mine !== mounting) return;
      console.error(err);
      clear(view).append(h('div', { class: 'page' }, h('h1', null, r.title), errorBox(err, mount)));
    }
  };
  await mount();
  if (mine === mounting && document.activeElement === document.body) view.focus({ preventScroll: true });
}

window.addEventListener('hashchange', route);

// Signed in or out (here or in another tab): start/stop the socket, go where it makes sense.
let wasSignedIn = session.signedIn;
session.on('change', () => {
  paintNav(parseHash().path);
  if (session.signedIn && !wasSignedIn) {
    socket.start();
  } else if (!session.signedIn && wasSignedIn) {
    socket.stop();
    navigate('#/login');
  }
  wasSignedIn = session.signedIn;
});

// A revoked session (logout elsewhere, "revoke others", password reset) closes our socket; the refresh that
// follows fails and signs us out. Check on every reconnect attempt, too.
async function boot() {
  if (session.signedIn) {
    socket.start();
    api('/api/v1/auth/me').then((me) => session.setUser(me)).catch((e) => {
      if (!(e instanceof ApiError) || e.status !== 401) console.warn('auth/me failed', e);
    });
  }
  await route();
}
boot();
