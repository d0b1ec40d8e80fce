// The participants panel: the waiting room queue, raised hands and everyone in
// the call, with the host's actions on each person.

import { icon } from './icons.js';
import * as i18n from './i18n.js';

function el(tag, className = '', text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null) node.textContent = text;
  return node;
}

function button(label, action, { id = '', kind = 'secondary', iconName = '', title = '' } = {}) {
  const b = el('button', `btn btn-small btn-${kind}`);
  b.type = 'button';
  b.dataset.action = action;
  if (id) b.dataset.participantId = id;
  if (iconName) b.insertAdjacentHTML('beforeend', icon(iconName));
  b.append(el('span', '', label));
  if (title) b.title = title;
  return b;
}

function initials(name) {
  const words = String(name || '?').trim().split(/\s+/).filter(Boolean);
  return (words.slice(0, 2).map((w) => w[0]).join('') || '?').toUpperCase();
}

function roleText(p) {
  return i18n.has(`role.${p.role}`) ? i18n.t(`role.${p.role}`) : '';
}

export function hostBadge(p) {
  if (!p.host) return '';
  return p.cohost ? i18n.t('people.cohost') : i18n.t('call.host');
}

export class People {
  /** onAction(action, participantId) runs a host action (nudge, mute-audio, admit, …). */
  constructor(root, { onAction }) {
    this.root = root;
    this.onAction = onAction;
    this.menuFor = null;
    this.state = null;
    root.addEventListener('click', (event) => {
      const target = event.target.closest('[data-action]');
      if (!target || !root.contains(target)) return;
      event.stopPropagation();
      const { action, participantId = '' } = target.dataset;
      if (action === 'menu') {
        this.menuFor = this.menuFor === participantId ? null : participantId;
        this.render();
        const menu = root.querySelector('.menu');
        if (menu) {
          menu.scrollIntoView({ block: 'nearest' });
          const first = menu.querySelector('[data-action]:not(:disabled)');
          if (first) first.focus({ preventScroll: true });
        }
        return;
      }
      this.menuFor = null;
      this.onAction(action, participantId);
      this.render();
    });
    document.addEventListener('click', (event) => {
      if (this.menuFor && !event.target.closest('.menu')) {
        this.menuFor = null;
        this.render();
      }
    });
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && this.menuFor) {
        this.menuFor = null;
        this.render();
      }
    });
  }

  /**
   * state: {self, participants: [...], hands: [ids], waiting: [...], isHost}
   * (participants without self).
   */
  render(state = this.state) {
    if (!state) return;
    this.state = state;
    const { self, participants, hands, waiting, isHost } = state;
    const byId = new Map(participants.map((p) => [p.id, p]));
    if (self) byId.set(self.id, self);
    if (this.menuFor && !byId.has(this.menuFor)) this.menuFor = null;
    const out = document.createDocumentFragment();

    if (isHost && waiting.length) {
      const section = el('section', 'people-section people-waiting');
      const head = el('div', 'section-head');
      head.append(el('h3', '', i18n.t('people.waiting', { count: waiting.length })));
      const actions = el('div', 'section-actions');
      actions.append(
        button(i18n.t('people.admit_all'), 'admit-all', { kind: 'primary' }),
        button(i18n.t('people.deny_all'), 'deny-all'),
      );
      section.append(head, actions);
      const list = el('ul', 'people-list');
      for (const p of waiting) {
        const li = this.personRow(p, { self: false, status: false });
        li.classList.add('person-waiting');
        const acts = el('div', 'person-actions');
        acts.append(
          button(i18n.t('people.admit'), 'admit', { id: p.id, kind: 'primary' }),
          button(i18n.t('people.deny'), 'deny', { id: p.id }),
        );
        li.append(acts);
        list.append(li);
      }
      section.append(list);
      out.append(section);
    }

    const raised = hands.filter((id) => byId.has(id));
    if (raised.length) {
      const section = el('section', 'people-section people-hands');
      const head = el('div', 'section-head');
      head.append(el('h3', '', i18n.t('people.hands', { count: raised.length })));
      if (isHost) head.append(button(i18n.t('people.lower_all_hands'), 'lower-all-hands'));
      section.append(head);
      const list = el('ol', 'people-list hand-list');
      raised.forEach((id, index) => {
        const p = byId.get(id);
        const li = el('li', 'person hand-row');
        li.dataset.participantId = id;
        const order = el('span', 'hand-order', String(index + 1));
        const name = el('span', 'person-name', p === self ? `${p.name} (${i18n.t('call.you')})` : p.name);
        li.append(order, name);
        if (isHost && p !== self) {
          const acts = el('div', 'person-actions');
          acts.append(
            button(i18n.t('people.give_floor'), 'give-floor', {
              id, kind: 'primary', title: i18n.t('people.give_floor_title', { name: p.name }),
            }),
            button(i18n.t('people.lower_hand'), 'lower-hand', {
              id, title: i18n.t('people.lower_hand_title', { name: p.name }),
            }),
          );
          li.append(acts);
        } else if (p === self) {
          li.append(button(i18n.t('call.lower_hand'), 'lower-own-hand', { id }));
        }
        list.append(li);
      });
      section.append(list);
      out.append(section);
    }

    const section = el('section', 'people-section people-in-call');
    // Breakout rooms open: hosts see everyone with the room they are in; the
    // others see the people of their own room.
    const { breakout = null } = state;
    let shown = participants;
    let elsewhere = 0;
    if (breakout && !isHost) {
      shown = participants.filter((p) => breakout.roomOf(p) === breakout.here);
      elsewhere = participants.length - shown.length;
    }
    const everyone = [...(self ? [self] : []), ...shown];
    const head = el('div', 'section-head');
    let title = i18n.t('people.in_call', { count: everyone.length });
    if (breakout && !isHost) {
      title = breakout.here
        ? i18n.t('breakout.here_count', { name: breakout.roomName(breakout.here), count: everyone.length })
        : i18n.t('breakout.main_count', { count: everyone.length });
    }
    head.append(el('h3', '', title));
    section.append(head);
    if (elsewhere) section.append(el('p', 'muted small people-elsewhere', i18n.t('breakout.elsewhere', { count: elsewhere })));
    if (isHost) {
      const actions = el('div', 'section-actions');
      actions.append(button(i18n.t('people.mute_all'), 'mute-all', { iconName: 'mic-off' }));
      section.append(actions);
    }
    const list = el('ul', 'people-list');
    const collator = new Intl.Collator(i18n.language());
    const others = [...shown].sort((a, b) => {
      if (a.host !== b.host) return a.host ? -1 : 1;
      return collator.compare(a.name || '', b.name || '');
    });
    for (const p of [...(self ? [self] : []), ...others]) {
      const li = this.personRow(p, { self: p === self, hand: hands.indexOf(p.id) });
      if (breakout && isHost) {
        const room = breakout.roomOf(p);
        const chip = el('span', 'person-room' + (room ? '' : ' person-room-main'), breakout.roomName(room));
        chip.dataset.roomId = room || '';
        li.querySelector('.person-role').append(' ', chip);
      }
      if (isHost && p !== self) {
        const more = el('button', 'icon-btn person-more');
        more.type = 'button';
        more.dataset.action = 'menu';
        more.dataset.participantId = p.id;
        more.title = i18n.t('people.actions', { name: p.name });
        more.setAttribute('aria-label', more.title);
        more.setAttribute('aria-haspopup', 'menu');
        more.setAttribute('aria-expanded', String(this.menuFor === p.id));
        more.innerHTML = icon('more');
        li.append(more);
        if (this.menuFor === p.id) li.append(this.menu(p));
      }
      list.append(li);
    }
    section.append(list);
    out.append(section);
    this.root.replaceChildren(out);
  }

  personRow(p, { self, hand = -1, status: withStatus = true }) {
    const li = el('li', 'person');
    li.dataset.participantId = p.id;
    const avatar = el('span', 'person-avatar', initials(p.name));
    const info = el('div', 'person-info');
    const name = el('span', 'person-name', self ? `${p.name} (${i18n.t('call.you')})` : (p.name || '…'));
    const details = el('span', 'person-role', roleText(p));
    const badge = hostBadge(p);
    if (badge) {
      const b = el('span', 'person-badge', badge);
      details.append(' ', b);
    }
    info.append(name, details);
    const status = el('span', 'person-status');
    if (hand >= 0) {
      const h = el('span', 'status-hand');
      h.title = i18n.t('people.hand_raised', { n: hand + 1 });
      h.innerHTML = `${icon('hand')}<b>${hand + 1}</b>`;
      status.append(h);
    }
    if (p.screen) {
      const s = el('span', 'status-on');
      s.title = i18n.t('people.sharing');
      s.innerHTML = icon('screen');
      status.append(s);
    }
    if (p.audio !== undefined) {
      const m = el('span', p.audio ? 'status-on status-mic' : 'status-off status-mic');
      m.title = i18n.t(p.audio ? 'people.mic_on' : 'people.mic_off');
      m.dataset.on = String(Boolean(p.audio));
      m.innerHTML = icon(p.audio ? 'mic' : 'mic-off');
      status.append(m);
    }
    if (p.video !== undefined) {
      const c = el('span', p.video ? 'status-on status-cam' : 'status-off status-cam');
      c.title = i18n.t(p.video ? 'people.camera_on' : 'people.camera_off');
      c.dataset.on = String(Boolean(p.video));
      c.innerHTML = icon(p.video ? 'camera' : 'camera-off');
      status.append(c);
    }
    li.append(avatar, info);
    if (withStatus) li.append(status);
    return li;
  }

  menu(p) {
    const menu = el('div', 'menu');
    menu.setAttribute('role', 'menu');
    const item = (label, action, { danger = false, disabled = false, iconName = '' } = {}) => {
      const b = el('button', 'menu-item' + (danger ? ' menu-danger' : ''));
      b.type = 'button';
      b.setAttribute('role', 'menuitem');
      b.dataset.action = action;
      b.dataset.participantId = p.id;
      b.disabled = disabled;
      if (iconName) b.innerHTML = icon(iconName);
      b.append(el('span', '', label));
      menu.append(b);
    };
    item(i18n.t('people.nudge'), 'nudge', { iconName: 'bell' });
    if (p.floor) item(i18n.t('people.take_floor'), 'take-floor', { iconName: 'mic-off' });
    item(i18n.t('people.mute_audio'), 'mute-audio', { iconName: 'mic-off', disabled: p.audio === false });
    item(i18n.t('people.mute_video'), 'mute-video', { iconName: 'camera-off', disabled: p.video === false });
    if (p.screen) item(i18n.t('people.mute_screen'), 'mute-screen', { iconName: 'screen-off' });
    if (p.role !== 'teacher') {
      if (p.cohost) item(i18n.t('people.unmake_cohost'), 'unmake-cohost', { iconName: 'host' });
      else item(i18n.t('people.make_cohost'), 'make-cohost', { iconName: 'host' });
      item(i18n.t('people.remove'), 'remove', { danger: true, iconName: 'user-remove' });
    }
    return menu;
  }
}
