// The signed-in session: the token pair and the user, kept in localStorage under `nt.session` so a reload or a
// second tab stays signed in. Tokens are never logged or put in URLs (except the WebSocket's `?token=`, which is
// the documented handshake). `session.on('change', fn)` fires on sign-in/out (also from another tab).
const KEY = 'nt.session';
const listeners = new Set();

function read() {
  try {
    const v = JSON.parse(localStorage.getItem(KEY) || 'null');
    return v && typeof v.access_token === 'string' ? v : null;
  } catch (_) {
    return null;
  }
}

let current = read();

function emit() {
  for (const fn of listeners) {
    try { fn(current); } catch (e) { console.error(e); }
  }
}

window.addEventListener('storage', (e) => {
  if (e.key === KEY) { current = read(); emit(); }
});

export const session = {
  /** The stored session `{access_token, refresh_token, user}` or null. */
  get value() { return current; },
  get signedIn() { return current !== null; },
  get user() { return current ? current.user || null : null; },
  get accessToken() { return current ? current.access_token : null; },
  get refreshToken() { return current ? current.refresh_token || null : null; },
  /** Stores a token pair answer (`{access_token, refresh_token, user?}`); keeps the known user if absent. */
  set(tokens) {
    const user = tokens.user || (current && current.user) || null;
    current = { access_token: tokens.access_token, refresh_token: tokens.refresh_token || null, user };
    try { localStorage.setItem(KEY, JSON.stringify(current)); } catch (_) { /* private mode: memory only */ }
    emit();
  },
  setUser(user) {
    if (!current) return;
    current = { ...current, user };
    try { localStorage.setItem(KEY, JSON.stringify(current)); } catch (_) { /* ignore */ }
    emit();
  },
  /** Forgets the session locally (the caller revokes it on the server first when it can). */
  clear() {
    if (current === null) return;
    current = null;
    try { localStorage.removeItem(KEY); } catch (_) { /* ignore */ }
    emit();
  },
  on(event, fn) {
    if (event !== 'change') throw new Error('session.on: unknown event ' + event);
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
};
