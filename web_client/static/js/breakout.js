// Breakout rooms ("сессионные залы", docs/protocol.md "Breakout rooms"): the
// host's panel (create, name, assign, open, watch, move, visit, broadcast,
// close) and the helpers the call page uses to know who is where.

import { icon } from './icons.js';
import * as i18n from './i18n.js';

// The server's bounds, from `joined.limits` (setLimits): no copy of them here.
export const limits = { rooms: 1 };

/** Take the bounds the server sent in `joined.limits`. */
export function setLimits(fromServer) {
  if (fromServer && Number.isInteger(fromServer.breakout_rooms)) limits.rooms = fromServer.breakout_rooms;
}
export const MAX_MINUTES = 240;
export const MAX_COUNTDOWN = 300;
export const DEFAULT_COUNTDOWN = 30;
const MAX_NAME = 60;

function el(tag, className = '', text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null) node.textContent = text;
  return node;
}

function button(label, action, { kind = 'secondary', iconName = '', roomId = null, id = '' } = {}) {
  const b = el('button', `btn btn-small btn-${kind}`);
  b.type = 'button';
  b.dataset.action = action;
  if (roomId !== null) b.dataset.roomId = roomId;
  if (id) b.id = id;
  if (iconName) b.insertAdjacentHTML('beforeend', icon(iconName));
  b.append(el('span', '', label));
  return b;
}

function numberInput(id, { min, max, value = '', placeholder = '' }) {
  const input = el('input', 'bo-number');
  input.type = 'number';
  input.id = id;
  input.min = String(min);
  input.max = String(max);
  input.step = '1';
  input.inputMode = 'numeric';
  if (value !== '') input.value = String(value);
  if (placeholder) input.placeholder = placeholder;
  return input;
}

function field(labelText, input, hint = '') {
  const label = el('label', 'bo-field');
  label.htmlFor = input.id;
  const text = el('span', 'bo-field-label', labelText);
  label.append(text, input);
  if (hint) label.append(el('span', 'bo-field-hint', hint));
  return label;
}

/** Seconds (rounded up, at least 0) until the ISO time `iso`, or null. */
export function secondsUntil(iso, now = Date.now()) {
  if (!iso) return null;
  const at = new Date(iso).getTime();
  if (Number.isNaN(at)) return null;
  return Math.max(0, Math.ceil((at - now) / 1000));
}

/** "4:05", "1:02:03". */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** The room name for an id (null or '': the main room). */
export function roomName(state, roomId) {
  if (!roomId) return i18n.t('breakout.main_room');
  const room = state && Array.isArray(state.rooms) ? state.rooms.find((r) => r.id === roomId) : null;
  return room ? room.name : roomId;
}

/**
 * The host's panel. Callbacks: configure(count, names), assign(participantId,
 * roomId|null), random(), open(minutes|null, allowReturn), move(participantId,
 * roomId|null), visit(roomId|null), broadcast(text) -> bool, close(seconds),
 * invalid(messageKey, params) (a value out of range).
 */
export class BreakoutPanel {
  constructor(root, callbacks) {
    this.root = root;
    this.cb = callbacks;
    this.view = null; // {state, room, people: [{id, user_id, name, role, host, self}]}
    this.dragged = null;
    this.build();
    root.addEventListener('click', (event) => this.onClick(event));
    root.addEventListener('change', (event) => this.onChange(event));
    root.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && event.target.matches('.bo-room-name')) {
        event.preventDefault();
        event.target.blur();
      }
      if (event.key === 'Enter' && event.target.id === 'bo-count') {
        event.preventDefault();
        this.create();
      }
      if (event.key === 'Enter' && !event.shiftKey && event.target.id === 'bo-broadcast-text') {
        event.preventDefault();
        this.broadcast();
      }
    });
    // Drag a person onto a room (the select on each row does the same).
    root.addEventListener('dragstart', (event) => {
      const row = event.target.closest && event.target.closest('.bo-person[draggable="true"]');
      if (!row) return;
      this.dragged = row.dataset.participantId;
      event.dataTransfer.setData('text/plain', this.dragged);
      event.dataTransfer.effectAllowed = 'move';
    });
    root.addEventListener('dragend', () => {
      this.dragged = null;
      for (const card of root.querySelectorAll('.bo-drop')) card.classList.remove('bo-drop');
    });
    root.addEventListener('dragover', (event) => {
      const card = event.target.closest && event.target.closest('.bo-room');
      if (!card || !this.dragged) return;
      event.preventDefault();
      card.classList.add('bo-drop');
    });
    root.addEventListener('dragleave', (event) => {
      const card = event.target.closest && event.target.closest('.bo-room');
      if (card && !card.contains(event.relatedTarget)) card.classList.remove('bo-drop');
    });
    root.addEventListener('drop', (event) => {
      const card = event.target.closest && event.target.closest('.bo-room');
      if (!card || !this.dragged) return;
      event.preventDefault();
      card.classList.remove('bo-drop');
      const roomId = card.dataset.roomId || null;
      this.place(this.dragged, roomId);
      this.dragged = null;
    });
  }

  /** The parts that keep what the host typed (counts, timer, broadcast text) across updates. */
  build() {
    const out = document.createDocumentFragment();

    const setup = el('div', 'bo-mode bo-setup');
    setup.id = 'bo-setup';
    const create = el('section', 'people-section bo-create');
    create.append(el('h3', '', i18n.t('breakout.rooms')));
    const createRow = el('div', 'bo-row');
    createRow.append(
      field(i18n.t('breakout.count_label'), numberInput('bo-count', { min: 1, max: limits.rooms, value: 2 })),
      button(i18n.t('breakout.create'), 'create', { kind: 'primary', id: 'bo-create' }),
    );
    create.append(createRow);
    const intro = el('p', 'muted small bo-intro', i18n.t('breakout.intro'));
    intro.id = 'bo-intro';
    create.append(intro);
    setup.append(create);

    const assign = el('section', 'people-section bo-assign');
    assign.id = 'bo-assign';
    const assignHead = el('div', 'section-head');
    assignHead.append(el('h3', '', i18n.t('breakout.who_where')));
    assignHead.append(button(i18n.t('breakout.random'), 'random', { id: 'bo-random', iconName: 'shuffle' }));
    assign.append(assignHead);
    assign.append(el('p', 'muted small', i18n.t('breakout.assign_hint')));
    const setupMap = el('div', 'bo-map');
    setupMap.id = 'bo-setup-map';
    assign.append(setupMap);
    setup.append(assign);

    const start = el('section', 'people-section bo-start');
    start.id = 'bo-start';
    start.append(el('h3', '', i18n.t('breakout.start')));
    start.append(field(
      i18n.t('breakout.timer_label'),
      numberInput('bo-minutes', { min: 1, max: MAX_MINUTES, placeholder: i18n.t('breakout.timer_none') }),
      i18n.t('breakout.timer_hint'),
    ));
    const allow = el('label', 'switch-row');
    const allowText = el('span', 'switch-text');
    allowText.append(el('span', 'switch-title', i18n.t('breakout.allow_return')));
    const allowInput = el('input', 'switch');
    allowInput.type = 'checkbox';
    allowInput.id = 'bo-allow-return';
    allowInput.setAttribute('role', 'switch');
    allow.append(allowText, allowInput);
    start.append(allow);
    start.append(button(i18n.t('breakout.open'), 'open', { kind: 'primary', id: 'bo-open', iconName: 'rooms' }));
    setup.append(start);
    out.append(setup);

    const live = el('div', 'bo-mode bo-live');
    live.id = 'bo-live';
    const status = el('section', 'people-section bo-status-section');
    const statusText = el('p', 'bo-status');
    statusText.id = 'bo-status';
    statusText.setAttribute('role', 'status');
    status.append(statusText);
    live.append(status);

    const where = el('section', 'people-section');
    where.append(el('h3', '', i18n.t('breakout.who_where')));
    const liveMap = el('div', 'bo-map');
    liveMap.id = 'bo-live-map';
    where.append(liveMap);
    live.append(where);

    const cast = el('section', 'people-section bo-broadcast');
    const castLabel = el('label', 'bo-field');
    const castInput = el('textarea', 'bo-textarea');
    castInput.id = 'bo-broadcast-text';
    castInput.rows = 2;
    castInput.maxLength = 1000;
    castLabel.htmlFor = castInput.id;
    castLabel.append(el('span', 'bo-field-label', i18n.t('breakout.broadcast_label')), castInput);
    cast.append(castLabel);
    cast.append(button(i18n.t('breakout.broadcast_send'), 'broadcast', { id: 'bo-broadcast', iconName: 'send' }));
    live.append(cast);

    const close = el('section', 'people-section bo-close');
    const closeRow = el('div', 'bo-row');
    closeRow.append(
      field(
        i18n.t('breakout.countdown_label'),
        numberInput('bo-countdown', { min: 0, max: MAX_COUNTDOWN, value: DEFAULT_COUNTDOWN }),
      ),
      button(i18n.t('breakout.close'), 'close', { kind: 'danger', id: 'bo-close' }),
    );
    close.append(closeRow);
    live.append(close);
    out.append(live);

    this.root.replaceChildren(out);
    this.render();
  }

  /** view: {state, room, people} (people: everyone in the call, self included with self: true). */
  render(view = this.view) {
    this.view = view;
    const state = (view && view.state) || { rooms: [], assignments: {}, opened: false };
    const opened = Boolean(state.opened);
    this.root.querySelector('#bo-setup').hidden = opened;
    this.root.querySelector('#bo-live').hidden = !opened;
    if (!view) return;
    const rooms = Array.isArray(state.rooms) ? state.rooms : [];
    this.root.querySelector('#bo-intro').hidden = rooms.length > 0;
    this.root.querySelector('#bo-assign').hidden = rooms.length === 0;
    this.root.querySelector('#bo-start').hidden = rooms.length === 0;
    if (!opened && rooms.length) {
      const count = this.root.querySelector('#bo-count');
      if (document.activeElement !== count) count.value = String(rooms.length);
    }
    this.renderMap(this.root.querySelector(opened ? '#bo-live-map' : '#bo-setup-map'), state, opened);
    this.root.querySelector(opened ? '#bo-setup-map' : '#bo-live-map').replaceChildren();
    this.tick();
  }

  /** Rooms as cards with their people (and the main room first). */
  renderMap(box, state, opened) {
    const focused = document.activeElement;
    const editing = focused && box.contains(focused) && focused.matches('.bo-room-name')
      ? { roomId: focused.dataset.roomId, value: focused.value, start: focused.selectionStart }
      : null;
    const rooms = Array.isArray(state.rooms) ? state.rooms : [];
    const people = this.view.people || [];
    const collator = new Intl.Collator(i18n.language());
    const byRoom = new Map([[null, []], ...rooms.map((r) => [r.id, []])]);
    for (const p of people) {
      const room = byRoom.has(p.room) ? p.room : null;
      byRoom.get(room).push(p);
    }
    for (const list of byRoom.values()) {
      list.sort((a, b) => {
        if (a.self !== b.self) return a.self ? -1 : 1;
        if (a.host !== b.host) return a.host ? -1 : 1;
        return collator.compare(a.name || '', b.name || '');
      });
    }
    const help = new Set(Array.isArray(state.help_requests) ? state.help_requests : []);
    const out = document.createDocumentFragment();
    for (const room of [null, ...rooms]) {
      const id = room ? room.id : null;
      const members = byRoom.get(id);
      const card = el('section', 'bo-room');
      card.dataset.roomId = id || '';
      if (!id) card.classList.add('bo-room-main');
      if (id && help.has(id)) card.classList.add('bo-room-help');
      if (opened && (this.view.room || null) === id) card.classList.add('bo-room-here');
      const head = el('div', 'bo-room-head');
      if (id && !opened) {
        const name = el('input', 'bo-room-name');
        name.type = 'text';
        name.maxLength = MAX_NAME;
        name.value = room.name;
        name.dataset.roomId = id;
        name.dataset.saved = room.name;
        name.setAttribute('aria-label', i18n.t('breakout.room_name_label', { n: rooms.indexOf(room) + 1 }));
        head.append(name);
      } else {
        head.append(el('h4', 'bo-room-title', id ? room.name : i18n.t('breakout.main_room')));
      }
      head.append(el('span', 'bo-room-count', String(members.length)));
      card.append(head);
      if (id && help.has(id)) {
        const flag = el('p', 'bo-help-flag');
        flag.innerHTML = icon('bell');
        flag.append(el('span', '', i18n.t('breakout.help_requested')));
        card.append(flag);
      }
      if (opened) {
        const here = (this.view.room || null) === id;
        if (here) {
          card.append(el('p', 'bo-here', i18n.t('breakout.you_are_here')));
        } else if (id) {
          card.append(button(i18n.t('breakout.visit'), 'visit', {
            roomId: id, kind: help.has(id) ? 'primary' : 'secondary',
          }));
        } else {
          card.append(button(i18n.t('breakout.back_to_main'), 'visit', { roomId: '' }));
        }
      }
      const list = el('ul', 'bo-people');
      if (!members.length) list.append(el('li', 'bo-empty muted small', i18n.t('breakout.empty_room')));
      for (const p of members) list.append(this.personRow(p, rooms, opened));
      card.append(list);
      out.append(card);
    }
    box.replaceChildren(out);
    if (editing) {
      const input = box.querySelector(`.bo-room-name[data-room-id="${editing.roomId}"]`);
      if (input) {
        input.value = editing.value;
        input.focus();
        try {
          input.setSelectionRange(editing.start, editing.start);
        } catch {
          // Not a text input any more: nothing to restore.
        }
      }
    }
  }

  personRow(p, rooms, opened) {
    const li = el('li', 'bo-person');
    li.dataset.participantId = p.id;
    const name = el('span', 'bo-person-name', p.self ? `${p.name} (${i18n.t('call.you')})` : (p.name || '…'));
    li.append(name);
    if (p.host) li.append(el('span', 'person-badge', i18n.t(p.cohost ? 'people.cohost' : 'call.host')));
    if (p.self && opened) return li; // While open, the host goes to a room with "Перейти".
    li.draggable = true;
    const select = el('select', 'bo-select');
    select.dataset.participantId = p.id;
    select.dataset.mode = opened ? 'move' : 'assign';
    select.setAttribute('aria-label', i18n.t('breakout.assign_label', { name: p.name || '' }));
    select.append(new Option(i18n.t('breakout.main_room'), '', false, !p.room));
    for (const room of rooms) select.append(new Option(room.name, room.id, false, p.room === room.id));
    li.append(select);
    return li;
  }

  /** The status line while the rooms are open: the timer or the closing countdown. */
  tick() {
    const status = this.root.querySelector('#bo-status');
    const state = this.view && this.view.state;
    if (!state || !state.opened) {
      status.textContent = '';
      return;
    }
    const closing = secondsUntil(state.closing_at);
    const left = secondsUntil(state.ends_at);
    const parts = [i18n.t('breakout.status_open', { count: (state.rooms || []).length })];
    if (closing !== null) {
      parts.push(i18n.t('breakout.closing_in', { seconds: closing }));
    } else if (left !== null) {
      parts.push(left > 0 ? i18n.t('breakout.time_left', { time: formatDuration(left) }) : i18n.t('breakout.time_up'));
    }
    status.textContent = parts.join(' · ');
    status.classList.toggle('bo-status-closing', closing !== null);
    const closeButton = this.root.querySelector('#bo-close');
    closeButton.disabled = closing !== null;
  }

  onClick(event) {
    const target = event.target.closest('[data-action]');
    if (!target || !this.root.contains(target)) return;
    switch (target.dataset.action) {
      case 'create': this.create(); break;
      case 'random': this.cb.random(); break;
      case 'open': this.open(); break;
      case 'visit': this.cb.visit(target.dataset.roomId || null); break;
      case 'broadcast': this.broadcast(); break;
      case 'close': this.close(); break;
      default: break;
    }
  }

  onChange(event) {
    const target = event.target;
    if (target.matches('.bo-select')) {
      this.place(target.dataset.participantId, target.value || null);
    } else if (target.matches('.bo-room-name')) {
      this.rename(target);
    }
  }

  /** Assign (closed) or move (open) one person. */
  place(participantId, roomId) {
    const state = this.view && this.view.state;
    if (state && state.opened) this.cb.move(participantId, roomId);
    else this.cb.assign(participantId, roomId);
  }

  readNumber(id, min, max, { optional = false } = {}) {
    const input = this.root.querySelector(`#${id}`);
    const raw = input.value.trim();
    if (!raw && optional) return { ok: true, value: null };
    const value = Number(raw);
    if (!raw || !Number.isInteger(value) || value < min || value > max) {
      input.focus();
      return { ok: false };
    }
    return { ok: true, value };
  }

  create() {
    const { ok, value } = this.readNumber('bo-count', 1, limits.rooms);
    if (!ok) {
      this.cb.invalid('breakout.bad_count', { max: limits.rooms });
      return;
    }
    const rooms = (this.view && this.view.state && this.view.state.rooms) || [];
    // Rooms that stay keep their names; new ones get the default ("Комната N").
    const names = Array.from({ length: value }, (_, i) => (rooms[i] ? this.currentName(rooms[i]) : ''));
    this.cb.configure(value, names);
  }

  currentName(room) {
    const input = this.root.querySelector(`.bo-room-name[data-room-id="${room.id}"]`);
    return input ? input.value.trim() : room.name;
  }

  rename(input) {
    const value = input.value.trim();
    if (value === input.dataset.saved) return;
    const rooms = (this.view && this.view.state && this.view.state.rooms) || [];
    if (!rooms.length) return;
    this.cb.configure(rooms.length, rooms.map((room) => this.currentName(room)));
  }

  open() {
    const { ok, value } = this.readNumber('bo-minutes', 1, MAX_MINUTES, { optional: true });
    if (!ok) {
      this.cb.invalid('breakout.bad_minutes', { max: MAX_MINUTES });
      return;
    }
    this.cb.open(value, this.root.querySelector('#bo-allow-return').checked);
  }

  broadcast() {
    const input = this.root.querySelector('#bo-broadcast-text');
    const text = input.value.trim();
    if (!text) {
      input.focus();
      return;
    }
    if (this.cb.broadcast(text)) input.value = '';
  }

  close() {
    const { ok, value } = this.readNumber('bo-countdown', 0, MAX_COUNTDOWN);
    if (!ok) {
      this.cb.invalid('breakout.bad_countdown', { max: MAX_COUNTDOWN });
      return;
    }
    this.cb.close(value);
  }
}
