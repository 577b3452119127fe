// The dashboard socket (`/connector/client?token=…`, the same one the original dashboard opens).
//
//   socket.on('POSITION_UPDATE', (msg) => …)   → unsubscribe function; '*' receives every message
//   socket.onStatus(({state, retryIn, attempt}) => …)   state: 'connecting' | 'connected' | 'reconnecting' | 'offline'
//   socket.onResync(() => …)   fired after a RE-connect: refetch what may have been missed meanwhile
//   socket.send({type: 'GET_CONNECTIONS_STATUS'})
//
// Reconnects with exponential backoff (1 s doubling to 30 s) and full jitter; `offline` while the browser says so
// (and reconnects at once when it comes back). The token is read at every dial, so a refreshed token is used.
import { session } from './session.js';
import { api } from './api.js';

const listeners = new Map();
const statusListeners = new Set();
const resyncListeners = new Set();
let ws = null;
let status = { state: 'offline', retryIn: 0, attempt: 0 };
let attempt = 0;
let timer = null;
let countdown = null;
let pinger = null;
let wanted = false;
let everConnected = false;

function setStatus(next) {
  status = { ...status, ...next };
  for (const fn of statusListeners) {
    try { fn(status); } catch (e) { console.error(e); }
  }
}

function dispatch(msg) {
  for (const key of [msg.type, '*']) {
    const set = listeners.get(key);
    if (!set) continue;
    for (const fn of set) {
      try { fn(msg); } catch (e) { console.error(e); }
    }
  }
}

function url() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}/connector/client?token=${encodeURIComponent(session.accessToken || '')}`;
}

function clearTimers() {
  clearTimeout(timer);
  clearInterval(countdown);
  clearInterval(pinger);
  timer = countdown = pinger = null;
}

async function dial() {
  clearTimers();
  if (!wanted || !session.signedIn) return;
  if (!navigator.onLine) { setStatus({ state: 'offline', retryIn: 0 }); return; }
  setStatus({ state: attempt === 0 && !everConnected ? 'connecting' : 'reconnecting', retryIn: 0, attempt });
  // An expired access token would be refused at the handshake: a cheap authenticated call refreshes it first.
  if (attempt > 0) {
    try { await api('/api/v1/auth/me'); } catch (_) { /* the dial below reports the failure */ }
    if (!wanted || !session.signedIn) return;
  }
  const sock = new WebSocket(url());
  ws = sock;
  sock.onopen = () => {
    if (ws !== sock) return;
    const again = everConnected;
    attempt = 0;
    everConnected = true;
    setStatus({ state: 'connected', retryIn: 0, attempt: 0 });
    pinger = setInterval(() => send({ type: 'PING', timestamp: new Date().toISOString() }), 25000);
    if (again) for (const fn of resyncListeners) { try { fn(); } catch (e) { console.error(e); } }
  };
  sock.onmessage = (ev) => {
    if (ws !== sock) return;
    let msg;
    try { msg = JSON.parse(ev.data); } catch (_) { return; }
    if (msg && typeof msg.type === 'string') dispatch(msg);
  };
  sock.onclose = () => {
    if (ws !== sock) return;
    ws = null;
    clearTimers();
    if (wanted && session.signedIn) schedule();
    else setStatus({ state: 'offline', retryIn: 0 });
  };
}

function schedule() {
  attempt += 1;
  const cap = Math.min(30000, 1000 * 2 ** Math.min(attempt - 1, 5));
  const delay = Math.max(500, Math.round(Math.random() * cap));
  const due = Date.now() + delay;
  setStatus({ state: 'reconnecting', retryIn: Math.ceil(delay / 1000), attempt });
  countdown = setInterval(() => setStatus({ retryIn: Math.max(0, Math.ceil((due - Date.now()) / 1000)) }), 1000);
  timer = setTimeout(dial, delay);
}

function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(msg)); return true; }
  return false;
}

window.addEventListener('online', () => { if (wanted && !ws) { attempt = 0; dial(); } });
window.addEventListener('offline', () => { if (!ws) { clearTimers(); setStatus({ state: 'offline', retryIn: 0 }); } });

export const socket = {
  get status() { return status; },
  /** Opens the socket (idempotent). */
  start() { wanted = true; if (!ws && !timer) dial(); },
  /** Closes it and stops reconnecting (sign-out). */
  stop() {
    wanted = false; everConnected = false; attempt = 0; clearTimers();
    if (ws) { const s = ws; ws = null; s.close(1000); }
    setStatus({ state: 'offline', retryIn: 0, attempt: 0 });
  },
  /** Drops the link on purpose (tests, "reconnect now"): it reconnects with the usual backoff. */
  reconnectNow() { attempt = 0; clearTimers(); if (ws) ws.close(4000); else dial(); },
  send,
  on(type, fn) {
    if (!listeners.has(type)) listeners.set(type, new Set());
    listeners.get(type).add(fn);
    return () => listeners.get(type).delete(fn);
  },
  onStatus(fn) { statusListeners.add(fn); fn(status); return () => statusListeners.delete(fn); },
  onResync(fn) { resyncListeners.add(fn); return () => resyncListeners.delete(fn); },
};
