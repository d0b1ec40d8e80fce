// The call chat panel: history, new messages, sending with Enter, inline errors, unread count.

import * as i18n from './i18n.js';
import { pollCard } from './pollcard.js';
import { recordingCard, updateRecordingCard } from './recording.js';
import { formatTime } from './ui.js';

const $ = (id) => document.getElementById(id);
const MAX_LENGTH = 1000;

export class Chat {
  /**
   * send(text) -> the id of the chat_send it sent (or null when offline);
   * selfId() -> this connection's participant id; onChange() after the
   * unread count changed; recordings: {url(path) -> the path with the join
   * token, canWatch() -> false for guests} for the cards of finished recordings.
   */
  constructor({ send, selfId, onChange = () => {}, recordings = null }) {
    this.send = send;
    this.selfId = selfId;
    this.onChange = onChange;
    this.recordingAccess = new Map(); // recording id -> may this person watch it
    this.recordingLinks = {
      url: (recordings && recordings.url) || (() => null),
      canWatch: (recordings && recordings.canWatch) || (() => false),
      access: (id) => this.recordingAccess.get(id),
    };
    // Breakout rooms: each room's chat is its own. Messages carry `room` ("" the
    // main room, a room id, "*" a broadcast to every room); the panel shows the
    // room we are in plus the broadcasts.
    this.buffers = new Map(); // room -> [message]
    this.broadcasts = [];
    this.seen = new Set(); // `${room}|${id}`
    this.room = '';
    this.unreadMessages = new Set(); // messages that came while the panel was closed
    this.open = false;
    this.permitted = true;
    this.pending = new Map(); // chat_send id -> text
    this.list = $('chat-list');
    this.input = $('chat-input');
    this.error = $('chat-error');
    $('chat-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener('input', () => {
      this.grow();
      if (this.input.value.length <= MAX_LENGTH && this.error.dataset.code === 'chat_too_long') {
        this.showError(null);
      }
    });
  }

  /** Unread messages of the room we are in (and broadcasts). */
  get unread() {
    return this.unreadMessages.size;
  }

  /** The messages shown now: the current room's and the broadcasts, oldest first. */
  get messages() {
    return this.view(this.room);
  }

  view(room) {
    const own = this.buffers.get(room) || [];
    if (!this.broadcasts.length) return [...own];
    const time = (m) => {
      const at = new Date(m.at).getTime();
      return Number.isNaN(at) ? 0 : at;
    };
    return [...own, ...this.broadcasts]
      .map((m, index) => ({ m, index }))
      .sort((a, b) => time(a.m) - time(b.m) || a.index - b.index)
      .map(({ m }) => m);
  }

  /** The room a message belongs to (one without `room` is taken as the current room's). */
  roomOf(message) {
    return typeof message.room === 'string' ? message.room : this.room;
  }

  /** We are in another room now (null or "": the main room): show its messages. */
  setRoom(room) {
    const key = room || '';
    if (key === this.room) return;
    this.room = key;
    const shown = this.view(key);
    this.list.replaceChildren(...shown.map((m) => this.render(m, this.isOwn(m))));
    this.list.scrollTop = this.list.scrollHeight;
    // What is unread in the room we left is not on screen any more.
    const visible = new Set(shown);
    const before = this.unreadMessages.size;
    for (const m of this.unreadMessages) if (!visible.has(m)) this.unreadMessages.delete(m);
    if (this.unreadMessages.size !== before) this.onChange();
  }

  isOwn(message) {
    return Boolean(message.kind === 'text' && message.author_id && message.author_id === this.selfId());
  }

  /** Start over with the history `joined` carried (oldest first). */
  reset(history = []) {
    this.buffers.clear();
    this.broadcasts = [];
    this.seen.clear();
    this.pending.clear();
    this.list.replaceChildren();
    this.unreadMessages.clear();
    this.showError(null);
    this.input.value = '';
    this.grow();
    for (const message of history) this.add(message, { history: true });
    this.onChange();
  }

  add(message, { history = false } = {}) {
    if (!message || typeof message !== 'object') return;
    const room = this.roomOf(message);
    if (message.id) {
      const key = `${room}|${message.id}`;
      if (this.seen.has(key)) return;
      this.seen.add(key);
    }
    if (room === '*') {
      this.broadcasts.push(message);
    } else {
      if (!this.buffers.has(room)) this.buffers.set(room, []);
      this.buffers.get(room).push(message);
    }
    // Another room's message (we just moved): kept for when we are back there.
    if (room !== '*' && room !== this.room) return;
    const own = this.isOwn(message);
    if (own && !history && room !== '*') {
      // Our message came back: the oldest send still pending is this one.
      const first = this.pending.keys().next();
      if (!first.done) this.pending.delete(first.value);
      if (this.error.dataset.code !== 'not_permitted') this.showError(null);
    }
    const nearBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 60;
    this.list.append(this.render(message, own));
    if (nearBottom || own) this.list.scrollTop = this.list.scrollHeight;
    if (!history && !own && (message.kind !== 'system' || isRecordingReady(message)) && !this.open) {
      this.unreadMessages.add(message);
      this.onChange();
    }
  }

  render(message, own) {
    const li = document.createElement('li');
    li.dataset.id = message.id || '';
    if (isRecordingReady(message)) return recordingCard(message, this.recordingLinks);
    if (message.kind === 'poll') return pollCard(message);
    if (message.kind === 'system') {
      li.className = 'chat-msg chat-system';
      li.dataset.event = (message.data && message.data.event) || '';
      const text = document.createElement('p');
      text.className = 'chat-text';
      text.textContent = systemText(message);
      const time = document.createElement('time');
      time.className = 'chat-time';
      time.textContent = formatTime(message.at);
      li.append(text, time);
      return li;
    }
    const broadcast = message.room === '*';
    li.className = 'chat-msg' + (own ? ' chat-own' : '') + (broadcast ? ' chat-broadcast' : '');
    const meta = document.createElement('div');
    meta.className = 'chat-meta';
    if (broadcast) {
      const label = document.createElement('span');
      label.className = 'chat-room-label';
      label.textContent = i18n.t('chat.broadcast_label');
      meta.append(label);
    }
    const author = document.createElement('span');
    author.className = 'chat-author';
    author.textContent = own ? i18n.t('chat.you') : (message.author_name || '…');
    meta.append(author);
    if (message.author_role && i18n.has(`role.${message.author_role}`)) {
      const role = document.createElement('span');
      role.className = `chat-role chat-role-${message.author_role}`;
      role.textContent = i18n.t(`role.${message.author_role}`);
      meta.append(role);
    }
    const time = document.createElement('time');
    time.className = 'chat-time';
    time.dateTime = message.at || '';
    time.textContent = formatTime(message.at);
    meta.append(time);
    const text = document.createElement('p');
    text.className = 'chat-text';
    text.textContent = message.text || '';
    li.append(meta, text);
    if (message.filtered && own) {
      const note = document.createElement('p');
      note.className = 'chat-filtered';
      note.textContent = i18n.t('chat.filtered_own');
      li.append(note);
    }
    return li;
  }

  /** Which finished recordings this person may watch ({id: bool}, from the call's list). */
  setRecordingAccess(access) {
    for (const [id, allowed] of Object.entries(access)) this.recordingAccess.set(id, Boolean(allowed));
    for (const li of this.list.querySelectorAll('.chat-recording')) {
      const message = this.findMessage(li.dataset.recordingId);
      if (message) updateRecordingCard(li, message, this.recordingLinks);
    }
  }

  /** The recording_ready message of a recording (any room), or null. */
  findMessage(recordingId) {
    for (const list of [this.broadcasts, ...this.buffers.values()]) {
      const found = list.find((m) => isRecordingReady(m) && m.data.recording_id === recordingId);
      if (found) return found;
    }
    return null;
  }

  /** Ids of the finished recordings the chat holds (every room). */
  recordingIds() {
    const ids = new Set();
    for (const list of [this.broadcasts, ...this.buffers.values()]) {
      for (const m of list) if (isRecordingReady(m) && m.data.recording_id) ids.add(m.data.recording_id);
    }
    return [...ids];
  }

  submit() {
    if (!this.permitted) {
      this.showError('not_permitted');
      return;
    }
    const text = this.input.value.trim();
    if (!text) return;
    if (text.length > MAX_LENGTH) {
      this.showError('chat_too_long');
      return;
    }
    const id = this.send(text);
    if (!id) {
      this.showError('connection_failed');
      return;
    }
    this.pending.set(id, text);
    this.input.value = '';
    this.grow();
  }

  /** An error came back for one of our chat_send messages; true when it was ours. */
  handleError(ref, code, message = '') {
    if (!ref || !this.pending.has(ref)) return false;
    const text = this.pending.get(ref);
    this.pending.delete(ref);
    if (!this.input.value) {
      this.input.value = text;
      this.grow();
    }
    this.showError(code, message);
    return true;
  }

  showError(code, message = '') {
    if (!code) {
      this.error.hidden = true;
      this.error.textContent = '';
      delete this.error.dataset.code;
      return;
    }
    this.error.dataset.code = code;
    let text;
    if (code === 'chat_rate_limited') {
      const match = /(\d+)\s*s/.exec(message || '');
      const seconds = match ? Math.max(1, Number(match[1])) : 0;
      text = seconds
        ? i18n.t('chat.error_rate_limited', { seconds })
        : i18n.t('chat.error_rate_limited_soon');
    } else if (i18n.has(`chat.error_${code}`)) {
      text = i18n.t(`chat.error_${code}`);
    } else if (i18n.has(`errors.${code}`)) {
      text = i18n.t(`errors.${code}`);
    } else {
      text = i18n.t('errors.generic', { message: message || code });
    }
    this.error.textContent = text;
    this.error.hidden = false;
  }

  setPermitted(permitted) {
    this.permitted = permitted;
    this.input.disabled = !permitted;
    $('chat-send').disabled = !permitted;
    $('chat-disabled').hidden = permitted;
    this.input.placeholder = i18n.t(permitted ? 'chat.placeholder' : 'chat.placeholder_disabled');
    if (permitted && this.error.dataset.code === 'not_permitted') this.showError(null);
  }

  setOpen(open) {
    this.open = open;
    if (open) {
      this.unreadMessages.clear();
      this.onChange();
      this.list.scrollTop = this.list.scrollHeight;
      if (!this.input.disabled) this.input.focus();
    }
  }

  grow() {
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, 140)}px`;
  }
}

/** A system message announcing a finished recording (drawn as a card). */
export function isRecordingReady(message) {
  return Boolean(message && message.kind === 'system' && message.data
    && message.data.event === 'recording_ready' && typeof message.data.url === 'string');
}

/** A system message in the reader's language, from data.event (the server's text otherwise). */
export function systemText(message) {
  const data = message.data || {};
  const key = `chat.system.${data.event}`;
  if (data.event && i18n.has(key)) {
    const params = {};
    for (const [name, value] of Object.entries(data)) {
      if (typeof value === 'string' || typeof value === 'number') params[name] = value;
    }
    if (data.by && typeof data.by === 'object' && data.by.name) params.by = data.by.name;
    const text = i18n.t(key, params);
    if (!/\{\w+\}/.test(text)) return text;
  }
  return message.text || '';
}
