// Recording the call (docs/protocol.md "Recording"): the host's "Записать звонок"
// dialog, the "Запись" indicator with its running time (everyone, late joiners too),
// the stop confirmation, and the chat card of a finished recording.

import { icon, setIcon } from './icons.js';
import * as i18n from './i18n.js';
import { confirmAction, formatTime, toast } from './ui.js';

const $ = (id) => document.getElementById(id);
const MAX_TITLE = 200;
const START_TIMEOUT_MS = 20000;

function el(tag, className = '', text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null) node.textContent = text;
  return node;
}

/** "00:07", "12:34", "1:02:03" (hours only past an hour). */
export function formatClock(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/** "95,4 МБ", "512 КБ", "1,2 ГБ" in the page's language. */
export function formatSize(bytes) {
  const n = Math.max(0, Number(bytes) || 0);
  const number = (value) => new Intl.NumberFormat(i18n.language(), {
    maximumFractionDigits: value < 10 ? 1 : 0,
  }).format(value);
  if (n >= 1024 ** 3) return i18n.t('recording.size_gb', { n: number(n / 1024 ** 3) });
  if (n >= 1024 ** 2) return i18n.t('recording.size_mb', { n: number(n / 1024 ** 2) });
  return i18n.t('recording.size_kb', { n: number(Math.max(n / 1024, n ? 0.1 : 0)) });
}

/** "Математика, 5А, 24.11.2026": the subject, the class and the lesson's date. */
export function defaultTitle(call, now = new Date()) {
  const parts = [];
  if (call) {
    if (call.subject) parts.push(call.subject);
    if (call.group_title) parts.push(call.group_title);
    if (!parts.length && call.title) parts.push(call.title);
  }
  let day = call && call.starts_at ? new Date(call.starts_at) : now;
  if (Number.isNaN(day.getTime())) day = now;
  const date = [
    String(day.getDate()).padStart(2, '0'),
    String(day.getMonth() + 1).padStart(2, '0'),
    String(day.getFullYear()),
  ].join('.');
  const head = parts.join(', ').slice(0, MAX_TITLE - date.length - 2);
  return head ? `${head}, ${date}` : date;
}

/** A same-origin path of the server with the join token in its query (null if not a path). */
export function withToken(path, token) {
  if (typeof path !== 'string' || !path.startsWith('/') || path.startsWith('//')) return null;
  if (!token) return path;
  return `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
}

/**
 * The indicator, the host's start dialog and stop confirmation.
 *
 * send(message) -> the id of the message sent (or null when offline);
 * isHost() / selfId() / call() / inBreakoutRoom() describe the page now.
 */
export class RecordingControl {
  constructor({ send, isHost, selfId, call, inBreakoutRoom = () => false }) {
    this.send = send;
    this.selfId = selfId;
    this.isHost = isHost;
    this.call = call;
    this.inBreakoutRoom = inBreakoutRoom;
    this.state = null; // the running recording (RecordingState), or null
    this.base = 0; // performance.now() at which the recording's time was 0
    this.timer = null;
    this.pendingStart = null; // the id of our recording_start waiting for an answer
    this.pendingTimer = null;
    this.pendingStop = null;
    this.stopAsking = false;
    this.stoppedToast = null;
    this.live = false; // in a call: announce changes with a toast
    this.indicator = $('recording-indicator');
    this.elapsed = $('recording-elapsed');
    this.stopButton = $('recording-stop');
    this.button = $('toggle-recording');
    this.dialog = $('recording-dialog');
    this.form = $('recording-form');
    this.titleInput = $('recording-title');
    this.button.addEventListener('click', () => {
      if (this.state) this.askStop();
      else this.openDialog();
    });
    this.stopButton.addEventListener('click', () => this.askStop());
    this.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
    $('recording-cancel').addEventListener('click', () => this.closeDialog());
  }

  /** Seconds recorded so far, by the local clock (null when not recording). */
  get seconds() {
    return this.state ? Math.max(0, (performance.now() - this.base) / 1000) : null;
  }

  /**
   * The recording now: from `joined` (joining: true, a late joiner) or a
   * `recording` message (reason "disk_full": the server stopped it). null: nothing is
   * being recorded.
   */
  set(state, { joining = false, reason = null } = {}) {
    const before = this.state;
    const next = state && typeof state === 'object' && state.id ? state : null;
    this.state = next;
    if (next) {
      const elapsed = Number(next.elapsed_s);
      this.base = performance.now() - (Number.isFinite(elapsed) && elapsed > 0 ? elapsed * 1000 : 0);
    }
    this.clearPendingStart();
    if (!next) this.pendingStop = null;
    // Someone (another host) started one while our start dialog was open.
    if (next) this.closeDialog();
    if (next && !this.timer) this.timer = setInterval(() => this.tick(), 500);
    if (!next && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
    if (!next && this.stopAsking) {
      // Another host stopped it while we were asking.
      this.stopAsking = false;
      this.closeConfirm();
    }
    this.render();
    if (!this.live) return;
    if (next && (!before || before.id !== next.id)) {
      const author = next.author || {};
      const mine = Boolean(author.id) && author.id === this.selfId();
      let text;
      if (joining) text = i18n.t('recording.toast_late');
      else if (mine) text = i18n.t('recording.toast_started_self');
      else text = i18n.t('recording.toast_started', { name: author.name || i18n.t('call.host') });
      toast(text, 'info', { timeoutMs: 7000 });
    } else if (!next && before) {
      if (reason === 'disk_full') {
        // Stays when the card arrives: why it stopped is not old news.
        toast(i18n.t('recording.toast_stopped_disk_full'), 'warning', { timeoutMs: 15000 });
      } else {
        this.stoppedToast = toast(i18n.t('recording.toast_stopped'), 'info', { timeoutMs: 7000 });
      }
    }
  }

  /** A recording is finished (its card is in the chat): "it will appear" is old news. */
  finished() {
    if (this.stoppedToast) this.stoppedToast.remove();
    this.stoppedToast = null;
  }

  /** In the call (true) or not (false: the indicator goes, no toasts). */
  setLive(live) {
    this.live = live;
  }

  /** Leaving the call: nothing is shown any more. */
  reset() {
    this.live = false;
    this.closeDialog();
    this.set(null);
  }

  render() {
    const state = this.state;
    const host = Boolean(this.isHost());
    this.indicator.hidden = !state;
    this.indicator.dataset.recordingId = state ? state.id : '';
    if (state) {
      const author = (state.author && state.author.name) || '';
      const key = this.inBreakoutRoom() ? 'recording.indicator_title_room' : 'recording.indicator_title';
      this.indicator.title = i18n.t(key, { title: state.title || '', name: author });
      this.tick();
    } else {
      this.elapsed.textContent = '';
    }
    this.stopButton.hidden = !state || !host;
    this.stopButton.disabled = Boolean(this.pendingStop);
    // The control-bar button: start, or stop while recording.
    this.button.hidden = !host;
    const starting = Boolean(this.pendingStart);
    this.button.disabled = starting || Boolean(this.pendingStop);
    this.button.classList.toggle('ctrl-recording', Boolean(state));
    this.button.setAttribute('aria-pressed', String(Boolean(state)));
    let label = 'recording.start';
    if (state) label = 'recording.stop_control';
    else if (starting) label = 'recording.starting';
    setIcon(this.button.querySelector('.icon-slot'), state ? 'record-stop' : 'record');
    const text = this.button.querySelector('.ctrl-label');
    text.dataset.i18n = label;
    text.textContent = i18n.t(label);
    this.button.title = i18n.t(state ? 'recording.stop_title' : 'recording.start_title');
  }

  tick() {
    const seconds = this.seconds;
    if (seconds === null) return;
    const text = formatClock(seconds);
    if (this.elapsed.textContent !== text) this.elapsed.textContent = text;
    this.elapsed.dataset.seconds = String(Math.floor(seconds));
  }

  // ------------------------------------------------------------ starting

  openDialog() {
    if (!this.isHost() || this.state || this.pendingStart) return;
    this.titleInput.value = defaultTitle(this.call());
    if (!this.dialog.open) this.dialog.showModal();
    this.titleInput.focus();
    this.titleInput.select();
  }

  closeDialog() {
    if (this.dialog.open) this.dialog.close();
  }

  visibility() {
    const roles = ['teacher'];
    for (const input of this.form.querySelectorAll('input[name="recording-visibility"]')) {
      if (input.checked && !roles.includes(input.value)) roles.push(input.value);
    }
    return roles;
  }

  submit() {
    const title = this.titleInput.value.replace(/\s+/g, ' ').trim();
    if (title.length > MAX_TITLE) {
      toast(i18n.t('recording.title_too_long', { max: MAX_TITLE }), 'warning');
      this.titleInput.focus();
      return;
    }
    const message = { type: 'recording_start', visibility: this.visibility() };
    if (title) message.title = title;
    const id = this.send(message);
    if (!id) {
      toast(i18n.t('errors.connection_failed'), 'error');
      return;
    }
    this.closeDialog();
    this.pendingStart = id;
    clearTimeout(this.pendingTimer);
    this.pendingTimer = setTimeout(() => {
      // Neither the recording nor an error came: let the host try again.
      this.pendingStart = null;
      this.render();
    }, START_TIMEOUT_MS);
    this.render();
  }

  clearPendingStart() {
    this.pendingStart = null;
    clearTimeout(this.pendingTimer);
    this.pendingTimer = null;
  }

  // ------------------------------------------------------------ stopping

  async askStop() {
    if (!this.state || !this.isHost() || this.stopAsking) return;
    const id = this.state.id;
    this.stopAsking = true;
    const sure = await confirmAction({
      title: i18n.t('recording.stop_confirm_title'),
      text: i18n.t('recording.stop_confirm_text', { title: this.state.title || '' }),
      confirmLabel: i18n.t('recording.stop_confirm'),
      danger: true,
    });
    const stillAsking = this.stopAsking;
    this.stopAsking = false;
    if (!sure || !stillAsking || !this.state || this.state.id !== id) return;
    const ref = this.send({ type: 'recording_stop' });
    if (!ref) {
      toast(i18n.t('errors.connection_failed'), 'error');
      return;
    }
    this.pendingStop = ref;
    this.render();
  }

  closeConfirm() {
    const dialog = $('dialog');
    if (dialog && dialog.open) {
      const cancel = dialog.querySelector('[data-value="cancel"]');
      if (cancel) cancel.click();
    }
  }

  /** A server error; true when it answered one of our recording messages (and was shown). */
  handleError(ref, code, message = '') {
    if (!ref || (ref !== this.pendingStart && ref !== this.pendingStop)) return false;
    if (ref === this.pendingStart) this.clearPendingStart();
    if (ref === this.pendingStop) this.pendingStop = null;
    this.render();
    toast(errorText(code, message), code === 'recording_active' || code === 'no_recording' ? 'warning' : 'error', {
      timeoutMs: 8000,
    });
    return true;
  }
}

function errorText(code, message) {
  const key = `errors.${code}`;
  return i18n.has(key) ? i18n.t(key) : i18n.t('errors.generic', { message: message || code });
}

// ---------------------------------------------------------------- the chat card

/**
 * The card of a recording_ready system message. links: {url(path) -> the path with
 * the token or null, canWatch() -> false for guests, access(id) -> true | false |
 * undefined (not known yet)}.
 */
export function recordingCard(message, links) {
  const data = message.data || {};
  const li = el('li', 'chat-msg chat-system chat-recording');
  li.dataset.id = message.id || '';
  li.dataset.event = 'recording_ready';
  li.setAttribute('data-testid', 'recording-card');
  li.dataset.recordingId = data.recording_id || '';
  const title = data.title || i18n.t('recording.untitled');

  const thumb = el('a', 'rec-thumb');
  thumb.tabIndex = -1;
  thumb.setAttribute('aria-hidden', 'true');
  thumb.target = '_blank';
  thumb.rel = 'noopener';
  const placeholder = el('span', 'rec-thumb-placeholder');
  placeholder.innerHTML = icon('video');
  thumb.append(placeholder);
  const thumbUrl = data.thumbnail_url ? links.url(data.thumbnail_url) : null;
  if (thumbUrl && links.canWatch()) {
    const img = el('img', 'rec-thumb-img');
    img.alt = '';
    img.loading = 'lazy';
    img.decoding = 'async';
    // It covers the placeholder once loaded; a still that cannot load leaves the placeholder.
    img.addEventListener('error', () => img.remove());
    img.src = thumbUrl;
    thumb.append(img);
  }
  const play = el('span', 'rec-thumb-play');
  play.innerHTML = icon('play');
  thumb.append(play);

  const body = el('div', 'rec-body');
  const head = el('div', 'rec-head');
  head.append(el('span', 'rec-head-label', i18n.t('recording.card_label')));
  const time = el('time', 'chat-time', formatTime(message.at));
  time.dateTime = message.at || '';
  head.append(time);
  const name = el('p', 'rec-title', title);
  name.setAttribute('data-testid', 'recording-title');
  body.append(head, name);
  if (data.author_name) {
    const author = el('p', 'rec-author', data.author_name);
    author.setAttribute('data-testid', 'recording-author');
    body.append(author);
  }
  const meta = el('p', 'rec-meta');
  if (typeof data.duration_s === 'number') {
    const duration = el('span', 'rec-duration', formatClock(data.duration_s));
    duration.setAttribute('data-testid', 'recording-duration');
    duration.title = i18n.t('recording.duration_title');
    meta.append(duration);
  }
  if (typeof data.size_bytes === 'number') {
    const size = el('span', 'rec-size', formatSize(data.size_bytes));
    size.setAttribute('data-testid', 'recording-size');
    size.title = i18n.t('recording.size_title');
    meta.append(size);
  }
  if (meta.childElementCount) body.append(meta);
  if (data.complete === false) body.append(el('p', 'rec-warning', i18n.t('recording.incomplete')));
  const actions = el('div', 'rec-actions');
  body.append(actions);
  li.append(thumb, body);
  updateRecordingCard(li, message, links);
  return li;
}

/** Show the link, or say why there is none (guests; a role the recording is not for). */
export function updateRecordingCard(li, message, links) {
  const data = message.data || {};
  const actions = li.querySelector('.rec-actions');
  const thumb = li.querySelector('.rec-thumb');
  const url = data.url ? links.url(data.url) : null;
  const access = links.canWatch() ? links.access(data.recording_id) : false;
  let note = '';
  if (!links.canWatch()) note = i18n.t('recording.guests_note');
  else if (access === false) note = i18n.t('recording.not_for_you');
  else if (!url) note = i18n.t('recording.no_link');
  li.classList.toggle('rec-unavailable', Boolean(note));
  if (note) {
    thumb.removeAttribute('href');
    const img = thumb.querySelector('img');
    if (img) img.remove();
    const p = el('p', 'rec-note', note);
    p.setAttribute('data-testid', 'recording-note');
    actions.replaceChildren(p);
    return;
  }
  thumb.href = url;
  const title = data.title || i18n.t('recording.untitled');
  const link = el('a', 'btn btn-small btn-primary rec-link');
  link.href = url;
  link.target = '_blank';
  link.rel = 'noopener';
  link.setAttribute('data-testid', 'recording-link');
  link.setAttribute('aria-label', i18n.t('recording.watch_label', { title }));
  link.insertAdjacentHTML('beforeend', icon('play'));
  link.append(el('span', '', i18n.t('recording.watch')));
  actions.replaceChildren(link);
}
