// SVG chart core, drawn by the app (no chart library, no CDN). Charts are drawn at their container's real width
// (`fitted`: redrawn when it changes), so ticks and labels keep their CSS pixel size from a phone to a wide screen.
//
//   lineChart({ series: [{ name, points: [[x, y]…], class? }], bands: [{ name, lower: [[x,y]…], upper: […] }],
//               x: 'time' | 'number', yFormat: (v) => string, xFormat, height: 240, title })
//     → <div class="chart-host"> holding the <figure> (`.dispose()` stops watching its width)
//   fitted(render, cls) → a host drawing render(width) → element at its real width ({ redraw(), dispose() })
//   scale(domain, range) → f(v) with f.invert ; ticks(min, max, n) → nice tick values
//   tooltip(svg, figure) → { show(html parts, x, y), hide() }   (one per chart)
// Colours come from CSS custom properties (--chart-1 … --chart-4, --grid, --muted) so both themes work.
import { h, s } from './ui.js';

export function scale([d0, d1], [r0, r1]) {
  const span = d1 - d0 || 1;
  const f = (v) => r0 + ((v - d0) / span) * (r1 - r0);
  f.invert = (p) => d0 + ((p - r0) / (r1 - r0)) * span;
  return f;
}

export function ticks(min, max, n = 5) {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (min === max) return [min];
  const raw = (max - min) / Math.max(1, n);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw) || 10 * mag;
  const out = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

export function extent(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return lo === Infinity ? [0, 1] : [lo, hi];
}

/** Time ticks: about n evenly spaced timestamps (ms), labelled by the span. */
export function timeTicks(t0, t1, n = 5) {
  const out = [];
  for (let i = 0; i <= n; i++) out.push(t0 + ((t1 - t0) * i) / n);
  return out;
}

export function timeLabel(t, span) {
  const d = new Date(t);
  if (span > 86400000 * 3) return d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
  if (span > 86400000) return d.toLocaleString(undefined, { weekday: 'short', hour: '2-digit', minute: '2-digit' });
  if (span > 600000) return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function tooltip(figure) {
  const tip = h('div', { class: 'chart-tip', role: 'status', hidden: true });
  figure.append(tip);
  return {
    show(lines, px, py) {
      tip.replaceChildren(...lines.map((l) => h('div', null, l)));
      tip.hidden = false;
      const w = figure.clientWidth;
      tip.style.left = Math.min(Math.max(0, px + 12), Math.max(0, w - tip.offsetWidth)) + 'px';
      tip.style.top = Math.max(0, py - tip.offsetHeight - 8) + 'px';
    },
    hide() { tip.hidden = true; },
  };
}

export const M = { top: 12, right: 64, bottom: 28, left: 12 };

/** A host that draws `render(width)` (→ an element) at its real width once attached, and again whenever that width
 *  changes. `host.redraw()` draws again now (new data), `host.dispose()` stops watching the width. */
export function fitted(render, cls = 'chart-host') {
  const host = h('div', { class: cls });
  let width = 0;
  const draw = () => {
    width = Math.round(host.clientWidth) || width || 800;
    host.replaceChildren(render(width));
  };
  const ro = new ResizeObserver(() => { const w = Math.round(host.clientWidth); if (w && w !== width) draw(); });
  ro.observe(host);
  host.redraw = () => { if (host.isConnected) draw(); };
  host.dispose = () => ro.disconnect();
  queueMicrotask(() => { if (!host.firstChild) draw(); });
  return host;
}

/** The frame shared by charts: svg, plot area, axes; returns { figure, svg, plot, x, y, W, H }. */
export function frame({ width = 800, height = 240, xDomain, yDomain, xTicks, yTicks, xFormat, yFormat, title }) {
  const W = width;
  const H = height;
  const x = scale(xDomain, [M.left, W - M.right]);
  const y = scale(yDomain, [H - M.bottom, M.top]);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title || 'chart'});
  const grid = s('g', { class: 'grid' });
  for (const v of yTicks) {
    grid.append(s('line', { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }));
    grid.append(s('text', { x: W - M.right + 6, y: y(v) + 4, class: 'tick' }, yFormat(v)));
  }
  let previous = null;
  for (const v of xTicks) {
    // Labels at the plot's edges anchor inwards, so the first and last are never clipped; a label equal to the
    // previous one (a span shorter than the format's unit) is not repeated.
    const label = xFormat(v);
    if (label === previous) continue;
    previous = label;
    const px = x(v);
    const anchor = px - M.left < 40 ? 'start' : W - M.right - px < 40 ? 'end' : 'middle';
    grid.append(s('text', { x: px, y: H - 8, class: 'tick', 'text-anchor': anchor }, label));
  }
  svg.append(grid);
  const plot = s('g', { class: 'plot' });
  svg.append(plot);
  const figure = h('figure', { class: 'chart-figure' }, title ? h('figcaption', null, title) : null, svg);
  return { figure, svg, plot, x, y, W, H };
}

/** Points (x in ms or numbers) → SVG path data. */
export function pathOf(points, x, y) {
  let d = '';
  for (const [a, b] of points) if (Number.isFinite(a) && Number.isFinite(b)) d += (d ? 'L' : 'M') + x(a).toFixed(1) + ',' + y(b).toFixed(1);
  return d;
}

export function lineChart(opts) {
  const series = opts.series || [];
  const bands = opts.bands || [];
  const all = series.flatMap((sr) => sr.points).concat(bands.flatMap((b) => b.lower.concat(b.upper)));
  if (all.length === 0) return h('p', { class: 'empty' }, opts.empty || 'Nothing to draw yet.');
  const [x0, x1] = extent(all.map((p) => p[0]));
  let [y0, y1] = extent(all.map((p) => p[1]));
  if (opts.zero) { y0 = Math.min(0, y0); y1 = Math.max(0, y1); }
  const pad = (y1 - y0) * 0.06 || Math.abs(y1) * 0.01 || 1;
  const time = opts.x === 'time';
  const yFormat = opts.yFormat || ((v) => String(+v.toPrecision(6)));
  const xFormat = opts.xFormat || (time ? (t) => timeLabel(t, x1 - x0) : (v) => String(v));
  const yt = ticks(y0 - pad, y1 + pad, 4);
  return fitted((width) => drawLines(opts, series, bands, { x0, x1, y0: y0 - pad, y1: y1 + pad, yt, time, xFormat, yFormat }, width));
}

function drawLines(opts, series, bands, { x0, x1, y0, y1, yt, time, xFormat, yFormat }, width) {
  // About one x label per 110 px.
  const nx = Math.max(2, Math.min(6, Math.floor(width / 110)));
  const f = frame({
    width, height: opts.height || 240, xDomain: [x0, x1], yDomain: [y0, y1],
    xTicks: time ? timeTicks(x0, x1, nx - 1) : ticks(x0, x1, nx), yTicks: yt, xFormat, yFormat, title: opts.title,
  });
  bands.forEach((b, i) => {
    const d = pathOf(b.upper, f.x, f.y) + pathOf([...b.lower].reverse(), f.x, f.y).replace(/^M/, 'L') + 'Z';
    f.plot.append(s('path', { d, class: 'band band-' + (i + 1) }, s('title', null, b.name)));
  });
  series.forEach((sr, i) => {
    f.plot.append(s('path', { d: pathOf(sr.points, f.x, f.y), class: 'line ' + (sr.class || 'line-' + (i + 1)), 'vector-effect': 'non-scaling-stroke' }));
  });
  if (series.length > 1 || bands.length) {
    f.figure.append(h('div', { class: 'legend' }, series.map((sr, i) => h('span', { class: 'key ' + (sr.class || 'line-' + (i + 1)) }, sr.name)),
      bands.map((b, i) => h('span', { class: 'key band-' + (i + 1) }, b.name))));
  }
  // Tooltip: nearest point of the first series under the pointer.
  const tip = tooltip(f.figure);
  const cursor = s('line', { class: 'cursor', y1: M.top, y2: f.H - M.bottom, visibility: 'hidden' });
  f.plot.append(cursor);
  const first = series[0] ? series[0].points : [];
  f.svg.addEventListener('pointermove', (ev) => {
    if (!first.length) return;
    const r = f.svg.getBoundingClientRect();
    const vx = ((ev.clientX - r.left) / r.width) * f.W;
    const xv = f.x.invert(vx);
    let lo = 0;
    let hi = first.length - 1;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (first[mid][0] < xv) lo = mid + 1; else hi = mid; }
    const i = lo > 0 && Math.abs(first[lo - 1][0] - xv) < Math.abs(first[lo][0] - xv) ? lo - 1 : lo;
    const px = f.x(first[i][0]);
    cursor.setAttribute('x1', px); cursor.setAttribute('x2', px); cursor.setAttribute('visibility', 'visible');
    const lines = [time ? new Date(first[i][0]).toLocaleString() : xFormat(first[i][0])];
    for (const sr of series) {
      const p = sr.points[Math.min(i, sr.points.length - 1)];
      if (p) lines.push(`${sr.name}: ${yFormat(p[1])}`);
    }
    tip.show(lines, (px / f.W) * r.width, ((f.y(first[i][1])) / f.H) * r.height);
  });
  f.svg.addEventListener('pointerleave', () => { tip.hide(); cursor.setAttribute('visibility', 'hidden'); });
  return f.figure;
}
