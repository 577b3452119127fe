// Strategies: the list (edit, activate, delete, "backtest this") and the rule builder. The builder composes a
// StrategySpec (README "Strategies and backtests"): parameters, indicators, entry/exit rules in the rule language,
// risk management with trailing stop/breakeven. While typing, the draft goes to `POST /strategies/validate` (the
// server's own validator; nothing is checked only here) and every message is shown next to the field it names;
// a save's 422 `detail` is placed the same way. #/strategies?id=<id> opens a strategy in the builder.
import { h, panel, field, fmt, toast, table, loadCss, errorText, clear } from '../lib/ui.js';
import { ApiError } from '../lib/api.js';

const INDICATORS = ['SMA', 'EMA', 'RSI', 'MACD', 'MACD_SIGNAL', 'MACD_HIST', 'ATR', 'ADX', 'PLUS_DI', 'MINUS_DI', 'STOCH_K',
  'STOCH_D', 'BB_UPPER', 'BB_MIDDLE', 'BB_LOWER', 'CCI', 'WILLR', 'MOM', 'ROC', 'STDDEV', 'HIGHEST', 'LOWEST'];
const SERIES = ['CLOSE', 'OPEN', 'HIGH', 'LOW', 'VOLUME', 'HOUR', 'DAY_OF_WEEK'];
const ENTRY_ACTIONS = [['BUY', 'Buy'], ['SELL', 'Sell']];
const EXIT_ACTIONS = [['CLOSE', 'Close any'], ['CLOSE_LONG', 'Close longs'], ['CLOSE_SHORT', 'Close shorts']];
const SL_TYPES = [['atr_based', 'ATR multiple'], ['fixed_pips', 'Fixed pips'], ['percentage', 'Percent of price'], ['none', 'None']];
const TP_TYPES = [['risk_reward', 'Reward : risk'], ['atr_based', 'ATR multiple'], ['fixed_pips', 'Fixed pips'], ['percentage', 'Percent of price'], ['none', 'None']];
const TRAIL_TYPES = [['atr_based', 'ATR based'], ['fixed_pips', 'Fixed pips'], ['percentage', 'Percentage']];

function blank() {
  return {
    name: '', description: '', parameters: [], indicators: [],
    entry_rules: [{ id: 'long', condition: '', action: 'BUY', description: '' }],
    exit_rules: [{ id: 'exit', condition: '', action: 'CLOSE', description: '' }],
    risk_management: { stop_loss_type: 'atr_based', stop_loss_value: 2, take_profit_type: 'risk_reward', take_profit_value: 2,
      max_position_size: 0.1, risk_per_trade_percent: 1, max_daily_loss: null, trailing_stop: null },
  };
}

export default async function mount(root, ctx) {
  await loadCss('/app/pages/strategies.css');
  const { api } = ctx;
  let editing = null; // the strategy being edited (null: a new one)

  const list = panel({
    title: 'Your strategies', id: 'strategy-list',
    actions: [h('button', { class: 'btn btn-primary', type: 'button', onclick: () => openBuilder(null) }, 'New strategy')],
    load: (signal) => api('/api/v1/strategies', { signal }),
    empty: 'No strategies yet: build one below, or generate one on the AI page.',
    render: (rows, body) => {
      if (!rows.length) return;
      body.append(table([
        { label: 'Name', value: (r) => h('span', null, r.name, r.strategy_type === 'ai_generated' ? h('span', { class: 'badge' }, ' AI') : null) },
        { label: 'Rules', value: (r) => `${(r.entry_rules || []).length} entry · ${(r.exit_rules || []).length} exit` },
        { label: 'Active', value: (r) => h('span', { class: 'badge ' + (r.is_active ? 'badge-ok' : '') }, r.is_active ? 'active' : 'inactive') },
        { label: 'Last quick test', value: (r) => r.backtest_results ? h('span', { class: fmt.tone(r.backtest_results.net_profit) }, fmt.signed(r.backtest_results.net_profit)) : '—', align: 'right' },
        { label: 'Updated', value: (r) => fmt.date(r.updated_at) },
        { label: 'Actions', value: (r) => h('div', { class: 'actions' },
          h('button', { class: 'btn btn-small', type: 'button', onclick: () => openBuilder(r), 'aria-label': `Edit ${r.name}` }, 'Edit'),
          h('a', { class: 'btn btn-small', href: '#/backtest?strategy=' + encodeURIComponent(r.id), 'aria-label': `Backtest ${r.name}` }, 'Backtest'),
          h('button', { class: 'btn btn-small', type: 'button', 'aria-label': `${r.is_active ? 'Deactivate' : 'Activate'} ${r.name}`,
            onclick: async (ev) => { ev.target.disabled = true; try { await api(`/api/v1/strategies/${r.id}/toggle`, { method: 'PATCH', body: { is_active: !r.is_active } }); list.reload(); } catch (e) { toast(errorText(e), 'err'); ev.target.disabled = false; } } },
          r.is_active ? 'Deactivate' : 'Activate'),
          h('button', { class: 'btn btn-small btn-danger', type: 'button', 'aria-label': `Delete ${r.name}`,
            onclick: async (ev) => {
              if (!confirm(`Delete the strategy “${r.name}”?`)) return;
              ev.target.disabled = true;
              try { await api(`/api/v1/strategies/${r.id}`, { method: 'DELETE' }); toast('Strategy deleted', 'ok'); if (editing && editing.id === r.id) openBuilder(null); list.reload(); } catch (e) { toast(errorText(e), 'err'); ev.target.disabled = false; }
            } }, 'Delete')) },
      ], rows, { caption: 'Strategies, newest first', rowAttrs: (r) => ({ dataset: { id: r.id } }) }));
    },
  });

  const builderHost = h('div');
  root.append(h('h1', null, 'Strategies'), list, builderHost);

  function openBuilder(strategy) {
    editing = strategy;
    clear(builderHost).append(panel({
      title: strategy ? `Edit “${strategy.name}”` : 'New strategy — rule builder', id: 'builder',
      render: (_, body) => builder(body, strategy ? structuredClone(strategy) : blank()),
    }));
  }

  function builder(body, spec) {
    let timer = null;
    let seq = 0;
    const msgs = new Map(); // key → <ul> for messages
    const summary = h('div', { class: 'validation', role: 'status', 'aria-live': 'polite', id: 'validation' });

    const msgSlot = (key) => { const ul = h('ul', { class: 'field-msgs', id: 'msg-' + key.replace(/[^a-z0-9_-]/gi, '_'), dataset: { key } }); msgs.set(key, ul); return ul; };
    const onChange = () => { clearTimeout(timer); timer = setTimeout(validate, 400); };

    // ---- general ----
    const name = field({ label: 'Name', name: 'name', value: spec.name, required: true, maxlength: 255 });
    const desc = field({ label: 'Description', name: 'description', type: 'textarea', value: spec.description || '', maxlength: 5000 });
    name.querySelector('input').addEventListener('input', (e) => { spec.name = e.target.value; onChange(); });
    desc.querySelector('textarea').addEventListener('input', (e) => { spec.description = e.target.value; onChange(); });

    // ---- parameters ----
    const paramsBox = h('div', { class: 'rows' });
    const paintParams = () => {
      clear(paramsBox);
      (spec.parameters || []).forEach((p, i) => {
        const set = (k) => (e) => { p[k] = k === 'name' ? e.target.value : (e.target.value === '' ? null : Number(e.target.value)); onChange(); };
        paramsBox.append(h('fieldset', { class: 'rule-row', dataset: { param: p.name } },
          h('legend', null, `Parameter ${i + 1}`),
          h('div', { class: 'row' },
            withInput(field({ label: 'Name', name: 'param-name', value: p.name, maxlength: 64, pattern: '[A-Za-z_][A-Za-z0-9_]*' }), set('name')),
            withInput(field({ label: 'Default', name: 'param-default', type: 'number', value: p.default_value, step: 'any' }), set('default_value')),
            withInput(field({ label: 'Min', name: 'param-min', type: 'number', value: p.min ?? '', step: 'any' }), set('min')),
            withInput(field({ label: 'Max', name: 'param-max', type: 'number', value: p.max ?? '', step: 'any' }), set('max')),
            h('button', { class: 'btn btn-small btn-danger', type: 'button', 'aria-label': `Remove parameter ${p.name || i + 1}`, onclick: () => { spec.parameters.splice(i, 1); paintParams(); onChange(); } }, 'Remove')),
          msgSlot('param:' + i)));
      });
    };
    paintParams();

    // ---- indicators (informational list the strategy declares) ----
    const indBox = h('fieldset', { class: 'chips' }, h('legend', null, 'Indicators used'),
      INDICATORS.map((ind) => h('label', { class: 'chip' },
        h('input', { type: 'checkbox', checked: (spec.indicators || []).includes(ind), onchange: (e) => {
          spec.indicators = (spec.indicators || []).filter((x) => x !== ind);
          if (e.target.checked) spec.indicators.push(ind);
          onChange();
        } }), ind)));

    // ---- rules ----
    const rulesBox = { entry_rules: h('div', { class: 'rows' }), exit_rules: h('div', { class: 'rows' }) };
    const paintRules = (kind) => {
      const box = clear(rulesBox[kind]);
      const actions = kind === 'entry_rules' ? ENTRY_ACTIONS : EXIT_ACTIONS;
      (spec[kind] || []).forEach((r, i) => {
        const set = (k) => (e) => { r[k] = e.target.value; onChange(); };
        box.append(h('fieldset', { class: 'rule-row', dataset: { rule: r.id } },
          h('legend', null, `${kind === 'entry_rules' ? 'Entry' : 'Exit'} rule ${i + 1}`),
          h('div', { class: 'row' },
            withInput(field({ label: 'Id', name: 'rule-id', value: r.id, maxlength: 64 }), set('id')),
            withInput(field({ label: 'Action', name: 'rule-action', type: 'select', value: r.action, options: actions }), set('action'), 'change'),
            withInput(field({ label: 'Description', name: 'rule-description', value: r.description || '' }), set('description'))),
          withInput(field({ label: 'Condition', name: 'rule-condition', value: r.condition, maxlength: 500, class: 'mono', placeholder: 'RSI(14) < 30 AND CLOSE > EMA(50)', spellcheck: 'false', autocomplete: 'off' }), set('condition')),
          h('div', { class: 'row-end' }, h('button', { class: 'btn btn-small btn-danger', type: 'button', 'aria-label': `Remove ${kind === 'entry_rules' ? 'entry' : 'exit'} rule ${r.id || i + 1}`, onclick: () => { spec[kind].splice(i, 1); paintRules(kind); onChange(); } }, 'Remove rule')),
          msgSlot(`${kind}:${i}`)));
      });
    };
    paintRules('entry_rules');
    paintRules('exit_rules');

    // ---- the condition composer: indicator (args) op indicator/number → a new rule ----
    const comp = composer((cond, kind, action) => {
      const list = spec[kind] || (spec[kind] = []);
      const base = action.toLowerCase();
      let id = base; let n = 1;
      while (list.some((r) => r.id === id)) id = `${base}_${++n}`;
      list.push({ id, condition: cond, action, description: '' });
      paintRules(kind);
      onChange();
      toast(`Added ${kind === 'entry_rules' ? 'entry' : 'exit'} rule “${id}”`, 'ok', 2500);
    });

    // ---- risk management ----
    const rm = spec.risk_management || (spec.risk_management = blank().risk_management);
    const riskField = (label, key, opts = {}) => {
      const f = field({ label, value: rm[key] ?? '', type: opts.options ? 'select' : 'number', step: 'any', ...opts });
      const c = f.querySelector('input, select');
      c.addEventListener(opts.options ? 'change' : 'input', (e) => { rm[key] = opts.options ? e.target.value : (e.target.value === '' ? null : Number(e.target.value)); onChange(); });
      return h('div', { class: 'field-wrap', dataset: { risk: key } }, f, msgSlot('risk:' + key));
    };
    const ts = () => rm.trailing_stop || (rm.trailing_stop = { enabled: false, trailing_type: 'atr_based', activation_pips: 20, trail_distance_pips: 15, atr_multiplier: 1.5, breakeven_enabled: true, breakeven_pips: 15 });
    const trailField = (label, key, opts = {}) => {
      const cur = rm.trailing_stop ? rm.trailing_stop[key] : ts()[key];
      const type = opts.options ? 'select' : opts.type || 'number';
      const f = field({ label, value: cur, type, step: 'any', ...opts });
      const c = f.querySelector('input, select');
      c.addEventListener(type === 'number' ? 'input' : 'change', (e) => { ts()[key] = type === 'checkbox' ? e.target.checked : type === 'number' ? Number(e.target.value) : e.target.value; onChange(); });
      return f;
    };
    const hadTrailing = !!rm.trailing_stop;
    const risk = h('fieldset', { class: 'risk' }, h('legend', null, 'Risk management'),
      h('div', { class: 'risk-grid' },
        riskField('Stop loss', 'stop_loss_type', { options: SL_TYPES }),
        riskField('Stop loss value', 'stop_loss_value', { min: 0, hint: 'ATR multiple, pips or percent' }),
        riskField('Take profit', 'take_profit_type', { options: TP_TYPES }),
        riskField('Take profit value', 'take_profit_value', { min: 0 }),
        riskField('Max position size (lots)', 'max_position_size', { min: 0.01 }),
        riskField('Risk per trade (%)', 'risk_per_trade_percent', { min: 0 }),
        riskField('Max daily loss (account currency)', 'max_daily_loss', { min: 0, hint: 'empty: none' })),
      h('fieldset', { class: 'trailing' }, h('legend', null, 'Trailing stop and breakeven'),
        h('div', { class: 'risk-grid' },
          trailField('Enabled', 'enabled', { type: 'checkbox' }),
          trailField('Trailing type', 'trailing_type', { options: TRAIL_TYPES }),
          trailField('Activation (pips)', 'activation_pips', { min: 0 }),
          trailField('Trail distance (pips)', 'trail_distance_pips', { min: 0 }),
          trailField('ATR multiplier', 'atr_multiplier', { min: 0 }),
          trailField('Breakeven', 'breakeven_enabled', { type: 'checkbox' }),
          trailField('Breakeven after (pips)', 'breakeven_pips', { min: 0 })),
        msgSlot('risk:trailing_stop')),
      msgSlot('risk'));
    if (!hadTrailing) rm.trailing_stop = null; // untouched: none, as the server's default

    const saveBtn = h('button', { class: 'btn btn-primary', type: 'submit' }, spec.id ? 'Save changes' : 'Create strategy');
    const btLink = h('a', { class: 'btn', href: spec.id ? '#/backtest?strategy=' + encodeURIComponent(spec.id) : '#/backtest', hidden: !spec.id, id: 'backtest-this' }, 'Backtest this');
    const form = h('form', { class: 'builder', novalidate: true, onsubmit: (e) => { e.preventDefault(); save(); } },
      summary,
      h('div', { class: 'field-wrap', dataset: { key: 'name' } }, name, msgSlot('name')),
      desc,
      h('section', { class: 'group', 'aria-labelledby': 'h-params' }, h('h3', { id: 'h-params' }, 'Parameters'),
        h('p', { class: 'hint' }, 'Names usable in conditions (e.g. SMA(fast)); the optimizer varies them between min and max.'),
        paramsBox, msgSlot('parameters'),
        h('button', { class: 'btn btn-small', type: 'button', id: 'add-param', onclick: () => { (spec.parameters || (spec.parameters = [])).push({ name: 'p' + (spec.parameters.length + 1), default_value: 14, min: 2, max: 50 }); paintParams(); onChange(); } }, 'Add parameter')),
      indBox,
      h('section', { class: 'group', 'aria-labelledby': 'h-compose' }, h('h3', { id: 'h-compose' }, 'Compose a condition'), comp),
      h('section', { class: 'group', 'aria-labelledby': 'h-entry' }, h('h3', { id: 'h-entry' }, 'Entry rules'),
        h('p', { class: 'hint' }, 'Rules of one direction are alternatives: any one that holds opens a trade on the next bar’s open.'),
        rulesBox.entry_rules, msgSlot('entry_rules'),
        h('button', { class: 'btn btn-small', type: 'button', onclick: () => { (spec.entry_rules || (spec.entry_rules = [])).push({ id: 'entry' + (spec.entry_rules.length + 1), condition: '', action: 'BUY', description: '' }); paintRules('entry_rules'); } }, 'Add entry rule')),
      h('section', { class: 'group', 'aria-labelledby': 'h-exit' }, h('h3', { id: 'h-exit' }, 'Exit rules'),
        rulesBox.exit_rules, msgSlot('exit_rules'),
        h('button', { class: 'btn btn-small', type: 'button', onclick: () => { (spec.exit_rules || (spec.exit_rules = [])).push({ id: 'exit' + (spec.exit_rules.length + 1), condition: '', action: 'CLOSE', description: '' }); paintRules('exit_rules'); } }, 'Add exit rule')),
      risk,
      h('div', { class: 'form-actions' }, saveBtn, btLink,
        h('button', { class: 'btn btn-ghost', type: 'button', onclick: () => openBuilder(null) }, spec.id ? 'New instead' : 'Clear')));
    body.append(form);

    function payload() {
      const out = {
        name: spec.name, description: spec.description || null, parameters: spec.parameters || [], indicators: spec.indicators || [],
        entry_rules: (spec.entry_rules || []).map((r) => ({ id: r.id, condition: r.condition, action: r.action, description: r.description || '' })),
        exit_rules: (spec.exit_rules || []).map((r) => ({ id: r.id, condition: r.condition, action: r.action, description: r.description || '' })),
        risk_management: spec.risk_management,
      };
      if (spec.strategy_type) out.strategy_type = spec.strategy_type;
      return out;
    }

    // Messages → the field they name. The validator's strings name the part: "parameter 'fast': …",
    // "risk management: stop_loss_value …", "entry rule 'r1': …"; a 422 list carries `loc` paths.
    function place(problems) {
      for (const ul of msgs.values()) clear(ul);
      for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
      const general = [];
      for (const p of problems) {
        const key = keyOf(p.msg, p.loc);
        const ul = key && msgs.get(key);
        if (ul) {
          ul.append(h('li', null, p.msg));
          const wrap = ul.parentElement;
          const control = wrap && wrap.querySelector(key.startsWith('entry_rules:') || key.startsWith('exit_rules:') ? 'input[name="rule-condition"]' : 'input, select, textarea');
          if (control) { control.setAttribute('aria-invalid', 'true'); control.setAttribute('aria-describedby', ul.id); }
        } else general.push(p.msg);
      }
      clear(summary);
      if (!problems.length) summary.append(h('p', { class: 'ok-line' }, '✓ The server’s validator accepts this strategy.'));
      else summary.append(h('div', { class: 'warn' }, h('p', null, `${problems.length} problem${problems.length > 1 ? 's' : ''} (from the server’s validator):`),
        general.length ? h('ul', null, general.map((m) => h('li', null, m))) : h('p', { class: 'hint' }, 'Each is shown next to its field.')));
    }
    function keyOf(msg, loc) {
      if (Array.isArray(loc) && loc.length > 1) {
        const path = loc.filter((x) => x !== 'body');
        if (path[0] === 'name') return 'name';
        if ((path[0] === 'entry_rules' || path[0] === 'exit_rules') && Number.isInteger(path[1])) return `${path[0]}:${path[1]}`;
        if (path[0] === 'parameters' && Number.isInteger(path[1])) return 'param:' + path[1];
        if (path[0] === 'risk_management') return path[1] && msgs.has('risk:' + path[1]) ? 'risk:' + path[1] : 'risk';
      }
      let m = /^(entry|exit) rule '([^']*)'/.exec(msg);
      if (m) { const kind = m[1] + '_rules'; const i = (spec[kind] || []).findIndex((r) => r.id === m[2]); return i >= 0 ? `${kind}:${i}` : kind; }
      m = /^parameter '([^']*)'/.exec(msg);
      if (m) { const i = (spec.parameters || []).findIndex((p) => p.name === m[1]); return i >= 0 ? 'param:' + i : 'parameters'; }
      if (/^risk management/i.test(msg)) {
        const f = ['stop_loss_type', 'stop_loss_value', 'take_profit_type', 'take_profit_value', 'max_position_size', 'risk_per_trade_percent', 'max_daily_loss', 'trailing_stop'].find((k) => msg.includes(k));
        return f ? 'risk:' + f : 'risk';
      }
      if (/entry rule/i.test(msg)) return 'entry_rules';
      if (/exit rule/i.test(msg)) return 'exit_rules';
      if (/^name\b/i.test(msg)) return 'name';
      return null;
    }
    const fromDetail = (err) => (Array.isArray(err.detail) ? err.detail.map((d) => ({ msg: String(d.msg || '').replace(/^Value error, /, ''), loc: d.loc })) : [{ msg: errorText(err) }]);

    async function validate() {
      const mine = ++seq;
      summary.dataset.state = 'checking';
      try {
        // An empty name is the save's 422; validate the rest meanwhile (the name is checked when saving).
        const draft = payload();
        if (!draft.name.trim()) draft.name = 'Untitled';
        const v = await api('/api/v1/strategies/validate', { method: 'POST', body: draft });
        if (mine !== seq) return;
        place((v.errors || []).map((msg) => ({ msg })));
      } catch (err) {
        if (mine !== seq) return;
        if (err instanceof ApiError && err.status === 422) place(fromDetail(err));
        else { clear(summary).append(h('p', { class: 'hint' }, 'Validation unavailable: ' + errorText(err))); }
      } finally { if (mine === seq) summary.dataset.state = 'done'; }
    }

    async function save() {
      clearTimeout(timer);
      saveBtn.disabled = true;
      try {
        const saved = spec.id
          ? await api(`/api/v1/strategies/${spec.id}`, { method: 'PUT', body: payload() })
          : await api('/api/v1/strategies', { method: 'POST', body: payload() });
        spec.id = saved.id;
        editing = saved;
        toast(`Strategy “${saved.name}” saved`, 'ok');
        saveBtn.textContent = 'Save changes';
        btLink.hidden = false;
        btLink.href = '#/backtest?strategy=' + encodeURIComponent(saved.id);
        list.reload();
        validate();
      } catch (err) {
        if (err instanceof ApiError && err.status === 422) { place(fromDetail(err)); toast('Not saved: see the messages next to the fields.', 'err'); } else toast(errorText(err), 'err');
      } finally { saveBtn.disabled = false; }
    }
    if (spec.id) validate(); // a new blank draft is checked from its first edit on
    return () => clearTimeout(timer);
  }

  const want = ctx.params.get('id');
  if (want) {
    try { openBuilder(await api(`/api/v1/strategies/${encodeURIComponent(want)}`)); } catch (e) { toast(errorText(e), 'err'); openBuilder(null); }
  } else openBuilder(null);
}

function withInput(fieldEl, fn, ev = 'input') {
  fieldEl.querySelector('input, select, textarea').addEventListener(ev, fn);
  return fieldEl;
}

function composer(add) {
  const exprFields = (label) => {
    const kind = field({ label: label + ' — indicator or series', type: 'select', value: 'RSI', options: [...INDICATORS, ...SERIES].map((x) => [x, x]).concat([['number', 'a number']]) });
    const arg = field({ label: label + ' — arguments', value: '14', hint: 'e.g. 14, or a parameter name; empty for series', placeholder: '14' });
    const numF = field({ label: label + ' — number', type: 'number', value: '30', step: 'any' });
    const sel = kind.querySelector('select');
    const sync = () => { const isNum = sel.value === 'number'; numF.hidden = !isNum; arg.hidden = isNum || SERIES.includes(sel.value); };
    sel.addEventListener('change', sync);
    sync();
    const text = () => {
      if (sel.value === 'number') return numF.querySelector('input').value || '0';
      if (SERIES.includes(sel.value)) return sel.value;
      const a = arg.querySelector('input').value.trim();
      return a ? `${sel.value}(${a})` : sel.value;
    };
    return { els: [kind, arg, numF], text, sel };
  };
  const left = exprFields('Left');
  const right = exprFields('Right');
  right.sel.value = 'number';
  right.sel.dispatchEvent(new Event('change'));
  const op = field({ label: 'Comparison', type: 'select', value: '<', options: [['<', '<'], ['<=', '≤'], ['>', '>'], ['>=', '≥'], ['==', '='], ['CROSSES_ABOVE', 'crosses above'], ['CROSSES_BELOW', 'crosses below']] });
  const target = field({ label: 'Add as', type: 'select', value: 'entry_rules:BUY', options: [['entry_rules:BUY', 'Entry rule — buy'], ['entry_rules:SELL', 'Entry rule — sell'], ['exit_rules:CLOSE', 'Exit rule — close any'], ['exit_rules:CLOSE_LONG', 'Exit rule — close longs'], ['exit_rules:CLOSE_SHORT', 'Exit rule — close shorts']] });
  const preview = h('output', { class: 'mono preview', 'aria-live': 'polite' });
  const cond = () => {
    const o = op.querySelector('select').value;
    return o.startsWith('CROSSES') ? `${o}(${left.text()}, ${right.text()})` : `${left.text()} ${o} ${right.text()}`;
  };
  const box = h('div', { class: 'composer', oninput: () => { preview.textContent = cond(); }, onchange: () => { preview.textContent = cond(); } },
    h('div', { class: 'row' }, left.els, op, right.els),
    h('div', { class: 'row' }, target, h('div', null, h('span', { class: 'hint' }, 'Condition: '), preview),
      h('button', { class: 'btn', type: 'button', onclick: () => { const [kind, action] = target.querySelector('select').value.split(':'); add(cond(), kind, action); } }, 'Add rule')));
  preview.textContent = cond();
  return box;
}
