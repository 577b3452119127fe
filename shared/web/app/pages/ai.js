// AI supervisor: chat (`POST /ai/chat`, conversations kept by the server), analyses (`GET /ai/analysis/{symbol}`,
// `/ai/analysis/daily`, `/ai/recommendations`) and strategy generation streamed over Server-Sent Events
// (`POST /ai/generate-strategy-stream`: fetch + ReadableStream with the bearer header — EventSource cannot send one —
// events `progress`, `keepalive`, `result`, `error`), then save (`POST /strategies`) → backtest
// (#/backtest?strategy=<id>). With no language model configured every answer is computed from the caller's data;
// the page says so next to each answer (the server's `computed` flag and its notice) and whenever a model failed
// (`model_error`).
import { h, panel, field, fmt, toast, loadCss, errorBox, clear, spinner } from '../lib/ui.js';
import { api as apiCall, ApiError, detailText } from '../lib/api.js';
import { session } from '../lib/session.js';

const NO_MODEL = 'No language model is configured: this answer is computed from your own data (candles, positions, trades). An administrator can configure one under Admin → settings (llm_provider, llm_api_key, llm_model).';

function notices(r) {
  const out = [];
  if (r.model_error) out.push(h('p', { class: 'warn notice-model', role: 'note' }, `The language model failed (${r.model_error}); showing the computed answer instead.`));
  else if (r.computed) out.push(h('p', { class: 'notice notice-model', role: 'note' }, NO_MODEL));
  return out;
}
function meta(r) {
  const bits = [];
  if (r.model) bits.push(`model ${r.model}`);
  bits.push(`${fmt.num(r.tokens_used || 0, 0)} tokens used`);
  if (r.computed) bits.push('computed');
  return h('p', { class: 'hint meta' }, bits.join(' · '));
}
const para = (text) => String(text || '').split(/\n+/).filter(Boolean).map((l) => h('p', null, l));

/** POST an SSE route with the bearer token; calls onEvent(name, data) per event. One token refresh on 401. */
export async function streamSse(path, body, onEvent, signal) {
  const open = () => fetch(path, { method: 'POST', signal, cache: 'no-store',
    headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', Authorization: 'Bearer ' + (session.accessToken || '') },
    body: JSON.stringify(body) });
  let res = await open();
  if (res.status === 401) {
    try { await apiCall('/api/v1/auth/me'); } catch (_) { /* the refresh failed: signed out */ }
    res = await open();
  }
  if (!res.ok) {
    let data = null;
    try { data = await res.json(); } catch (_) { /* not JSON */ }
    throw new ApiError(res.status, detailText(data) || `The request failed (HTTP ${res.status}).`, { detail: data && data.detail, retryAfter: Number(res.headers.get('Retry-After')) || 0 });
  }
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const frame = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let name = 'message';
      const data = [];
      for (const line of frame.split('\n')) {
        if (line.startsWith(':')) continue;
        const c = line.indexOf(':');
        const k = c < 0 ? line : line.slice(0, c);
        const v = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
        if (k === 'event') name = v; else if (k === 'data') data.push(v);
      }
      if (!data.length && name === 'message') continue;
      let parsed = data.join('\n');
      try { parsed = JSON.parse(parsed); } catch (_) { /* plain text */ }
      onEvent(name, parsed);
    }
  }
}

export default async function mount(root, ctx) {
  await loadCss('/app/pages/ai.css');
  const { api } = ctx;

  root.append(h('h1', null, 'AI supervisor'),
    h('p', { class: 'muted intro' }, 'Answers are grounded in your own data. The assistant never places or changes orders: it suggests, you act.'));

  // ---- chat ----
  let conversationId = null;
  const log = h('div', { class: 'chat-log', id: 'chat-log', role: 'log', 'aria-live': 'polite', 'aria-label': 'Conversation' });
  const convList = h('ul', { class: 'conv-list' });
  const chat = panel({
    title: 'Chat', id: 'ai-chat', class: 'chat-panel',
    actions: [h('button', { class: 'btn btn-small', type: 'button', onclick: () => { conversationId = null; clear(log).append(h('p', { class: 'empty' }, 'A new conversation.')); } }, 'New conversation')],
    load: (sig) => api('/api/v1/ai/conversations', { query: { limit: 20 }, signal: sig }),
    render: (convs, body) => {
      clear(convList).append(...(convs.length ? convs.map((c) => h('li', null, h('button', { class: 'btn btn-ghost btn-small', type: 'button', onclick: () => openConv(c.id) }, c.title || 'Conversation'), h('span', { class: 'hint' }, ` ${fmt.date(c.created_at)}`))) : [h('li', { class: 'empty' }, 'No conversations yet.')]));
      if (!log.firstChild) log.append(h('p', { class: 'empty' }, 'Ask about a symbol (“Analyse EURUSD”), your positions, your balance or your performance.'));
      const msg = field({ label: 'Your message', type: 'textarea', name: 'message', maxlength: 4000, rows: 3, required: true, placeholder: 'Analyse EURUSD' });
      const focus = field({ label: 'Focus', type: 'select', value: '', options: [['', 'General'], ['trade_analysis', 'Trade analysis'], ['market_summary', 'Market summary']] });
      const btn = h('button', { class: 'btn btn-primary', type: 'submit', id: 'chat-send' }, 'Send');
      const ta = msg.querySelector('textarea');
      ta.addEventListener('keydown', (e) => { if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); } });
      const form = h('form', { class: 'chat-form', onsubmit: async (e) => {
        e.preventDefault();
        const text = ta.value.trim();
        if (!text) return;
        const empty = log.querySelector('.empty'); if (empty) empty.remove();
        log.append(h('div', { class: 'msg msg-user' }, h('span', { class: 'who' }, 'You'), para(text)));
        const pending = h('div', { class: 'msg msg-ai' }, spinner('Thinking…'));
        log.append(pending);
        pending.scrollIntoView({ block: 'nearest' });
        btn.disabled = true;
        try {
          const body = { message: text };
          if (conversationId) body.conversation_id = conversationId;
          if (focus.querySelector('select').value) body.context_type = focus.querySelector('select').value;
          const r = await api('/api/v1/ai/chat', { method: 'POST', body, timeout: 90000 });
          conversationId = r.conversation_id;
          pending.replaceChildren(h('span', { class: 'who' }, 'Assistant'), ...notices(r), h('div', { class: 'answer' }, para(r.reply)), meta(r));
          ta.value = '';
          chat.dataset.convs = '1';
          refreshConvs();
        } catch (err) {
          pending.replaceChildren(errorBox(err));
        } finally { btn.disabled = false; ta.focus(); }
      } }, msg, h('div', { class: 'row' }, focus, h('div', { class: 'form-actions' }, btn, h('span', { class: 'hint' }, 'Ctrl+Enter sends'))));
      body.append(h('div', { class: 'chat-grid' }, h('nav', { 'aria-label': 'Conversations' }, h('h3', null, 'Conversations'), convList), h('div', null, log, form)));
    },
  });
  async function refreshConvs() {
    try {
      const convs = await api('/api/v1/ai/conversations', { query: { limit: 20 } });
      clear(convList).append(...convs.map((c) => h('li', null, h('button', { class: 'btn btn-ghost btn-small', type: 'button', onclick: () => openConv(c.id) }, c.title || 'Conversation'), h('span', { class: 'hint' }, ` ${fmt.date(c.created_at)}`))));
    } catch (_) { /* the list stays as it was */ }
  }
  async function openConv(id) {
    clear(log).append(spinner());
    try {
      const c = await api(`/api/v1/ai/conversations/${id}`);
      conversationId = id;
      const msgs = Array.isArray(c) ? c : c.messages || [];
      clear(log).append(...msgs.map((m) => h('div', { class: 'msg ' + (m.role === 'user' ? 'msg-user' : 'msg-ai') }, h('span', { class: 'who' }, m.role === 'user' ? 'You' : 'Assistant'), para(m.content))));
    } catch (err) { clear(log).append(errorBox(err, () => openConv(id))); }
  }

  // ---- analyses ----
  const analysis = panel({
    title: 'Market analysis', id: 'ai-analysis',
    render: (_, body) => {
      const out = h('div', { class: 'analysis-out', 'aria-live': 'polite' });
      const sym = field({ label: 'Symbol', value: 'EURUSD', maxlength: 20, autocomplete: 'off' });
      const run = async (path, label) => {
        clear(out).append(spinner(label));
        try {
          const r = await api(path);
          const text = r.analysis || r.summary || r.recommendations || '';
          clear(out).append(...notices(r), h('div', { class: 'answer' }, para(text)));
          if (r.details) {
            const d = r.details;
            out.append(h('dl', { class: 'stats' }, [['Close', d.close && fmt.price(d.close)], ['Trend', d.trend && (d.trend.label || d.trend.direction || d.trend.score)], ['RSI(14)', d.rsi && fmt.num(d.rsi.value ?? d.rsi, 1)],
              ['Support', d.levels && fmt.price(d.levels.support)], ['Resistance', d.levels && fmt.price(d.levels.resistance)], ['Bars used', d.bars_used && fmt.num(d.bars_used, 0)]]
              .filter(([, v]) => v !== undefined && v !== null && typeof v !== 'object').map(([k, v]) => h('div', { class: 'stat' }, h('dt', null, k), h('dd', null, String(v))))));
          }
        } catch (err) { clear(out).append(errorBox(err, () => run(path, label))); }
      };
      body.append(h('form', { onsubmit: (e) => { e.preventDefault(); run(`/api/v1/ai/analysis/${encodeURIComponent(sym.querySelector('input').value.trim().toUpperCase())}`, 'Analysing…'); } },
        h('div', { class: 'row' }, sym, h('div', { class: 'form-actions' },
          h('button', { class: 'btn btn-primary', type: 'submit' }, 'Analyse'),
          h('button', { class: 'btn', type: 'button', onclick: () => run('/api/v1/ai/analysis/daily', 'Daily summary…') }, 'Daily summary'),
          h('button', { class: 'btn', type: 'button', onclick: () => run('/api/v1/ai/recommendations', 'Reviewing your trades…') }, 'Review my trades')))), out);
    },
  });

  // ---- strategy generation (SSE) ----
  const gen = panel({
    title: 'Generate a strategy', id: 'ai-generate',
    render: (_, body) => {
      const prompt = field({ label: 'Describe the strategy', type: 'textarea', name: 'prompt', maxlength: 4000, rows: 3, required: true, value: 'A trend-following strategy for EURUSD on the hourly chart with tight risk.' });
      const sym = field({ label: 'Symbol', value: 'EURUSD', maxlength: 20 });
      const tf = field({ label: 'Timeframe', type: 'select', value: 'H1', options: ['M5', 'M15', 'M30', 'H1', 'H4', 'D1'].map((x) => [x, x]) });
      const prof = field({ label: 'Risk profile', type: 'select', value: 'moderate', options: [['conservative', 'Conservative (1 %)'], ['moderate', 'Moderate (2 %)'], ['aggressive', 'Aggressive (3 %)']] });
      const progress = h('ol', { class: 'progress-log', 'aria-live': 'polite', id: 'gen-progress' });
      const out = h('div', { id: 'gen-out' });
      const btn = h('button', { class: 'btn btn-primary', type: 'submit', id: 'gen-run' }, 'Generate');
      let ctrl = null;
      const stop = h('button', { class: 'btn', type: 'button', hidden: true, onclick: () => ctrl && ctrl.abort() }, 'Stop');
      body.append(h('form', { onsubmit: async (e) => {
        e.preventDefault();
        btn.disabled = true; stop.hidden = false;
        clear(progress); clear(out);
        ctrl = new AbortController();
        ctx.signal.addEventListener('abort', () => ctrl.abort(), { once: true });
        let lastAlive = null;
        try {
          await streamSse('/api/v1/ai/generate-strategy-stream', {
            prompt: prompt.querySelector('textarea').value, symbol: sym.querySelector('input').value.trim().toUpperCase(),
            timeframe: tf.querySelector('select').value, risk_profile: prof.querySelector('select').value,
          }, (name, data) => {
            if (name === 'progress') {
              const txt = data && data.status ? data.status + (data.received_chars ? ` (${fmt.num(data.received_chars, 0)} characters received)` : '') : String(data);
              const last = progress.lastElementChild;
              if (last && data && data.received_chars && last.dataset.streaming) last.textContent = txt; else progress.append(h('li', { dataset: { streaming: data && data.received_chars ? '1' : '' } }, txt));
            } else if (name === 'keepalive') {
              if (!lastAlive) { lastAlive = h('li', { class: 'hint' }); progress.append(lastAlive); }
              lastAlive.textContent = `Still working… (${new Date().toLocaleTimeString()})`;
            } else if (name === 'result') {
              progress.append(h('li', null, 'Done.'));
              showGenerated(out, data);
            } else if (name === 'error') {
              out.append(errorBox(new Error((data && (data.detail || data.message || data.error)) || 'The generation failed.')));
            }
          }, ctrl.signal);
        } catch (err) {
          if (err.name !== 'AbortError') out.append(errorBox(err));
          else progress.append(h('li', null, 'Stopped.'));
        } finally { btn.disabled = false; stop.hidden = true; }
      } }, prompt, h('div', { class: 'row' }, sym, tf, prof), h('div', { class: 'form-actions' }, btn, stop)), progress, out);
    },
  });

  function showGenerated(out, r) {
    const s = r.strategy || {};
    const rules = (list) => h('ul', { class: 'rules' }, (list || []).map((x) => h('li', null, h('strong', null, x.action), ' ', h('code', null, x.condition), x.description ? h('span', { class: 'hint' }, ' — ' + x.description) : null)));
    const rm = s.risk_management || {};
    const save = h('button', { class: 'btn btn-primary', type: 'button', id: 'gen-save' }, 'Save strategy');
    const after = h('div', { class: 'form-actions', role: 'status' });
    save.addEventListener('click', async () => {
      save.disabled = true;
      try {
        const body = { name: s.name, description: s.description, parameters: s.parameters, indicators: s.indicators, entry_rules: s.entry_rules,
          exit_rules: s.exit_rules, risk_management: s.risk_management, strategy_type: s.strategy_type || 'ai_generated' };
        const saved = await api('/api/v1/strategies', { method: 'POST', body });
        toast(`Saved “${saved.name}”`, 'ok');
        clear(after).append(h('span', null, 'Saved. '),
          h('a', { class: 'btn btn-primary', href: '#/backtest?strategy=' + encodeURIComponent(saved.id), id: 'gen-backtest' }, 'Backtest it'),
          h('a', { class: 'btn', href: '#/strategies?id=' + encodeURIComponent(saved.id) }, 'Edit in the rule builder'));
      } catch (err) { save.disabled = false; clear(after).append(errorBox(err)); }
    });
    out.append(h('article', { class: 'generated' },
      notices(r),
      h('h3', null, s.name || 'Strategy'),
      h('div', { class: 'answer' }, para(r.explanation)),
      (r.warnings || []).length ? h('div', { class: 'warn' }, h('strong', null, 'Warnings'), h('ul', null, r.warnings.map((w) => h('li', null, w)))) : null,
      h('h4', null, 'Entry rules'), rules(s.entry_rules), h('h4', null, 'Exit rules'), rules(s.exit_rules),
      h('p', { class: 'hint' }, `Risk: stop ${rm.stop_loss_type} ${rm.stop_loss_value ?? ''}, target ${rm.take_profit_type} ${rm.take_profit_value ?? ''}, ${rm.risk_per_trade_percent ?? '—'} % per trade${rm.trailing_stop && rm.trailing_stop.enabled ? ', trailing stop' : ''}.`),
      (r.suggested_improvements || []).length ? h('details', null, h('summary', null, 'Suggested improvements'), h('ul', null, r.suggested_improvements.map((x) => h('li', null, x)))) : null,
      meta(r), h('div', { class: 'form-actions' }, save), after));
  }

  root.append(chat, h('div', { class: 'grid' }, analysis, gen));
}
