// Candle chart (SVG) on lib/chart.js's frame/scale/ticks/tooltip.
//
//   candleChart({ candles: [{ time, open, high, low, close }…] (oldest first; time ISO or ms),
//                 lines: [{ price, label, kind: 'entry' | 'sl' | 'tp' | 'trail' }], digits: 5, height: 320, title })
//     → <figure class="chart-figure candles">, drawn at its container's real width (redrawn on resize, so text and
//       strokes stay crisp from 360 px to wide screens). Crosshair + tooltip (O/H/L/C, time) under the pointer, and
//       from the keyboard: focus the chart, ←/→ move over the candles, Home/End jump, Esc hides.
//     The element has `.update({ candles?, lines? })` to redraw with new data (live prices, a modified SL).
// Colours come from CSS custom properties (--up, --down, --chart-*, --muted), set through the CSSOM (the strict CSP
// refuses style attributes), so both themes work.
import { h, s } from './ui.js';
import { M, fitted, frame, extent, ticks, tooltip, timeLabel } from './chart.js';

const LINE_COLOUR = { entry: 'var(--chart-1)', sl: 'var(--down)', tp: 'var(--up)', trail: 'var(--chart-4)' };

/** Colours through the CSSOM (allowed by the strict style-src CSP, unlike style attributes). */
function paint(el, props) { for (const [k, v] of Object.entries(props)) el.style.setProperty(k, v); return el; }

function toMs(t) { return typeof t === 'number' ? (t < 1e12 ? t * 1000 : t) : Date.parse(t); }

export function candleChart(opts) {
  let series = [];
  let lines = opts.lines || [];
  const digits = opts.digits ?? 5;
  const height = opts.height || 320;

  const setCandles = (list) => {
    series = (list || []).map((c) => ({ t: toMs(c.time ?? c.timestamp), o: +c.open, h: +c.high, l: +c.low, c: +c.close }))
      .filter((c) => Number.isFinite(c.t) && [c.o, c.h, c.l, c.c].every(Number.isFinite));
  };
  setCandles(opts.candles);

  function render(width) {
    if (!series.length) return h('p', { class: 'empty' }, opts.empty || 'No candles to draw.');
    // At least 3 px per bar: a narrow screen shows the newest bars only.
    const fit = Math.max(10, Math.floor((width - M.left - M.right) / 3));
    const candles = series.length > fit ? series.slice(series.length - fit) : series;
    const n = candles.length;
    const prices = candles.flatMap((c) => [c.h, c.l]).concat(lines.map((l) => +l.price).filter((p) => Number.isFinite(p) && p > 0));
    let [y0, y1] = extent(prices);
    const pad = (y1 - y0) * 0.06 || Math.abs(y1) * 0.001 || 1;
    y0 -= pad; y1 += pad;
    const yt = ticks(y0, y1, Math.max(3, Math.round(height / 60)));
    const span = candles[n - 1].t - candles[0].t;
    const xCount = Math.max(2, Math.min(6, Math.floor(width / 110)));
    const xt = [];
    for (let i = 0; i < xCount; i++) xt.push(Math.round(((n - 1) * (i + 0.5)) / xCount));
    const f = frame({
      width, height, xDomain: [-0.5, n - 0.5], yDomain: [y0, y1], xTicks: [...new Set(xt)], yTicks: yt,
      xFormat: (i) => timeLabel(candles[Math.min(n - 1, Math.max(0, Math.round(i)))].t, span),
      yFormat: (v) => v.toFixed(digits), title: opts.title,
    });
    f.figure.classList.add('candles');
    f.svg.setAttribute('tabindex', '0');
    f.svg.setAttribute('aria-label', `${opts.title || 'Candles'}: ${n} bars, last close ${candles[n - 1].c.toFixed(digits)}. Use the arrow keys to read the bars.`);
    const slot = (f.x(1) - f.x(0));
    const bodyW = Math.max(1, Math.min(14, Math.floor(slot * 0.7)));
    const wicks = s('g', { 'shape-rendering': 'crispEdges' });
    for (let i = 0; i < n; i++) {
      const c = candles[i];
      const up = c.c >= c.o;
      const colour = up ? 'var(--up)' : 'var(--down)';
      const cx = Math.round(f.x(i)) + 0.5;
      const top = Math.round(f.y(Math.max(c.o, c.c)));
      const bot = Math.round(f.y(Math.min(c.o, c.c)));
      wicks.append(paint(s('line', { x1: cx, x2: cx, y1: Math.round(f.y(c.h)), y2: Math.round(f.y(c.l)), class: 'wick' }), { stroke: colour }));
      wicks.append(paint(s('rect', {
        x: Math.round(cx - bodyW / 2), y: top, width: bodyW, height: Math.max(1, bot - top),
        class: up ? 'candle up' : 'candle down',
      }), { fill: colour, stroke: colour }));
    }
    f.plot.append(wicks);
    // Horizontal lines (entry / SL / TP / trailing) with a label tag in the price axis.
    const lg = s('g', { class: 'levels' });
    for (const l of lines) {
      const p = +l.price;
      if (!Number.isFinite(p) || p <= 0) continue;
      const y = Math.round(f.y(p)) + 0.5;
      const colour = LINE_COLOUR[l.kind] || 'var(--muted)';
      lg.append(paint(s('line', { x1: M.left, x2: f.W - M.right, y1: y, y2: y, 'stroke-dasharray': l.kind === 'entry' ? null : '6 4', 'stroke-width': 1.5, class: 'level level-' + (l.kind || 'x') }), { stroke: colour }));
      const text = `${l.label} ${p.toFixed(digits)}`;
      const tw = Math.round(6.6 * text.length + 10);
      lg.append(paint(s('rect', { x: f.W - M.right - tw, y: y - 9, width: tw, height: 18, rx: 3 }), { fill: colour }));
      lg.append(paint(s('text', { x: f.W - M.right - 5, y: y + 4, 'text-anchor': 'end', class: 'level-label', 'font-size': 11, 'font-weight': 600 }, text), { fill: 'var(--card)' }));
    }
    f.plot.append(lg);
    // Crosshair + tooltip.
    const tip = tooltip(f.figure);
    const vx = s('line', { class: 'cursor', y1: M.top, y2: f.H - M.bottom, visibility: 'hidden' });
    const hy = s('line', { class: 'cursor', x1: M.left, x2: f.W - M.right, visibility: 'hidden' });
    f.plot.append(vx, hy);
    let at = -1;
    const show = (i, py) => {
      at = Math.max(0, Math.min(n - 1, i));
      const c = candles[at];
      const px = Math.round(f.x(at)) + 0.5;
      const yy = py ?? f.y(c.c);
      vx.setAttribute('x1', px); vx.setAttribute('x2', px); vx.setAttribute('visibility', 'visible');
      hy.setAttribute('y1', yy); hy.setAttribute('y2', yy); hy.setAttribute('visibility', 'visible');
      const r = f.svg.getBoundingClientRect();
      const k = r.width / f.W || 1;
      tip.show([new Date(c.t).toLocaleString(), `O ${c.o.toFixed(digits)}  H ${c.h.toFixed(digits)}`,
        `L ${c.l.toFixed(digits)}  C ${c.c.toFixed(digits)}`, `Cursor ${f.y.invert(yy).toFixed(digits)}`], px * k, yy * k);
    };
    const hide = () => { tip.hide(); vx.setAttribute('visibility', 'hidden'); hy.setAttribute('visibility', 'hidden'); };
    f.svg.addEventListener('pointermove', (ev) => {
      const r = f.svg.getBoundingClientRect();
      const k = f.W / r.width;
      const py = Math.min(f.H - M.bottom, Math.max(M.top, (ev.clientY - r.top) * k));
      show(Math.round(f.x.invert((ev.clientX - r.left) * k)), py);
    });
    f.svg.addEventListener('pointerleave', hide);
    f.svg.addEventListener('blur', hide);
    f.svg.addEventListener('keydown', (ev) => {
      const step = { ArrowLeft: -1, ArrowRight: 1 }[ev.key];
      if (step) show((at < 0 ? n - 1 : at + step));
      else if (ev.key === 'Home') show(0);
      else if (ev.key === 'End') show(n - 1);
      else if (ev.key === 'Escape') hide();
      else return;
      ev.preventDefault();
    });
    return f.figure;
  }

  // Drawn once attached (its width is known then) and again whenever the width changes.
  const host = fitted(render, 'candles-host');
  host.update = (next = {}) => {
    if (next.candles) setCandles(next.candles);
    if (next.lines) lines = next.lines;
    host.redraw();
  };
  return host;
}
