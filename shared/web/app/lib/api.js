// The REST client. `api(path, opts)` → parsed JSON (or null for 204); throws `ApiError` with the server's
// `detail` as a readable message, the status, and `retryAfter` seconds on 429/503.
//
//   api('/api/v1/trading/positions')
//   api('/api/v1/trading/orders', { method: 'POST', body: {...}, idempotencyKey: key })
//   api('/api/v1/trading/history', { query: { limit: 20, cursor }, raw: true })  → { data, headers, status }
//
// A 401 refreshes the token pair once (one refresh in flight for all callers) and retries; a failed refresh
// signs out. Same origin always: locally the gateway, in AWS CloudFront in front of the API and the bucket.
import { session } from './session.js';

export class ApiError extends Error {
  constructor(status, message, { detail = null, retryAfter = 0 } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }
}

const sentence = (s) => (s && !/[.!?…]$/.test(s) ? s + '.' : s);

/** The server's `detail` (a string, or FastAPI-style `[{loc, msg}]`) as one readable sentence. */
export function detailText(body) {
  const d = body && body.detail;
  if (typeof d === 'string') return sentence(d.trim());
  if (Array.isArray(d)) {
    return d.map((e) => {
      if (!e || typeof e.msg !== 'string') return '';
      const field = Array.isArray(e.loc) ? e.loc.filter((p) => p !== 'body').join('.') : '';
      const msg = sentence(e.msg.replace(/^Value error, /, '').trim());
      return field ? `${field}: ${msg}` : msg;
    }).filter(Boolean).join(' ');
  }
  return '';
}

function retryAfterOf(res, body) {
  const h = res.headers.get('Retry-After');
  let s = h === null ? NaN : Number(h);
  if (h !== null && !Number.isFinite(s)) s = (Date.parse(h) - Date.now()) / 1000;
  if (!Number.isFinite(s) && body && Number.isFinite(body.retry_after)) s = body.retry_after;
  return Number.isFinite(s) ? Math.min(Math.max(Math.ceil(s), 1), 86400) : 0;
}

/** A fresh key for `Idempotency-Key` (one per user intent; reuse it for retries of the same intent). */
export function idempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

let refreshing = null;

async function refresh() {
  const token = session.refreshToken;
  if (!token) return false;
  if (!refreshing) {
    refreshing = (async () => {
      try {
        const res = await fetch('/api/v1/auth/refresh', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
          body: JSON.stringify({ refresh_token: token }),
          cache: 'no-store',
        });
        if (!res.ok) return false;
        session.set(await res.json());
        return true;
      } catch (_) {
        return false;
      } finally {
        setTimeout(() => { refreshing = null; }, 0);
      }
    })();
  }
  return refreshing;
}

const TIMEOUT_MS = 30000;

/**
 * opts: method ('GET'), body (JSON-encoded unless FormData/Blob/string), query (object, undefined/null skipped),
 * headers, idempotencyKey, signal, auth (true), raw (false: return the body; true: {data, headers, status}),
 * timeout (ms, 30 s).
 */
export async function api(path, opts = {}) {
  const { method = 'GET', body, query, headers = {}, idempotencyKey: key, signal, auth = true, raw = false } = opts;
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
    const s = q.toString();
    if (s) url += (url.includes('?') ? '&' : '?') + s;
  }
  const send = async () => {
    const h = { Accept: 'application/json', ...headers };
    let payload = body;
    if (body !== undefined && !(body instanceof FormData) && !(body instanceof Blob) && typeof body !== 'string') {
      h['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    if (auth && session.accessToken) h.Authorization = 'Bearer ' + session.accessToken;
    if (key) h['Idempotency-Key'] = key;
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), opts.timeout || TIMEOUT_MS);
    const onAbort = () => ctrl.abort();
    if (signal) signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await fetch(url, { method, headers: h, body: payload, signal: ctrl.signal, cache: 'no-store' });
    } catch (e) {
      if (signal && signal.aborted) throw e;
      throw new ApiError(0, ctrl.signal.aborted ? 'The server took too long to answer.' : 'The server cannot be reached.');
    } finally {
      clearTimeout(timer);
      if (signal) signal.removeEventListener('abort', onAbort);
    }
  };
  let res = await send();
  if (res.status === 401 && auth && session.signedIn) {
    if (await refresh()) {
      res = await send();
    }
    if (res.status === 401) {
      session.clear();
    }
  }
  let data = null;
  const text = res.status === 204 ? '' : await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch (_) { data = text; }
  }
  if (!res.ok) {
    const message = detailText(data) || `The request failed (HTTP ${res.status}).`;
    throw new ApiError(res.status, message, { detail: data && data.detail, retryAfter: retryAfterOf(res, data) });
  }
  return raw ? { data, headers: res.headers, status: res.status } : data;
}
