// Breakout rooms as this page lives them (docs/protocol.md "Breakout rooms"):
// whose tiles we see, the bar saying where we are with the timer and the
// closing countdown, calls for help, and the host's breakout panel.
// breakout.js draws the panel; this module follows the call's state.

import {
  BreakoutPanel, formatDuration, roomName, secondsUntil,
} from './breakout.js';
import * as i18n from './i18n.js';
import { placeTile, relayout, renderPeople } from './layout.js';
import {
  $, currentRoom, sendAction, urok, views,
} from './state.js';
import { beep, toast } from './ui.js';

let breakoutTimer = null;
let helpSeen = new Set(); // hosts: rooms whose call for help was already announced
const helpToasts = new Map(); // room id -> its "… зовёт организатора" toast
let helpAsked = null; // the room we called the host from (until the state says so)

/** A breakout message (or the one in `joined`): the new state and the room we are in. */
export function onBreakout(msg) {
  const state = msg.state && typeof msg.state === 'object' ? msg.state : null;
  const before = urok.breakout;
  const wasOpen = Boolean(before && before.opened);
  const wasRoom = currentRoom();
  urok.breakout = state;
  urok.room = state && state.opened && typeof msg.room === 'string' && msg.room ? msg.room : null;
  const nowOpen = Boolean(state && state.opened);
  const room = currentRoom();
  if (views.chat) views.chat.setRoom(room || '');
  // From now on the state says whether our call for help is still open.
  helpAsked = null;
  if (urok.state !== 'in-call') return;
  if (room !== wasRoom) {
    if (room) {
      toast(i18n.t('breakout.moved_to', { name: roomName(state, room) }));
    } else if (nowOpen) {
      toast(i18n.t('breakout.moved_main'));
    }
  }
  if (wasOpen && !nowOpen) toast(i18n.t('breakout.closed_toast'));
  else if (!wasOpen && nowOpen && !room) toast(i18n.t('breakout.opened_toast'));
  announceHelp(urok.isHost ? state : null);
  applyBreakout();
}

/** Hosts: a toast with "Перейти" for each room that newly calls for help. */
function announceHelp(state) {
  const requests = state && state.opened && Array.isArray(state.help_requests) ? state.help_requests : [];
  for (const roomId of requests) {
    if (helpSeen.has(roomId)) continue;
    helpSeen.add(roomId);
    if (roomId === currentRoom()) continue;
    const el = toast(i18n.t('breakout.help_toast', { name: roomName(state, roomId) }), 'warning', {
      timeoutMs: 20000,
      action: {
        label: i18n.t('breakout.visit'),
        run: () => sendAction({ type: 'breakout_visit', room_id: roomId }),
      },
    });
    helpToasts.set(roomId, el);
    beep();
  }
  helpSeen = new Set([...helpSeen].filter((id) => requests.includes(id)));
  // Answered (someone went there) or the rooms closed: the toast has done its job.
  for (const [roomId, el] of helpToasts) {
    if (!requests.includes(roomId) || !el.isConnected) {
      el.remove();
      helpToasts.delete(roomId);
    }
  }
}

/** Show what the breakout state means for this page: tiles, the room bar, panels, the timer. */
export function applyBreakout() {
  if (urok.state !== 'in-call') return;
  let changed = false;
  for (const tile of urok.tiles.values()) changed = placeTile(tile) || changed;
  if (changed) relayout();
  renderBreakoutBar();
  const opened = Boolean(urok.breakout && urok.breakout.opened);
  const help = opened && urok.isHost ? (urok.breakout.help_requests || []).length : 0;
  const badge = $('breakout-badge');
  badge.hidden = !help;
  badge.textContent = String(help);
  badge.title = i18n.t('breakout.help_count', { count: help });
  $('toggle-breakout').classList.toggle('ctrl-live', opened);
  const room = currentRoom();
  $('chat-title').textContent = room
    ? i18n.t('breakout.chat_title', { name: roomName(urok.breakout, room) })
    : i18n.t('chat.title');
  if (views.recording) views.recording.render();
  renderPeople();
  if (opened && !breakoutTimer) {
    breakoutTimer = setInterval(breakoutTick, 1000);
  } else if (!opened && breakoutTimer) {
    clearInterval(breakoutTimer);
    breakoutTimer = null;
  }
}

function breakoutTick() {
  renderBreakoutBar();
  if (views.breakoutPanel && urok.panel === 'breakout') views.breakoutPanel.tick();
}

/** The bar under the header while the rooms are open: where we are, the timer, the countdown. */
function renderBreakoutBar() {
  const bar = $('breakout-bar');
  const state = urok.breakout;
  if (!state || !state.opened || urok.state !== 'in-call') {
    bar.hidden = true;
    return;
  }
  bar.hidden = false;
  const room = currentRoom();
  const where = $('breakout-where');
  if (room) where.textContent = i18n.t('breakout.you_in_room', { name: roomName(state, room) });
  else where.textContent = i18n.t(urok.isHost ? 'breakout.you_in_main_host' : 'breakout.you_in_main');
  bar.dataset.room = room || '';
  const closing = secondsUntil(state.closing_at);
  const left = secondsUntil(state.ends_at);
  const timer = $('breakout-timer');
  timer.hidden = left === null || closing !== null;
  if (left !== null) {
    timer.textContent = left > 0
      ? i18n.t('breakout.time_left', { time: formatDuration(left) })
      : i18n.t('breakout.time_up');
  }
  const countdown = $('breakout-closing');
  countdown.hidden = closing === null;
  if (closing !== null) countdown.textContent = i18n.t('breakout.closing_in', { seconds: closing });
  bar.classList.toggle('breakout-bar-closing', closing !== null);
  const helpButton = $('breakout-help');
  helpButton.hidden = !room || urok.isHost;
  const asked = Boolean(room) && ((state.help_requests || []).includes(room) || helpAsked === room);
  helpButton.disabled = asked;
  const helpLabel = $('breakout-help-label');
  const key = asked ? 'breakout.help_waiting' : 'breakout.call_host';
  helpLabel.dataset.i18n = key;
  helpLabel.textContent = i18n.t(key);
  $('breakout-return').hidden = !room || !(urok.isHost || state.allow_return);
}

/** Leaving: no timer, no help toasts, no bar. */
export function resetRooms() {
  helpSeen = new Set();
  for (const el of helpToasts.values()) el.remove();
  helpToasts.clear();
  clearInterval(breakoutTimer);
  breakoutTimer = null;
  $('breakout-bar').hidden = true;
  $('breakout-badge').hidden = true;
  if (views.chat) views.chat.setRoom('');
}

/** The bar's buttons (call the host, back to the main room) and the host's panel. */
export function wireRooms() {
  $('breakout-help').addEventListener('click', () => {
    if (sendAction({ type: 'breakout_help' })) {
      helpAsked = urok.room;
      renderBreakoutBar();
      toast(i18n.t('breakout.help_sent'));
    }
  });
  $('breakout-return').addEventListener('click', () => {
    if (urok.isHost) sendAction({ type: 'breakout_visit', room_id: null });
    else sendAction({ type: 'breakout_return' });
  });
  views.breakoutPanel = new BreakoutPanel($('breakout-body'), {
    configure: (count, names) => sendAction({ type: 'breakout_configure', count, names }),
    assign: (id, roomId) => sendAction({ type: 'breakout_assign', assignments: { [id]: roomId } }),
    random: () => sendAction({ type: 'breakout_assign_random' }),
    open: (minutes, allowReturn) => {
      const message = { type: 'breakout_open', allow_return: allowReturn };
      if (minutes) message.minutes = minutes;
      sendAction(message);
    },
    move: (id, roomId) => sendAction({ type: 'breakout_move', participant_id: id, room_id: roomId }),
    visit: (roomId) => sendAction({ type: 'breakout_visit', room_id: roomId }),
    broadcast: (text) => {
      const sent = Boolean(sendAction({ type: 'breakout_broadcast', text }));
      if (sent) toast(i18n.t('breakout.broadcast_sent'));
      return sent;
    },
    close: (seconds) => sendAction({ type: 'breakout_close', countdown_seconds: seconds }),
    invalid: (key, params) => toast(i18n.t(key, params), 'warning'),
  });
}
