// Classroom control as this page sees it (docs/protocol.md): co-hosts, raised
// hands, the waiting room, nudges, the host muting us, the rights the host
// grants, and the host's actions from the people and rights panels.

import * as i18n from './i18n.js';
import { applyPollsHostUi } from './polls.js';
import { openPanel, renderPeople } from './layout.js';
import { People } from './people.js';
import { sendMediaState, setControlLabel, updateControls } from './publisher.js';
import { RIGHTS, Rights } from './rights.js';
import { stopScreenShare } from './screenshare.js';
import {
  $, DEFAULT_PERMISSIONS, isOn, sendAction, urok, views,
} from './state.js';
import { renderHostHands } from './hands.js';
import {
  banner, beep, confirmAction, toast,
} from './ui.js';

/** What only hosts see: the rights and breakout buttons, the recording control. */
export function applyHostUi() {
  const host = urok.isHost;
  const recording = views.recording;
  $('toggle-rights').hidden = !host;
  $('toggle-breakout').hidden = !host;
  if (!host && urok.panel === 'breakout') openPanel(null);
  $('leave').title = i18n.t(host ? 'call.leave_title_host' : 'call.leave_title');
  if (!host && urok.panel === 'rights') openPanel(null);
  if (!host && recording) recording.closeDialog();
  if (recording) recording.render();
  renderHostHands();
  applyPollsHostUi();
}

/** participant_updated about ourselves: we may have become (or stopped being) a co-host. */
export function onSelfUpdated(participant) {
  const wasHost = urok.isHost;
  Object.assign(urok.self, participant);
  const tile = urok.tiles.get(urok.self.id);
  if (tile) {
    tile.update({ host: urok.self.host, cohost: urok.self.cohost, name: urok.self.name });
  }
  if (wasHost !== urok.isHost && urok.state === 'in-call') {
    toast(i18n.t(urok.isHost ? 'call.you_are_cohost' : 'call.you_are_not_cohost'));
    if (!urok.isHost) urok.waiting = [];
    applyHostUi();
    updateControls();
    renderWaiting();
  }
  renderPeople();
}

export function renderHands() {
  for (const [id, tile] of urok.tiles) tile.setHand(urok.hands.indexOf(id));
  const raised = Boolean(urok.self) && urok.hands.includes(urok.self.id);
  const button = $('toggle-hand');
  button.setAttribute('aria-pressed', String(raised));
  button.classList.toggle('ctrl-active', raised);
  const label = raised ? 'call.lower_hand' : 'call.raise_hand';
  setControlLabel(button, label);
  button.title = `${i18n.t(label)} (H)`;
  renderHostHands();
  renderPeople();
}

const waitingToasts = new Map(); // participant id -> the "… is waiting [Admit]" toast

/** Hosts: the waiting room changed; a toast for whoever newly knocks. */
export function onWaitingList(list) {
  if (!urok.isHost) return;
  const before = new Set(urok.waiting.map((p) => p.id));
  urok.waiting = list;
  const now = new Set(list.map((p) => p.id));
  for (const [id, el] of waitingToasts) {
    if (!now.has(id) || !el.isConnected) {
      el.remove();
      waitingToasts.delete(id);
    }
  }
  const fresh = list.filter((p) => !before.has(p.id));
  if (urok.state === 'in-call') {
    if (fresh.length === 1) {
      const person = fresh[0];
      const el = toast(i18n.t('call.someone_waiting', { name: person.name }), 'info', {
        timeoutMs: 9000,
        action: {
          label: i18n.t('people.admit'),
          run: () => hostAction('admit', person.id),
        },
      });
      waitingToasts.set(person.id, el);
    } else if (fresh.length > 1) {
      toast(i18n.t('call.many_waiting', { count: fresh.length }), 'info', {
        timeoutMs: 9000,
        action: { label: i18n.t('call.show_waiting'), run: () => openPanel('people') },
      });
    }
  }
  renderWaiting();
}

export function renderWaiting() {
  const count = urok.isHost ? urok.waiting.length : 0;
  const badge = $('people-badge');
  badge.hidden = !count;
  badge.textContent = String(count);
  badge.title = i18n.t('people.waiting', { count });
  const pill = $('waiting-pill');
  pill.hidden = !count;
  pill.textContent = i18n.t('call.waiting_pill', { count });
  renderPeople();
}

/** A host nudged us: a banner, a beep, our tile flashes, the tab title rings. */
export function onNudged(msg) {
  const name = (msg.by && msg.by.name) || i18n.t('call.host');
  urok.nudges.push({ by: msg.by || null, at: Date.now() });
  banner(i18n.t('call.nudged', { name }), { kind: 'nudge', key: 'nudge', iconName: 'bell', timeoutMs: 12000 });
  urok.beeped = beep();
  const tile = urok.self && urok.tiles.get(urok.self.id);
  if (tile) tile.flash();
  document.title = `🔔 ${i18n.t('app.page_title')}`;
  setTimeout(() => { document.title = i18n.t('app.page_title'); }, 8000);
}

/** A host turned our microphone, camera or screen share off. */
export function onMuted(msg) {
  const kind = msg.kind;
  if (kind === 'audio' && urok.local.audio) urok.local.audio.enabled = false;
  if (kind === 'video' && urok.local.video) urok.local.video.enabled = false;
  if (kind === 'screen') stopScreenShare({ announce: false });
  const key = { audio: 'call.muted_audio_by_host', video: 'call.muted_video_by_host', screen: 'call.muted_screen_by_host' }[kind];
  if (key) {
    const text = i18n.t(key);
    urok.notices.push({ kind, text });
    banner(text, { kind: 'warning', key: `muted-${kind}`, iconName: kind === 'screen' ? 'screen-off' : `${kind === 'audio' ? 'mic' : 'camera'}-off` });
  }
  updateControls();
  sendMediaState();
}

/** The call's settings or our rights changed: say what changed and follow it. */
export function onCallSettings(msg) {
  const before = urok.permissions;
  urok.settings = msg.settings || urok.settings;
  urok.permissions = { ...DEFAULT_PERMISSIONS, ...(msg.permissions || {}) };
  views.rights.render(urok.settings);
  if (urok.state !== 'in-call') return;
  if (!urok.isHost) {
    for (const right of RIGHTS) {
      if (Boolean(before[right]) === Boolean(urok.permissions[right])) continue;
      const text = i18n.t(`call.right_${urok.permissions[right] ? 'granted' : 'revoked'}_${right}`);
      urok.notices.push({ right, text });
      toast(text, urok.permissions[right] ? 'info' : 'warning', { timeoutMs: 7000 });
    }
  }
  views.chat.setPermitted(urok.permissions.chat !== false);
  enforcePermissions();
}

/** Switch off whatever the server does not (or no longer) let us have on. */
export function enforcePermissions() {
  let changed = false;
  const self = urok.self || {};
  if (isOn('audio') && (!urok.permissions.unmute || self.audio === false) && !urok.isHost) {
    urok.local.audio.enabled = false;
    changed = true;
  }
  if (isOn('video') && (!urok.permissions.video || self.video === false) && !urok.isHost) {
    urok.local.video.enabled = false;
    changed = true;
  }
  if (urok.local.screen && !urok.permissions.screen) {
    stopScreenShare({ announce: false });
    changed = true;
  }
  updateControls();
  if (changed) sendMediaState();
}

// ---------------------------------------------------------------- host actions

function nameOf(id) {
  const tile = urok.tiles.get(id);
  if (tile) return tile.participant.name;
  const waiting = urok.waiting.find((p) => p.id === id);
  return waiting ? waiting.name : '';
}

/** An action from the people panel (or a toast): the message the server expects for it. */
async function hostAction(action, id) {
  switch (action) {
    case 'admit': sendAction({ type: 'admit', participant_id: id }); break;
    case 'deny': sendAction({ type: 'deny', participant_id: id }); break;
    case 'admit-all': sendAction({ type: 'admit_all' }); break;
    case 'deny-all': sendAction({ type: 'deny_all' }); break;
    case 'lower-hand': sendAction({ type: 'lower_hand', participant_id: id }); break;
    case 'lower-all-hands': sendAction({ type: 'lower_all_hands' }); break;
    case 'give-floor':
      sendAction({ type: 'give_floor', participant_id: id, floor: true });
      toast(i18n.t('hands.floor_given', { name: nameOf(id) }));
      break;
    case 'take-floor': sendAction({ type: 'give_floor', participant_id: id, floor: false }); break;
    case 'lower-own-hand': sendAction({ type: 'hand', raised: false }); break;
    case 'nudge': {
      sendAction({ type: 'nudge', participant_id: id });
      const tile = urok.tiles.get(id);
      if (tile) tile.flash();
      toast(i18n.t('call.nudge_sent', { name: nameOf(id) }));
      break;
    }
    case 'mute-audio': sendAction({ type: 'mute', participant_id: id, kind: 'audio' }); break;
    case 'mute-video': sendAction({ type: 'mute', participant_id: id, kind: 'video' }); break;
    case 'mute-screen': sendAction({ type: 'mute', participant_id: id, kind: 'screen' }); break;
    case 'mute-all':
      sendAction({ type: 'mute_all' });
      toast(i18n.t('call.muted_all'));
      break;
    case 'make-cohost': sendAction({ type: 'set_cohost', participant_id: id, cohost: true }); break;
    case 'unmake-cohost': sendAction({ type: 'set_cohost', participant_id: id, cohost: false }); break;
    case 'remove': {
      const name = nameOf(id);
      const sure = await confirmAction({
        title: i18n.t('people.remove_title', { name }),
        text: i18n.t('people.remove_text'),
        confirmLabel: i18n.t('people.remove_confirm'),
        danger: true,
      });
      if (sure) sendAction({ type: 'remove', participant_id: id });
      break;
    }
    default:
      console.warn('urok: unknown action', action);
  }
}

/** The hand button, and the people and rights panels. */
export function wireClassroom() {
  $('toggle-hand').addEventListener('click', () => {
    const raised = Boolean(urok.self) && urok.hands.includes(urok.self.id);
    sendAction({ type: 'hand', raised: !raised });
  });
  views.people = new People($('people-body'), { onAction: (action, id) => hostAction(action, id) });
  views.rights = new Rights($('rights-body'), {
    onPermission: (role, right, value) => {
      sendAction({ type: 'set_permissions', role, permissions: { [right]: value } });
    },
    onSetting: (name, value) => sendAction({ type: 'set_call_settings', [name]: value }),
  });
}
