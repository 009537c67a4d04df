// Herald's operator console: vanilla JS against the JSON API in docs/admin.md. Everything the
// server says reaches the page through textContent or attributes, never as HTML. The CSRF token
// lives in this closure only, so a reload asks for the admin token again.
'use strict';

(() => {
  const API = '/console/api';
  const POLL_MS = 2000;
  const MESSAGE_TYPES = { 1: 'text', 11: 'image', 12: 'file', 13: 'audio', 14: 'video', 200: 'custom' };
  const PUSH_TYPES = { 0: 'online only', 1: 'online + push', 2: 'push only' };

  let csrf = null;
  let overview = null;
  let pollGeneration = 0;
  let pending = null; // the body under review in the send form
  let currentView = 'overview';

  const $ = (id) => document.getElementById(id);

  /** Builds an element; strings among `children` become text nodes, never markup. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'text') node.textContent = String(value);
      else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const fmt = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : String(n ?? '—'));
  const pad = (n) => String(n).padStart(2, '0');
  function fmtTime(ms) {
    if (typeof ms !== 'number') return '—';
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  const typeName = (t) => (MESSAGE_TYPES[t] ? `${t} ${MESSAGE_TYPES[t]}` : String(t));
  const clip = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

  class SignedOut extends Error {}

  /** One JSON API call. A 401 outside sign-in means the session is gone: back to sign-in. */
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if ((method === 'POST' || method === 'DELETE') && csrf) headers['X-CSRF-Token'] = csrf;
    const res = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = { error: text };
      }
    }
    if (res.status === 401 && path !== '/session') {
      signedOut('Your session has ended; sign in again.');
      throw new SignedOut();
    }
    return { status: res.status, ok: res.ok, data };
  }

  const failure = (res) => `${res.status}: ${(res.data && res.data.error) || 'request failed'}`;

  function notice(text, kind = 'error') {
    const n = $('notice');
    n.textContent = text || '';
    n.dataset.kind = kind;
    n.hidden = !text;
  }

  /** Runs an action, turning network errors into the notice line. */
  async function guarded(what, action) {
    try {
      return await action();
    } catch (e) {
      if (!(e instanceof SignedOut)) notice(`${what}: ${e.message || e}`);
      return undefined;
    }
  }

  // --- Views -------------------------------------------------------------------------------

  function show(view) {
    currentView = view;
    for (const section of document.querySelectorAll('[data-view]')) section.hidden = section.id !== view;
    for (const tab of document.querySelectorAll('#tabs [data-tab]')) {
      if (tab.dataset.tab === view) tab.setAttribute('aria-current', 'page');
      else tab.removeAttribute('aria-current');
    }
    if (view === 'broadcasts') loadBroadcasts();
  }

  function signedIn() {
    $('sign-in-view').hidden = true;
    $('tabs').hidden = false;
    $('sign-out').hidden = false;
    notice('');
    show('overview');
    poll(++pollGeneration);
  }

  function signedOut(message) {
    csrf = null;
    overview = null;
    pollGeneration++;
    pending = null;
    for (const section of document.querySelectorAll('[data-view]')) section.hidden = true;
    $('tabs').hidden = true;
    $('sign-out').hidden = true;
    $('confirm').hidden = true;
    $('result').hidden = true;
    $('report').hidden = true;
    $('user-result').hidden = true;
    $('sign-in-view').hidden = false;
    notice(message || '', 'info');
    $('sign-in').elements.token.focus();
  }

  // --- Sign-in -----------------------------------------------------------------------------

  async function start() {
    const res = await guarded('Cannot reach Herald', () => api('GET', '/status'));
    if (!res) return;
    if (res.ok && res.data && res.data.enabled === false) {
      $('off').hidden = false;
      return;
    }
    signedOut();
  }

  $('sign-in').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const error = form.querySelector('.error');
    error.textContent = '';
    const button = form.querySelector('button');
    button.disabled = true;
    const res = await guarded('Sign-in failed', () => api('POST', '/session', { token: form.elements.token.value }));
    button.disabled = false;
    if (!res) return;
    if (res.ok && res.data && typeof res.data.csrf === 'string') {
      csrf = res.data.csrf;
      form.reset();
      signedIn();
    } else {
      error.textContent = res.status === 401 ? 'sign-in refused' : failure(res);
    }
  });

  $('sign-out').addEventListener('click', async () => {
    await guarded('Sign-out failed', () => api('DELETE', '/session'));
    signedOut('Signed out.');
  });

  for (const tab of document.querySelectorAll('#tabs [data-tab]')) {
    tab.addEventListener('click', () => show(tab.dataset.tab));
  }

  // --- Overview ----------------------------------------------------------------------------

  async function poll(generation) {
    while (generation === pollGeneration) {
      await refreshOverview();
      if (generation !== pollGeneration) return;
      if (currentView === 'broadcasts' && $('report').hidden) await loadBroadcasts();
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  async function refreshOverview() {
    const res = await guarded('Cannot reach Herald; retrying', () => api('GET', '/overview'));
    if (!res) return;
    if (!res.ok) return notice(`Overview: ${failure(res)}`);
    if ($('notice').dataset.kind === 'error') notice('');
    overview = res.data;
    renderOverview();
    fillAppSelects();
    if (!$('confirm').hidden) describeReach();
  }

  function stat(value, label, attrs) {
    return el('div', { class: 'stat' }, el('span', { class: 'value', ...attrs }, value), el('span', { class: 'label' }, label));
  }

  // A job walks every push binding of its app: progress is the bindings it has dealt with
  // (tried, or skipped because the user was online) out of the app's bindings.
  function pushJobRow(job, bindings) {
    const done = (job.targeted || 0) + (job.skipped_online || 0);
    const targeted = Math.max(bindings || 0, done);
    const percent = targeted > 0 ? Math.min(100, Math.floor((done / targeted) * 100)) : 0;
    return el(
      'tr',
      { 'data-message-id': job.message_id },
      el('td', {}, el('code', {}, job.message_id)),
      el('td', {}, el('span', { class: `state state-${job.state}` }, job.state)),
      el(
        'td',
        { class: 'progress-cell' },
        el('progress', { 'data-testid': 'push-progress', max: Math.max(targeted, 1), value: Math.min(done, Math.max(targeted, 1)) }),
        el('span', { class: 'muted' }, `${fmt(done)} / ${fmt(targeted)} (${percent}%)`),
      ),
      el('td', { class: 'num' }, fmt(job.sent)),
      el('td', { class: 'num' }, fmt(job.failed)),
      el('td', { class: 'num' }, fmt(job.removed)),
      el('td', { class: 'num' }, fmt(job.skipped_online)),
    );
  }

  function appCard(app) {
    const cap = app.per_day_cap || 0;
    const jobs = app.push_jobs || [];
    return el(
      'article',
      { class: 'card app', 'data-app-id': app.app_id },
      el('h3', {}, 'App ', el('code', {}, app.app_id)),
      el(
        'div',
        { class: 'stats' },
        stat(fmt(app.sessions), 'online sessions', { 'data-testid': 'online-sessions', 'data-app-id': app.app_id }),
        stat(fmt(app.users), 'users online', { 'data-testid': 'online-users', 'data-app-id': app.app_id }),
        el(
          'div',
          { class: 'stat' },
          el('span', { class: 'value', 'data-testid': 'broadcasts-today', 'data-app-id': app.app_id }, `${fmt(app.broadcasts_today)} / ${fmt(cap)}`),
          el('span', { class: 'label' }, 'broadcasts in 24 h / daily cap'),
          el('meter', { min: 0, max: Math.max(cap, 1), value: app.broadcasts_today || 0, low: cap * 0.7, high: cap * 0.9, optimum: 0 }),
        ),
        stat(`${fmt(app.per_second_cap)} / s`, 'broadcast rate cap'),
      ),
      jobs.length === 0
        ? el('p', { class: 'muted' }, 'No offline push in progress.')
        : el(
            'table',
            { class: 'jobs' },
            el('caption', {}, 'Offline push in progress'),
            el(
              'thead',
              {},
              el(
                'tr',
                {},
                el('th', {}, 'message'),
                el('th', {}, 'state'),
                el('th', {}, 'progress'),
                el('th', { class: 'num' }, 'sent'),
                el('th', { class: 'num' }, 'failed'),
                el('th', { class: 'num' }, 'removed'),
                el('th', { class: 'num' }, 'skipped online'),
              ),
            ),
            el('tbody', {}, jobs.map((job) => pushJobRow(job, app.push_bindings))),
          ),
    );
  }

  function renderOverview() {
    const o = overview;
    const where = o.cluster ? `cluster, node ${o.node_id}` : 'single node';
    $('overview-updated').textContent = `${where} · server time ${fmtTime(o.server_time_ms)}`;
    $('apps').replaceChildren(...(o.apps || []).map(appCard));
    const nodes = o.nodes || [];
    $('nodes').hidden = nodes.length === 0;
    $('node-rows').replaceChildren(
      ...nodes.map((n) =>
        el(
          'tr',
          { 'data-node-id': n.node_id },
          el('td', {}, String(n.node_id), n.node_id === o.node_id ? el('span', { class: 'muted' }, ' (this node)') : null),
          el('td', { class: 'num' }, fmt(n.sessions)),
          el('td', {}, el('span', { class: n.alive ? 'state state-done' : 'state state-failed' }, n.alive ? 'alive' : 'lease lapsed')),
          el('td', {}, fmtTime(n.lease_until_ms)),
        ),
      ),
    );
  }

  function fillAppSelects() {
    const ids = (overview.apps || []).map((a) => String(a.app_id));
    for (const select of document.querySelectorAll('select[data-apps]')) {
      const have = [...select.options].map((o) => o.value);
      if (have.join() === ids.join()) continue;
      const chosen = select.value;
      select.replaceChildren(...ids.map((id) => el('option', { value: id }, id)));
      if (ids.includes(chosen)) select.value = chosen;
      select.dispatchEvent(new Event('change'));
    }
  }

  const appOf = (id) => (overview && overview.apps || []).find((a) => String(a.app_id) === String(id));

  // --- Broadcasts --------------------------------------------------------------------------

  function pushSummary(p) {
    if (!p || p.State === 'none') return 'none';
    return `${p.State}: ${fmt(p.Sent)} sent, ${fmt(p.Failed)} failed of ${fmt(p.Targeted)}`;
  }

  async function loadBroadcasts() {
    const app = $('broadcasts-app').value;
    if (!app) return;
    const res = await guarded('Broadcasts', () => api('GET', `/apps/${encodeURIComponent(app)}/broadcasts?limit=50`));
    if (!res) return;
    if (!res.ok) return notice(`Broadcasts: ${failure(res)}`);
    if (app !== $('broadcasts-app').value) return; // the app changed while this was in flight
    const list = res.data.broadcasts || [];
    $('broadcasts-empty').hidden = list.length > 0;
    $('broadcast-table').hidden = list.length === 0;
    $('broadcast-list').replaceChildren(
      ...list.map((b) => {
        const open = () => openReport(app, b.MessageId);
        const text = (b.MessageBody && b.MessageBody.Message) || '';
        return el(
          'tr',
          { 'data-testid': 'broadcast', 'data-message-id': b.MessageId, class: 'clickable', onclick: open },
          el('td', {}, fmtTime(b.AcceptedAt)),
          el(
            'td',
            {},
            el('button', { type: 'button', class: 'link', 'data-testid': 'broadcast-open', onclick: (e) => (e.stopPropagation(), open()) }, b.MessageId),
            el('div', { class: 'excerpt', 'data-testid': 'broadcast-text' }, clip(text, 80)),
          ),
          el('td', {}, b.FromUserId),
          el('td', {}, typeName(b.MessageType)),
          el('td', {}, `${b.PushType} ${PUSH_TYPES[b.PushType] || ''}`),
          el('td', { class: 'num', 'data-testid': 'broadcast-online' }, fmt(b.OnlineDelivered)),
          el('td', { class: 'num' }, fmt(b.RecoveredDelivered)),
          el('td', {}, pushSummary(b.OfflinePush)),
        );
      }),
    );
  }

  function fields(dl, pairs) {
    dl.replaceChildren(
      ...pairs.flatMap(([name, value, attrs]) => [el('dt', {}, name), el('dd', attrs || {}, value === '' ? el('span', { class: 'muted' }, '(empty)') : value)]),
    );
  }

  async function openReport(app, messageId) {
    const res = await guarded('Report', () => api('GET', `/apps/${encodeURIComponent(app)}/broadcasts/${encodeURIComponent(messageId)}`));
    if (!res) return;
    if (!res.ok) return notice(`Report: ${failure(res)}`);
    const r = res.data;
    const body = r.MessageBody || {};
    const push = r.OfflinePush || {};
    $('report-id').textContent = r.MessageId;
    const pairs = [
      ['From', r.FromUserId],
      ['Message type', typeName(r.MessageType)],
      ['Push type', `${r.PushType} ${PUSH_TYPES[r.PushType] || ''}`],
      ['Accepted', fmtTime(r.AcceptedAt)],
      ['Delivered online', fmt(r.OnlineDelivered), { 'data-testid': 'report-online' }],
      ['Delivered on reconnect', fmt(r.RecoveredDelivered)],
      ['Message', typeof body.Message === 'string' ? body.Message : '', { class: 'pre', 'data-testid': 'report-message' }],
      ['Extended data', typeof body.ExtendedData === 'string' ? body.ExtendedData : ''],
      ['Offline push', push.State || 'none'],
    ];
    if (push.State && push.State !== 'none') {
      pairs.push(
        ['Targeted', fmt(push.Targeted)],
        ['Sent', fmt(push.Sent)],
        ['Failed', fmt(push.Failed)],
        ['Removed bindings', fmt(push.RemovedBindings)],
        ['Skipped (online)', fmt(push.SkippedOnline)],
        ['Updated', fmtTime(push.UpdatedAt)],
        ['Finished', fmtTime(push.FinishedAt)],
      );
    }
    fields($('report-fields'), pairs);
    $('report-json').textContent = JSON.stringify(r, null, 2);
    $('report').hidden = false;
    $('report').scrollIntoView({ block: 'nearest' });
  }

  $('report-close').addEventListener('click', () => ($('report').hidden = true));
  $('broadcasts-app').addEventListener('change', () => {
    $('report').hidden = true;
    if (currentView === 'broadcasts') loadBroadcasts();
  });
  $('broadcasts-refresh').addEventListener('click', () => loadBroadcasts());

  // --- Send --------------------------------------------------------------------------------

  const sendForm = $('broadcast-form');

  /** The SendMessageToAllUsers body exactly as it will be sent. */
  function broadcastBody() {
    const f = sendForm.elements;
    const type = Number(f.type.value);
    const body = { FromUserId: f.from.value, MessageType: type };
    if (type === 200) {
      const raw = f.subType.value.trim();
      body.SubMsgType = raw !== '' && Number.isInteger(Number(raw)) ? Number(raw) : raw;
    }
    const messageBody = { Message: f.message.value };
    if (f.extended.value !== '') messageBody.ExtendedData = f.extended.value;
    if (f.pushTitle.value !== '' || f.pushContent.value !== '') {
      messageBody.OfflinePush = {};
      if (f.pushTitle.value !== '') messageBody.OfflinePush.Title = f.pushTitle.value;
      if (f.pushContent.value !== '') messageBody.OfflinePush.Content = f.pushContent.value;
    }
    body.MessageBody = messageBody;
    body.PushType = Number(f.push.value);
    return body;
  }

  function updateSendForm() {
    const type = Number(sendForm.elements.type.value);
    $('sub-type-field').hidden = type !== 200;
    $('message-label').textContent =
      type === 1 ? 'Text' : type === 200 ? 'Message (custom, often JSON)' : 'Message (a JSON object, e.g. {"url": "https://…"})';
    $('broadcast-preview').textContent = JSON.stringify(broadcastBody(), null, 2);
    // Any change after review needs a new review.
    pending = null;
    $('confirm').hidden = true;
  }

  function describeReach() {
    if (!pending) return;
    const app = appOf(pending.app);
    const sessions = app ? app.sessions : 0;
    const s = `${fmt(sessions)} online session${sessions === 1 ? '' : 's'}`;
    const text =
      pending.body.PushType === 2
        ? `This broadcast goes to app ${pending.app} as a push to every offline user with a push binding; the ${s} get nothing (PushType 2).`
        : pending.body.PushType === 1
          ? `This broadcast will reach ${s} of app ${pending.app} now, and every offline user with a push binding by push.`
          : `This broadcast will reach ${s} of app ${pending.app} now.`;
    $('confirm-text').textContent = text;
    $('confirm-text').dataset.sessions = String(sessions);
  }

  sendForm.addEventListener('input', updateSendForm);
  sendForm.addEventListener('change', updateSendForm);
  sendForm.addEventListener('submit', (event) => {
    event.preventDefault();
    updateSendForm();
    pending = { app: sendForm.elements.app.value, body: broadcastBody() };
    if (!pending.app) return notice('No app to send to yet; wait for the overview.');
    describeReach();
    $('result').hidden = true;
    $('confirm').hidden = false;
    $('broadcast-confirm').disabled = false;
    $('broadcast-confirm').focus();
  });

  $('broadcast-cancel').addEventListener('click', () => {
    pending = null;
    $('confirm').hidden = true;
  });

  $('broadcast-confirm').addEventListener('click', async () => {
    if (!pending) return;
    const { app, body } = pending;
    $('broadcast-confirm').disabled = true;
    const res = await guarded('Send', () => api('POST', `/apps/${encodeURIComponent(app)}/broadcasts`, body));
    $('broadcast-confirm').disabled = false;
    if (!res) return;
    pending = null;
    $('confirm').hidden = true;
    if (!res.ok) return notice(`Send: ${failure(res)}`);
    const answer = res.data || {};
    $('result-code').textContent = String(answer.Code);
    $('result-code').dataset.code = String(answer.Code);
    $('result-message').textContent = String(answer.Message);
    $('result-request').textContent = String(answer.RequestId ?? '');
    $('result').dataset.ok = String(answer.Code === 0);
    $('result').hidden = false;
    refreshOverview();
  });

  // --- Users -------------------------------------------------------------------------------

  $('user-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const f = event.currentTarget.elements;
    const app = f.app.value;
    const userId = f.user.value;
    const res = await guarded('User', () => api('GET', `/apps/${encodeURIComponent(app)}/users/${encodeURIComponent(userId)}`));
    if (!res) return;
    if (!res.ok) return notice(`User: ${failure(res)}`);
    const { user, online, sessions_here: here } = res.data;
    const pairs = user
      ? [
          ['User ID', user.UserId],
          ['Name', user.UserName || ''],
          ['Avatar', user.UserAvatar || ''],
          ['Extra', user.Extra || '', { class: 'pre' }],
        ]
      : [['User ID', userId], ['Profile', 'not registered']];
    pairs.push(
      ['Online', online ? 'yes' : 'no', { 'data-testid': 'user-online' }],
      ['Sessions on this node', fmt(here)],
    );
    fields($('user-fields'), pairs);
    $('user-result').hidden = false;
    notice('');
  });

  updateSendForm();
  start();
})();
