// Small DOM helpers shared by every page. No framework: `h()` builds elements, `panel()` is the error boundary.
//
//   h('button', { class: 'btn', onclick: fn, disabled: true }, 'Place')       → HTMLButtonElement
//   panel({ title: 'Positions', load: (signal) => api(...), render: (data, body, ctx) => {...} })
//       → a <section class="panel"> that loads, shows a spinner, renders; a failing load OR a throwing render
//         shows the error inside this panel with a Retry button — the rest of the page keeps working.
//         The returned element has `.reload()`; `render` may return a cleanup function.
//   toast('Order placed', 'ok' | 'err' | 'info')
//   fmt.money(12.5, 'USD') fmt.price(1.08345, 5) fmt.num(x, 2) fmt.pct(0.1234) fmt.date(iso) fmt.time(iso)
//   field({ label, name, type, value, min, max, step, required, hint, options }) → <label> with input/select
//   countdown(el, seconds, text => …)  (429 Retry-After display)
//   table(columns, rows)  loadCss('/app/pages/x.css')  s('path', {...}) for SVG
import { ApiError } from './api.js';

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'html') throw new Error('h(): no raw HTML');
      else if (v === true) el.setAttribute(k, '');
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** SVG element helper (charts). */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  if (attrs) for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

const cssLoaded = new Map();
/** Loads a page's stylesheet once; resolves when it applies (so the page does not paint unstyled). */
export function loadCss(href) {
  if (!cssLoaded.has(href)) {
    cssLoaded.set(href, new Promise((resolve) => {
      const link = h('link', { rel: 'stylesheet', href });
      link.addEventListener('load', resolve, { once: true });
      link.addEventListener('error', resolve, { once: true });
      document.head.append(link);
    }));
  }
  return cssLoaded.get(href);
}

export function clear(el) { while (el.firstChild) el.firstChild.remove(); return el; }

export function errorText(err) {
  if (err instanceof ApiError) {
    if (err.status === 429 && err.retryAfter) return `${err.message} Try again in ${err.retryAfter} s.`;
    return err.message;
  }
  return (err && err.message) || String(err);
}

/** An inline error box with an optional retry. */
export function errorBox(err, retry) {
  return h('div', { class: 'error-box', role: 'alert' },
    h('p', null, errorText(err)),
    retry ? h('button', { class: 'btn', type: 'button', onclick: retry }, 'Retry') : null);
}

export function spinner(label = 'Loading…') {
  return h('div', { class: 'loading', role: 'status' }, h('span', { class: 'spin', 'aria-hidden': 'true' }), label);
}

/**
 * The error boundary. opts: title, load(signal) → data (optional), render(data, body, ctx) → cleanup?,
 * actions (elements for the header), class, id, empty (text when load returns [] / null).
 */
export function panel(opts) {
  const body = h('div', { class: 'panel-body' });
  const head = opts.title
    ? h('header', { class: 'panel-head' }, h('h2', null, opts.title), h('div', { class: 'panel-actions' }, opts.actions || []))
    : null;
  const el = h('section', { class: 'panel ' + (opts.class || ''), id: opts.id, 'aria-busy': 'false' }, head, body);
  let ctrl = null;
  let cleanup = null;
  let seq = 0;
  const run = async () => {
    const mine = ++seq;
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    if (typeof cleanup === 'function') { try { cleanup(); } catch (_) { /* ignore */ } cleanup = null; }
    el.setAttribute('aria-busy', 'true');
    el.dataset.state = 'loading';
    if (!body.firstChild || el.dataset.loaded !== '1') clear(body).append(spinner());
    try {
      const data = opts.load ? await opts.load(ctrl.signal) : undefined;
      if (mine !== seq) return;
      clear(body);
      if (opts.empty && (data === null || (Array.isArray(data) && data.length === 0))) {
        body.append(h('p', { class: 'empty' }, opts.empty));
      }
      cleanup = opts.render ? opts.render(data, body, { reload: run }) : null;
      el.dataset.state = 'ready';
      el.dataset.loaded = '1';
    } catch (err) {
      if (mine !== seq || (err && err.name === 'AbortError')) return;
      console.error(err);
      clear(body).append(errorBox(err, run));
      el.dataset.state = 'error';
    } finally {
      if (mine === seq) el.setAttribute('aria-busy', 'false');
    }
  };
  el.reload = run;
  el.dispose = () => { if (ctrl) ctrl.abort(); if (typeof cleanup === 'function') cleanup(); };
  queueMicrotask(run);
  return el;
}

let toastHost = null;
export function toast(message, kind = 'info', ms = 5000) {
  if (!toastHost) {
    toastHost = h('div', { class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(toastHost);
  }
  const t = h('div', { class: 'toast toast-' + kind }, message);
  toastHost.append(t);
  setTimeout(() => t.remove(), ms);
  return t;
}

const nf = new Map();
function numberFormat(min, max) {
  const key = min + ':' + max;
  if (!nf.has(key)) nf.set(key, new Intl.NumberFormat(undefined, { minimumFractionDigits: min, maximumFractionDigits: max }));
  return nf.get(key);
}
const toNum = (x) => (typeof x === 'number' ? x : Number(x));

export const fmt = {
  num(x, digits = 2) { const n = toNum(x); return Number.isFinite(n) ? numberFormat(digits, digits).format(n) : '—'; },
  money(x, currency = 'USD') {
    const n = toNum(x);
    if (!Number.isFinite(n)) return '—';
    try { return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(n); } catch (_) { return fmt.num(n) + ' ' + currency; }
  },
  signed(x, digits = 2) { const n = toNum(x); return Number.isFinite(n) ? (n > 0 ? '+' : '') + fmt.num(n, digits) : '—'; },
  price(x, digits = 5) { return fmt.num(x, digits); },
  pct(x, digits = 1) { const n = toNum(x); return Number.isFinite(n) ? fmt.num(n * 100, digits) + ' %' : '—'; },
  date(iso) { const d = new Date(iso); return Number.isNaN(d.getTime()) ? '—' : d.toLocaleString(); },
  time(iso) { const d = new Date(iso); return Number.isNaN(d.getTime()) ? '—' : d.toLocaleTimeString(); },
  /** CSS class for a P/L number. */
  tone(x) { const n = toNum(x); return n > 0 ? 'pos' : n < 0 ? 'neg' : ''; },
};

let fieldSeq = 0;
/** A labelled form control. opts: label, name, type ('text'|'number'|'select'|'checkbox'|'textarea'|…), value,
 *  options ([[value, label]] for select), hint, and any input attribute (min, max, step, required, autocomplete). */
export function field(opts) {
  const { label, type = 'text', options, hint, value, ...attrs } = opts;
  const id = 'f' + ++fieldSeq;
  let control;
  if (type === 'select') {
    control = h('select', { id, ...attrs }, (options || []).map(([v, l]) => h('option', { value: v, selected: String(v) === String(value) }, l)));
  } else if (type === 'textarea') {
    control = h('textarea', { id, ...attrs }, value ?? '');
  } else {
    control = h('input', { id, type, ...attrs, value: type === 'checkbox' ? undefined : value ?? '', checked: type === 'checkbox' ? !!value : undefined });
  }
  const hintEl = hint ? h('small', { class: 'hint', id: id + 'h' }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', id + 'h');
  return h('label', { class: 'field field-' + type, for: id }, h('span', null, label), control, hintEl);
}

/** Shows "text (N s)" in `el` counting down, then calls done(). Returns a cancel function. */
export function countdown(el, seconds, text, done) {
  let left = seconds;
  const tick = () => {
    el.textContent = text(left);
    if (left <= 0) { clearInterval(t); if (done) done(); }
    left -= 1;
  };
  const t = setInterval(tick, 1000);
  tick();
  return () => clearInterval(t);
}

/** A table from rows. columns: [{ label, value: row => node|string, class?, align? }]. */
export function table(columns, rows, opts = {}) {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table ' + (opts.class || '') },
    opts.caption ? h('caption', null, opts.caption) : null,
    h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.align === 'right' ? 'num' : '' }, c.label)))),
    h('tbody', null, rows.map((r) => h('tr', opts.rowAttrs ? opts.rowAttrs(r) : null,
      columns.map((c) => h('td', { class: (c.align === 'right' ? 'num ' : '') + (c.class ? c.class(r) : '') }, c.value(r))))))));
}
