// The optimizer heatmap: an SVG grid of one objective over two parameters, drawn by the app (no library).
//
//   heatmap({ x: 'fast', y: 'slow', xValues: [5, 10], yValues: [20, 40], values: [v | null, …] (row-major:
//             values[row * xValues.length + col], row = y index — the API's `heatmap` object as it comes),
//             metric: 'net_profit', format: (v) => string, title })
//     → <div> holding the grid's <figure> (drawn at its real width, `fitted`), its legend and the table
//   heatmapFromApi(apiHeatmap, metric, format)  → the same from GET /backtest/optimize/{id}'s `heatmap`
//
// Colours come from CSS custom properties, so both themes read: a diverging scale (--neg … --card … --pos) when the
// values straddle zero, else a sequential one (--card … --chart-1), mixed with `color-mix()`. Cells are keyboard
// focusable (one tab stop, arrow keys move — a roving tabindex), each has an aria-label with both parameter values and
// the metric, and hovering or focusing shows the tooltip; a table of the same numbers follows in a <details>.
import { h, s } from './ui.js';
import { fitted, tooltip } from './chart.js';

const num = (v) => String(+(+v).toPrecision(6));

export function heatmapFromApi(hm, metric, format) {
  return heatmap({ x: hm.x, y: hm.y, xValues: hm.x_values || [], yValues: hm.y_values || [], values: hm.values || [], metric, format });
}

export function heatmap(opts) {
  const { x, y, xValues, yValues, values } = opts;
  const metric = opts.metric || 'objective';
  const format = opts.format || ((v) => num(v));
  const nx = xValues.length;
  const ny = yValues.length;
  if (!nx || !ny || !values.length) return h('p', { class: 'empty' }, 'No heatmap: the optimization varied fewer than two parameters or nothing qualified.');
  const finite = values.filter((v) => typeof v === 'number' && Number.isFinite(v));
  const lo = finite.length ? Math.min(...finite) : 0;
  const hi = finite.length ? Math.max(...finite) : 0;
  const diverging = lo < 0 && hi > 0;
  const fill = (v) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) return 'var(--bg)';
    if (diverging) {
      const t = v >= 0 ? v / hi : v / lo; // 0..1 away from zero
      const c = v >= 0 ? 'var(--pos)' : 'var(--neg)';
      return `color-mix(in srgb, ${c} ${Math.round(15 + 75 * t)}%, var(--card))`;
    }
    const t = hi === lo ? 1 : (v - lo) / (hi - lo);
    return `color-mix(in srgb, var(--chart-1) ${Math.round(12 + 78 * t)}%, var(--card))`;
  };
  const label = (xi, yi, v) => `${x} ${num(xValues[xi])}, ${y} ${num(yValues[yi])}: ${metric} ${v === null || v === undefined ? 'not evaluated (constraint or too few trades)' : format(v)}`;
  // The cell the keyboard starts on: the best one (or the first).
  let best = 0;
  values.forEach((v, i) => { if (typeof v === 'number' && Number.isFinite(v) && (typeof values[best] !== 'number' || v > values[best])) best = i; });
  // The grid is drawn at its real width (cells 24–90 px wide: values shown from 50 px), again when it changes.
  const grid = fitted((width) => {
    const CW = Math.max(24, Math.min(90, Math.floor((width - 72) / nx)));
    const CH = Math.max(26, Math.min(44, Math.floor(360 / ny)));
    const L = 64; const T = 8; const B = 44;
    const W = L + nx * CW + 8;
    const H = T + ny * CH + B;
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart heatmap', role: 'grid', 'aria-label': opts.title || `${metric} by ${x} and ${y}` });
    svg.style.maxWidth = W + 'px'; // never blown up: the labels keep their size
    const fig = h('figure', { class: 'chart-figure heatmap-figure' }, opts.title ? h('figcaption', null, opts.title) : null, svg);
    const tip = tooltip(fig);
    const cells = [];
    // Rows top to bottom: the largest y first, as a chart reads.
    for (let r = 0; r < ny; r++) {
      const yi = ny - 1 - r;
      const row = s('g', { role: 'row' });
      row.append(s('text', { x: L - 6, y: T + r * CH + CH / 2 + 4, class: 'tick', 'text-anchor': 'end', role: 'rowheader' }, num(yValues[yi])));
      for (let xi = 0; xi < nx; xi++) {
        const v = values[yi * nx + xi];
        const ok = typeof v === 'number' && Number.isFinite(v);
        const g = s('g', { class: 'cell' + (ok ? '' : ' cell-empty'), role: 'gridcell', tabindex: -1, 'aria-label': label(xi, yi, ok ? v : null) });
        const rect = s('rect', { x: L + xi * CW + 1, y: T + r * CH + 1, width: CW - 2, height: CH - 2, rx: 3 });
        rect.style.setProperty('fill', fill(ok ? v : null)); // CSSOM, not a style attribute: the page's CSP has no 'unsafe-inline'
        g.append(rect);
        if (CW >= 50) g.append(s('text', { x: L + xi * CW + CW / 2, y: T + r * CH + CH / 2 + 4, 'text-anchor': 'middle', class: 'cell-value' }, ok ? shortNum(v) : '—'));
        g.dataset.xi = xi; g.dataset.yi = yi; g.dataset.r = r;
        const show = () => {
          const rect = svg.getBoundingClientRect();
          tip.show([`${x} = ${num(xValues[xi])}`, `${y} = ${num(yValues[yi])}`, `${metric}: ${ok ? format(v) : 'not evaluated'}`],
            ((L + xi * CW + CW / 2) / W) * rect.width, ((T + r * CH) / H) * rect.height);
        };
        g.addEventListener('pointerenter', show);
        g.addEventListener('focus', show);
        g.addEventListener('blur', () => tip.hide());
        row.append(g);
        cells.push(g);
      }
      svg.append(row);
    }
    svg.addEventListener('pointerleave', () => tip.hide());
    for (let xi = 0; xi < nx; xi++) {
      svg.append(s('text', { x: L + xi * CW + CW / 2, y: T + ny * CH + 16, class: 'tick', 'text-anchor': 'middle' }, num(xValues[xi])));
    }
    svg.append(s('text', { x: L + (nx * CW) / 2, y: H - 6, class: 'tick axis-name', 'text-anchor': 'middle' }, x + ' →'));
    svg.append(s('text', { x: 12, y: T + (ny * CH) / 2, class: 'tick axis-name', 'text-anchor': 'middle', transform: `rotate(-90 12 ${T + (ny * CH) / 2})` }, y + ' →'));
    // Roving tabindex: the best cell (or the first) is the tab stop; arrows move within the grid.
    const at = (xi, yi) => cells.find((c) => +c.dataset.xi === xi && +c.dataset.yi === yi);
    const start = at(best % nx, Math.floor(best / nx)) || cells[0];
    start.setAttribute('tabindex', '0');
    svg.addEventListener('keydown', (ev) => {
      const cur = ev.target.closest && ev.target.closest('.cell');
      if (!cur) return;
      let xi = +cur.dataset.xi; let yi = +cur.dataset.yi;
      if (ev.key === 'ArrowLeft') xi = Math.max(0, xi - 1);
      else if (ev.key === 'ArrowRight') xi = Math.min(nx - 1, xi + 1);
      else if (ev.key === 'ArrowUp') yi = Math.min(ny - 1, yi + 1);
      else if (ev.key === 'ArrowDown') yi = Math.max(0, yi - 1);
      else if (ev.key === 'Home') xi = 0;
      else if (ev.key === 'End') xi = nx - 1;
      else return;
      ev.preventDefault();
      const next = at(xi, yi);
      if (next && next !== cur) { cur.setAttribute('tabindex', '-1'); next.setAttribute('tabindex', '0'); next.focus(); }
    });
    return fig;
  }, 'heatmap-host');
  const legend = h('div', { class: 'legend heat-legend' },
    h('span', null, `${metric}: `),
    h('span', { class: 'heat-swatch', style: { background: fill(lo) } }), ' ', finite.length ? format(lo) : '—', ' … ',
    h('span', { class: 'heat-swatch', style: { background: fill(hi) } }), ' ', finite.length ? format(hi) : '—',
    h('span', { class: 'muted' }, ' · arrow keys move between cells'));
  // The same numbers as a table (screen readers, copy/paste, very small screens).
  const table = (h('details', { class: 'heat-table' }, h('summary', null, 'Show as a table'),
    h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('caption', null, `${metric}: rows ${y}, columns ${x}`),
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, `${y} \\ ${x}`), xValues.map((xv) => h('th', { scope: 'col', class: 'num' }, num(xv))))),
      h('tbody', null, yValues.map((yv, yi) => h('tr', null, h('th', { scope: 'row' }, num(yv)),
        xValues.map((_, xi) => { const v = values[yi * nx + xi]; return h('td', { class: 'num' }, typeof v === 'number' && Number.isFinite(v) ? format(v) : '—'); }))))))));
  return h('div', { class: 'heatmap-block' }, grid, legend, table);
}

function shortNum(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (a >= 1e4) return (v / 1e3).toFixed(0) + 'k';
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}
