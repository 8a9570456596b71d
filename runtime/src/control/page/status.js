// The status page's script: plain JavaScript, no build step, nothing fetched from elsewhere.
//
// The call list is event-driven. The page reads /api/events with fetch() and parses the
// Server-Sent Events itself instead of using EventSource: EventSource cannot send an
// Authorization header, and the other way round it (the token in the URL) would put the token
// where URLs go (a proxy's access log, the browser's history). With fetch the token travels in
// the same header as on every other request. The list is loaded from /api/calls once the stream
// is open (at load and after every reconnect); events that arrive while that load is under way
// are kept and applied on top of it, so none is lost or undone.
//
// Two things come from a slow timer instead: the header and the chart (/api/status every 2 s:
// active calls, and the lateness histogram whose differences give the recent p99), and each
// call's packet count (/api/calls every 5 s, which updates the packets and duration of the rows
// already shown; calls come and go only by events). Durations tick locally every second.
'use strict';

const TOKEN_KEY = 'onhold-control-token';
const STATUS_EVERY_MS = 2000;
const PACKETS_EVERY_MS = 5000;
const CHART_WINDOW_S = 300;
// The server sends a keep-alive comment every 15 s: a stream silent for longer is dead.
const STREAM_SILENT_MS = 40000;

const $ = (id) => document.getElementById(id);
const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  calls: new Map(), // id -> { info, row, cells, base_s, base_at }
  classes: [],
  samples: [], // { t, calls, late_ms }
  lastLateness: null,
  streamUp: false,
  generation: 0, // bumped when a new token restarts the page's loops
};

class AuthNeeded extends Error {}

async function api(path, opts = {}) {
  const headers = new Headers(opts.headers || {});
  if (state.token) headers.set('Authorization', 'Bearer ' + state.token);
  const r = await fetch(path, { ...opts, headers, cache: 'no-store' });
  if (r.status === 401) {
    askToken(state.token ? 'That token was refused.' : '');
    throw new AuthNeeded();
  }
  return r;
}

async function apiJson(path, opts) {
  const r = await api(path, opts);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || 'HTTP ' + r.status);
  return body;
}

// ---- token ----

function askToken(message) {
  $('token-box').hidden = false;
  $('token-error').textContent = message;
  $('token-input').focus();
}

$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  state.token = $('token-input').value.trim();
  sessionStorage.setItem(TOKEN_KEY, state.token);
  $('token-input').value = '';
  $('token-box').hidden = true;
  start();
});

// ---- formatting ----

// Text changed only when it differs: a live region re-announces every write.
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function hms(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n) => String(n).padStart(2, '0');
  return (h > 0 ? h + ':' + pad(m) : String(m)) + ':' + pad(s % 60);
}

function span(seconds) {
  if (seconds == null) return 'off';
  if (seconds >= 3600 && seconds % 3600 === 0) return seconds / 3600 + ' h';
  if (seconds >= 60 && seconds % 60 === 0) return seconds / 60 + ' min';
  return seconds + ' s';
}

// `"Alice" <sip:201@10.0.0.5>;tag=x` -> `Alice (201)`; without a display name, `201@10.0.0.5`.
// The whole From is the cell's tooltip.
function caller(from) {
  if (!from) return '';
  const uri = /<?sips?:([^>;]+)>?/.exec(from);
  const name = /^\s*"?([^"<]*?)"?\s*</.exec(from);
  const who = uri ? uri[1] : from;
  return name && name[1] ? name[1] + ' (' + who.split('@')[0] + ')' : who;
}

// ---- header ----

function showStatus(s) {
  $('version').textContent = s.version + ' · ' + s.runtime;
  const h = $('health');
  h.className = 'health ' + s.health.status;
  setText(h, s.health.status + (s.health.reasons.length ? ': ' + s.health.reasons.join('; ') : ''));
  $('uptime').textContent = hms(s.uptime_s) + ' (since ' + s.started_at.replace('T', ' ').slice(0, 19) + ' UTC)';
  const limits = s.settings.limits;
  $('calls-active').textContent = s.calls_active + ' of ' + limits.max_calls;
  $('listeners').textContent = s.listeners
    .map((l) => l.transport + ' ' + l.address + (l.advertised ? ' as ' + l.advertised : ''))
    .join(', ');
  const rtp = s.settings.rtp;
  $('rtp').textContent = rtp.ip + ' ports ' + rtp.ports[0] + '–' + rtp.ports[1] +
    ', advertised ' + (s.settings.advertised || 'auto') + ', ptime ' + s.settings.ptime_ms + ' ms';
  const classes = s.music.classes;
  const tracks = classes.reduce((n, c) => n + c.tracks.length, 0);
  $('music-summary').textContent = classes.length + (classes.length === 1 ? ' class, ' : ' classes, ') +
    tracks + (tracks === 1 ? ' track, ' : ' tracks, ') + hms(s.music.seconds) + ' of audio';
  $('codecs').textContent = (s.settings.codecs.length ? s.settings.codecs.join(', ') : 'any offered') +
    ' (music held as ' + s.music.codecs.join(', ') + ')';
  $('limits').textContent = 'max_calls ' + limits.max_calls + ', ' + limits.calls_per_source +
    ' per source, ' + limits.invite_rate + ' INVITE/s per source (burst ' + limits.invite_burst +
    '), max call ' + span(limits.max_call_duration_s) + ', media timeout ' + span(limits.media_timeout_s);
  showClasses(classes);
  sample(s);
}

async function pollStatus(gen) {
  while (gen === state.generation) {
    try {
      showStatus(await apiJson('/api/status'));
    } catch (e) {
      if (e instanceof AuthNeeded) return;
      const h = $('health');
      h.className = 'health down';
      setText(h, 'unreachable');
    }
    await sleep(STATUS_EVERY_MS);
  }
}

// ---- chart ----

// The 99th percentile of the packets counted between two reads of the histogram: the upper
// bound of the bucket it falls in (the last bucket has none: its lower bound stands for it).
function p99(prev, now) {
  const delta = now.buckets.map((n, i) => n - (prev ? prev.buckets[i] : 0));
  const total = delta.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  let seen = 0;
  for (let i = 0; i < delta.length; i++) {
    seen += delta[i];
    if (seen >= total * 0.99) {
      const bound = now.bounds_us[Math.min(i, now.bounds_us.length - 1)];
      return bound / 1000;
    }
  }
  return null;
}

function sample(s) {
  const prev = state.lastLateness;
  // A restarted server counts from zero again: start the differences afresh.
  const fresh = prev && s.lateness.count >= prev.count ? prev : null;
  const late = fresh ? p99(fresh, s.lateness) : null;
  state.lastLateness = s.lateness;
  const t = Date.now() / 1000;
  state.samples.push({ t, calls: s.calls_active, late_ms: late });
  while (state.samples.length && state.samples[0].t < t - CHART_WINDOW_S) state.samples.shift();
  drawChart(t);
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text != null) el.textContent = text;
  return el;
}

function drawChart(now) {
  const chart = $('chart');
  // Drawn in CSS pixels at the chart's width, so text and lines are not stretched.
  const W = Math.max(300, Math.round(chart.getBoundingClientRect().width) || 600);
  const H = 180, L = 34, R = 44, T = 10, B = 20;
  chart.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  const pts = state.samples;
  // Axis tops that split into four round steps.
  const maxCalls = Math.ceil(Math.max(4, ...pts.map((p) => p.calls)) / 4) * 4;
  const highest = Math.max(0, ...pts.map((p) => p.late_ms || 0));
  const maxLate = [1, 2, 4, 10, 20, 40, 100].find((m) => m >= highest) || 100;
  const x = (t) => L + (W - L - R) * (1 - (now - t) / CHART_WINDOW_S);
  const yc = (v) => H - B - (H - T - B) * (v / maxCalls);
  const yl = (v) => H - B - (H - T - B) * (v / maxLate);
  const title = chart.querySelector('title');
  chart.replaceChildren(title);
  for (let i = 0; i <= 4; i++) {
    const y = T + (H - T - B) * (i / 4);
    chart.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: y, y2: y }));
    chart.append(svg('text', { class: 'axis', x: L - 4, y: y + 4, 'text-anchor': 'end' },
      String(Math.round(maxCalls * (1 - i / 4)))));
    chart.append(svg('text', { class: 'axis', x: W - R + 4, y: y + 4 },
      String(+(maxLate * (1 - i / 4)).toFixed(2))));
  }
  chart.append(svg('text', { class: 'axis', x: L, y: H - 4 }, '−5 min'));
  chart.append(svg('text', { class: 'axis', x: W - R, y: H - 4, 'text-anchor': 'end' }, 'now'));
  if (pts.length) {
    // Calls as steps: the count holds until the next sample.
    let d = '';
    pts.forEach((p, i) => {
      d += (i ? ' H' + x(p.t).toFixed(1) + ' V' : 'M' + x(p.t).toFixed(1) + ' ') + yc(p.calls).toFixed(1);
    });
    chart.append(svg('path', { class: 'calls', d }));
    const late = pts.filter((p) => p.late_ms != null)
      .map((p) => x(p.t).toFixed(1) + ',' + yl(p.late_ms).toFixed(1)).join(' ');
    if (late) chart.append(svg('polyline', { class: 'late', points: late }));
  }
  const last = pts[pts.length - 1];
  title.textContent = last
    ? 'Active calls now ' + last.calls + ', at most ' + Math.max(...pts.map((p) => p.calls)) +
      ' in the last 5 minutes; pacing lateness p99 ' +
      (last.late_ms == null ? 'not measured (no packets)' : 'at most ' + last.late_ms + ' ms') + '.'
    : 'No samples yet.';
}

// ---- music ----

function showClasses(classes) {
  const key = JSON.stringify(classes);
  if (key === state.classesKey) return;
  state.classesKey = key;
  state.classes = classes;
  const list = $('classes');
  list.replaceChildren(...classes.map((c) => {
    const li = document.createElement('li');
    const head = document.createElement('div');
    const name = document.createElement('strong');
    name.textContent = c.name;
    const info = document.createElement('span');
    info.className = 'muted';
    info.textContent = ' ' + (c.default ? 'default, ' : '') + c.mode + ', ' + c.tracks.length +
      (c.tracks.length === 1 ? ' track, ' : ' tracks, ') + hms(c.seconds) + ' ';
    const play = document.createElement('button');
    play.type = 'button';
    play.textContent = 'Play preview';
    play.setAttribute('aria-label', 'Play a preview of class ' + c.name);
    play.dataset.class = c.name;
    play.addEventListener('click', () => preview(c.name));
    head.append(name, info, play);
    const tracks = document.createElement('p');
    tracks.className = 'tracks';
    tracks.textContent = c.tracks.map((t) => t.name + ' (' + hms(t.seconds) + ')').join(' · ');
    li.append(head, tracks);
    return li;
  }));
  for (const entry of state.calls.values()) fillPicker(entry);
}

async function preview(name) {
  const label = $('preview-label');
  label.textContent = 'Loading ' + name + '…';
  try {
    // Fetched with the token, then played from a blob: an <audio src> cannot carry a header.
    const r = await api('/api/music/' + encodeURIComponent(name) + '/preview.wav');
    if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || 'HTTP ' + r.status);
    const audio = $('preview');
    if (audio.src) URL.revokeObjectURL(audio.src);
    audio.src = URL.createObjectURL(await r.blob());
    audio.dataset.class = name;
    label.textContent = 'Playing ' + name + ' as callers on PCMU hear it.';
    await audio.play().catch(() => {
      label.textContent = name + ' is loaded: press play.';
    });
  } catch (e) {
    if (!(e instanceof AuthNeeded)) label.textContent = 'Preview of ' + name + ' failed: ' + e.message;
  }
}

// ---- calls ----

const COLUMNS = ['Caller', 'Music', 'Codec', 'Remote RTP', 'Duration', 'Packets', 'State', 'Actions'];

function newRow(id) {
  const row = document.createElement('tr');
  row.dataset.call = id;
  const cells = {};
  ['caller', 'music', 'codec', 'rtp', 'duration', 'packets', 'state', 'act'].forEach((k, i) => {
    const td = document.createElement('td');
    td.dataset.label = COLUMNS[i];
    td.className = 'col-' + k + (k === 'duration' || k === 'packets' ? ' num' : '');
    row.append(td);
    cells[k] = td;
  });
  const picker = document.createElement('select');
  picker.addEventListener('change', () => pick(id, picker));
  cells.music.append(picker);
  const hang = document.createElement('button');
  hang.type = 'button';
  hang.className = 'hangup';
  hang.textContent = 'Hang up';
  hang.addEventListener('click', () => hangup(id, hang));
  cells.act.append(hang);
  return { row, cells, picker, hang };
}

// The picker's options: every class, the file playing if one is, and a way to pick a file.
// Rebuilt only when one of those changes, so an open picker is not closed by a refresh.
const FILE = '<file>';
function fillPicker(entry) {
  const { picker, info } = entry;
  const current = info.class || '';
  const key = JSON.stringify([state.classesKey, current, !!info.codec]);
  if (picker.dataset.key === key || picker.dataset.busy) return;
  picker.dataset.key = key;
  const names = state.classes.map((c) => c.name);
  const options = names.map((n) => [n, n]);
  if (current && !names.includes(current)) options.push([current, current.split('/').pop() + ' (file)']);
  options.push([FILE, 'Play a file…']);
  picker.replaceChildren(...options.map(([value, text]) => {
    const o = document.createElement('option');
    o.value = value;
    o.textContent = text;
    return o;
  }));
  picker.value = current;
  picker.disabled = !info.codec; // no media yet: nothing to switch
}

async function pick(id, picker) {
  let body;
  if (picker.value === FILE) {
    const path = window.prompt('Path of a music file on the server (WAV, MP3, FLAC, Ogg, AAC):');
    if (!path) {
      delete picker.dataset.key;
      fillPicker(state.calls.get(id));
      return;
    }
    body = { file: path };
  } else {
    body = { class: picker.value };
  }
  picker.dataset.busy = '1';
  try {
    const r = await apiJson('/api/calls/' + id + '/source', { method: 'POST', body: JSON.stringify(body) });
    const entry = state.calls.get(id);
    if (entry) entry.info.class = r.playing.class || r.playing.file;
    $('call-error').textContent = '';
  } catch (e) {
    if (!(e instanceof AuthNeeded)) $('call-error').textContent = 'Could not switch the music: ' + e.message;
  } finally {
    delete picker.dataset.busy;
    delete picker.dataset.key;
    const entry = state.calls.get(id);
    if (entry) fillPicker(entry);
  }
}

async function hangup(id, button) {
  button.disabled = true;
  try {
    await apiJson('/api/calls/' + id, { method: 'DELETE' });
    $('call-error').textContent = '';
    // The row goes when call.ended arrives.
  } catch (e) {
    button.disabled = false;
    if (!(e instanceof AuthNeeded)) $('call-error').textContent = 'Could not hang up: ' + e.message;
  }
}

function upsert(id, fields, announce) {
  let entry = state.calls.get(id);
  if (!entry) {
    entry = { info: {}, base_s: 0, base_at: Date.now(), ...newRow(id) };
    state.calls.set(id, entry);
    // Rows stay in the order calls came: a new one goes last, so nothing under the pointer moves.
    $('call-rows').append(entry.row);
  }
  Object.assign(entry.info, fields);
  if (fields.duration_s != null) {
    entry.base_s = fields.duration_s;
    entry.base_at = Date.now();
  }
  renderRow(entry);
  fillPicker(entry);
  if (announce) $('call-news').textContent = announce;
  renderCount();
  return entry;
}

function renderRow(entry) {
  const { info, cells, hang } = entry;
  const who = caller(info.from) || info.user || '?';
  cells.caller.textContent = who;
  cells.caller.title = info.from || '';
  cells.codec.textContent = info.codec || '–';
  cells.rtp.textContent = info.remote_rtp || '–';
  cells.rtp.title = info.remote_rtp || '';
  if (info.latched) {
    const tag = document.createElement('span');
    tag.className = 'latched';
    tag.textContent = ' latched';
    cells.rtp.append(tag);
  }
  cells.packets.textContent = info.packets_sent != null ? info.packets_sent.toLocaleString('en') : '–';
  const label = info.direction === 'sending' ? 'playing' : info.direction === 'held' ? 'held' : 'answering';
  cells.state.replaceChildren(Object.assign(document.createElement('span'), {
    className: 'state ' + label,
    textContent: label,
  }));
  entry.picker.setAttribute('aria-label', 'Music for the call from ' + who);
  hang.setAttribute('aria-label', 'Hang up the call from ' + who);
  tick(entry);
}

function tick(entry) {
  entry.cells.duration.textContent = hms(entry.base_s + (Date.now() - entry.base_at) / 1000);
}

function remove(id, announce) {
  const entry = state.calls.get(id);
  if (!entry) return;
  const hadFocus = entry.row.contains(document.activeElement);
  entry.row.remove();
  state.calls.delete(id);
  if (hadFocus) $('calls-title').focus();
  if (announce) $('call-news').textContent = announce;
  renderCount();
}

function renderCount() {
  const n = state.calls.size;
  $('calls-count').textContent = '(' + n + ')';
  $('no-calls').hidden = n > 0;
}

// What the end reasons the server names mean, for the announcement.
const ENDED = {
  remote_bye: 'the caller hung up',
  cancelled: 'the caller gave up before the answer',
  operator: 'hung up by operator',
  shutdown: 'the server is stopping',
  max_duration: 'it reached max_call_duration',
  media_timeout: 'the caller went silent (media_timeout)',
};

function applyEvent(ev) {
  const d = ev.data;
  switch (ev.event) {
    case 'call.started':
      upsert(d.call, { from: d.from, user: d.user, remote_sip: d.remote_sip, direction: 'answering' },
        'Call from ' + caller(d.from) + ' is being answered.');
      break;
    case 'call.answered':
      upsert(d.call, {
        user: d.user, class: d.class, codec: d.codec, remote_rtp: d.remote_rtp,
        direction: d.direction, duration_s: 0, packets_sent: 0,
      }, 'Call ' + d.call + ' answered: ' + d.codec + ', playing ' + d.class + '.');
      break;
    case 'call.held':
    case 'call.resumed':
      if (state.calls.has(d.call)) upsert(d.call, { direction: d.direction }, 'Call ' + d.call + (ev.event === 'call.held' ? ' put us on hold.' : ' resumed.'));
      break;
    case 'call.media':
      if (state.calls.has(d.call)) upsert(d.call, { remote_rtp: d.remote_rtp, latched: d.latched });
      break;
    case 'call.ended':
      if (state.calls.has(d.call)) {
        const who = caller(state.calls.get(d.call).info.from) || d.call;
        remove(d.call, 'Call from ' + who + ' ended: ' + (ENDED[d.reason] || d.reason.replace(/_/g, ' ')) + '.');
      }
      break;
    default:
      break;
  }
}

// The list as the server has it now: rows for calls that are gone go, the rest are refreshed.
async function loadCalls() {
  const { calls } = await apiJson('/api/calls');
  const ids = new Set(calls.map((c) => c.id));
  for (const id of [...state.calls.keys()]) if (!ids.has(id)) remove(id);
  for (const c of calls) upsert(c.id, c);
  renderCount();
}

// Packets and durations of the rows shown, from the call JSON; never adds or removes a row.
async function refreshPackets(gen) {
  while (gen === state.generation) {
    await sleep(PACKETS_EVERY_MS);
    if (!state.streamUp || state.calls.size === 0) continue;
    try {
      const { calls } = await apiJson('/api/calls');
      for (const c of calls) {
        const entry = state.calls.get(c.id);
        if (entry) upsert(c.id, { packets_sent: c.packets_sent, duration_s: c.duration_s, latched: c.latched });
      }
    } catch (e) {
      if (e instanceof AuthNeeded) return;
    }
  }
}

// ---- the event stream ----

function setStream(up, message) {
  state.streamUp = up;
  const banner = $('banner');
  banner.hidden = up;
  banner.textContent = up ? '' : message;
  document.querySelector('.calls-box').classList.toggle('stale', !up);
}

function parseFrame(frame) {
  const ev = { event: 'message', data: '' };
  for (const line of frame.split('\n')) {
    if (line.startsWith(':')) continue;
    const at = line.indexOf(':');
    const field = at < 0 ? line : line.slice(0, at);
    const value = at < 0 ? '' : line.slice(at + 1).replace(/^ /, '');
    if (field === 'event') ev.event = value;
    else if (field === 'data') ev.data += (ev.data ? '\n' : '') + value;
    else if (field === 'id') ev.id = value;
  }
  if (!ev.data) return null;
  try {
    ev.data = JSON.parse(ev.data);
  } catch {
    return null;
  }
  return ev;
}

async function streamEvents(gen) {
  let wait = 1;
  while (gen === state.generation) {
    const abort = new AbortController();
    let silence;
    let refused = false; // the list's load was refused: the token form is up
    const watchdog = () => {
      clearTimeout(silence);
      silence = setTimeout(() => abort.abort(), STREAM_SILENT_MS);
    };
    try {
      const r = await api('/api/events', { signal: abort.signal });
      if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
      watchdog();
      let ready = false;
      let early = [];
      loadCalls().then(() => {
        ready = true;
        early.forEach(applyEvent);
        early = [];
        setStream(true);
        wait = 1;
      }, (e) => {
        refused = e instanceof AuthNeeded;
        abort.abort();
      });
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        watchdog();
        buf += value.replace(/\r\n?/g, '\n');
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const ev = parseFrame(buf.slice(0, end));
          buf = buf.slice(end + 2);
          if (!ev) continue;
          if (ready) applyEvent(ev);
          else early.push(ev);
        }
      }
    } catch (e) {
      if (e instanceof AuthNeeded) return;
    } finally {
      clearTimeout(silence);
    }
    if (gen !== state.generation || refused) return;
    for (let left = wait; left > 0; left--) {
      setStream(false, 'Live updates lost: the server is not answering. Reconnecting in ' + left + ' s…');
      await sleep(1000);
    }
    setStream(false, 'Live updates lost: reconnecting…');
    wait = Math.min(wait * 2, 10);
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function start() {
  state.generation += 1;
  const gen = state.generation;
  pollStatus(gen);
  streamEvents(gen);
  refreshPackets(gen);
}

setInterval(() => state.calls.forEach(tick), 1000);
window.addEventListener('resize', () => drawChart(Date.now() / 1000));
renderCount();
start();
