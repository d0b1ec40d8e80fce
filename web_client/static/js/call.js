// The call page: pre-join screen, joining over /ws, the publisher and
// subscriber peer connections (docs/protocol.md) and the in-call screen.

import {
  BreakoutPanel, formatDuration, roomName, secondsUntil,
} from './breakout.js';
import { Chat, isRecordingReady } from './chat.js';
import * as i18n from './i18n.js';
import { fillIcons, setIcon } from './icons.js';
import {
  capture, iceGatheringComplete, levelMeter, listDevices, mediaSupported, stopStream,
} from './media.js';
import { People } from './people.js';
import { RecordingControl, withToken } from './recording.js';
import { RIGHTS, Rights } from './rights.js';
import { Signalling, SignallingError } from './signalling.js';
import { ScreenTile, Tile, layoutGrid } from './tiles.js';
import {
  ask, banner, beep, clearBanners, closeDialog, confirmAction, toast,
} from './ui.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const langOverride = params.get('lang');
const lessonId = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');
const PING_INTERVAL_MS = 25000;
const INFO_POLL_MS = 5000;
const DEFAULT_PERMISSIONS = { unmute: true, video: true, screen: false, chat: true };

// Debugging and test state: window.urok.pcs.subscriber.getStats() etc.
const urok = {
  state: 'loading',
  lessonId,
  claims: {},
  info: null,
  canJoin: false,
  joining: false,
  ws: null,
  self: null,
  call: null,
  iceServers: [],
  pcs: { publisher: null, subscriber: null },
  published: [], // [{transceiver, source}]
  tracks: {}, // the latest subscribe_offer's mid -> {participant_id, kind, source}
  tiles: new Map(), // participant id -> Tile (self included)
  local: { stream: null, audio: null, video: null, screen: null, problems: {} },
  prefs: { audioId: '', videoId: '' },
  errors: [],
  hands: [], // participant ids with a raised hand, in the order raised
  waiting: [], // hosts: who is in the waiting room
  settings: null, // the call's settings (waiting room, guests, permissions per role)
  permissions: { ...DEFAULT_PERMISSIONS }, // what this person may do now
  remoteScreens: new Map(), // participant id -> screen-share receiver track
  screenOrder: [], // who shares a screen, in the order they started
  panel: null, // the open side panel: chat | breakout | people | rights | null
  breakout: null, // the latest breakout state (docs/protocol.md "Breakout rooms")
  room: null, // the breakout room we are in now (null: the main room)
  nudges: [], // nudged messages received
  notices: [], // muted-by-host and permission notices shown
  chatView: null,
  get participants() {
    const out = {};
    for (const [id, tile] of this.tiles) out[id] = { ...tile.participant };
    return out;
  },
  get chat() {
    return this.chatView ? this.chatView.messages : [];
  },
  get unread() {
    return this.chatView ? this.chatView.unread : 0;
  },
  get isHost() {
    return Boolean(this.self && this.self.host);
  },
  /** The running recording (docs/protocol.md "recording"), or null. */
  get recording() {
    return recordingUi ? recordingUi.state : null;
  },
  /** Seconds it has been recording, by this page's clock (null: not recording). */
  get recordingSeconds() {
    return recordingUi ? recordingUi.seconds : null;
  },
  get roomName() {
    return this.room ? roomName(this.breakout, this.room) : null;
  },
  /** Where a participant (by connection id) is now: a room id, or null for the main room. */
  roomOf(id) {
    const tile = this.tiles.get(id);
    return tile ? roomOfParticipant(tile.participant) : null;
  },
  /** Who is in which room now: {room id or "": [participant ids]}. */
  get whereabouts() {
    const out = {};
    for (const [id, tile] of this.tiles) {
      const room = roomOfParticipant(tile.participant) || '';
      (out[room] = out[room] || []).push(id);
    }
    return out;
  },
};
window.urok = urok;

let token = null;
let stopMeter = () => {};
let pingTimer = null;
let infoTimer = null;
let subscriberQueue = Promise.resolve();
let publisherQueue = Promise.resolve();

// ---------------------------------------------------------------- small helpers

function setState(state) {
  urok.state = state;
  $('app').dataset.state = state;
}

function show(screen) {
  for (const name of ['loading', 'prejoin', 'waiting', 'call', 'message']) {
    $(`screen-${name}`).hidden = name !== screen;
  }
}

function errorText(code, message = '') {
  const key = `errors.${code}`;
  return i18n.has(key) ? i18n.t(key) : i18n.t('errors.generic', { message: message || code });
}

function showMessage({ title, text, details = '', iconName = 'info', action = null }) {
  closeDialog();
  $('message-title').textContent = title;
  $('message-text').textContent = text;
  $('message-details').textContent = details;
  setIcon($('message-icon'), iconName);
  const button = $('message-action');
  button.hidden = !action;
  button.onclick = null;
  if (action) {
    button.textContent = action.label;
    button.onclick = action.run;
  }
  show('message');
}

function forgetToken() {
  try {
    sessionStorage.removeItem(`urok.token.${lessonId}`);
  } catch {
    // Storage blocked: nothing was kept.
  }
}

function showFatal(code, message) {
  setState('error');
  if (code === 'token_invalid') forgetToken();
  urok.errors.push({ code, message });
  const retryable = ['connection_failed', 'timeout', 'lesson_not_open'].includes(code);
  showMessage({
    title: i18n.t('errors.title'),
    text: errorText(code, message),
    details: i18n.t('errors.details', { code }),
    iconName: 'warning',
    action: retryable ? { label: i18n.t('common.retry'), run: () => startPrejoin() } : null,
  });
}

function readToken() {
  const key = `urok.token.${lessonId}`;
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) {
    // Keep the token out of the address bar (screenshots, copied links) but
    // survive a reload of this tab.
    try {
      sessionStorage.setItem(key, fromHash);
      history.replaceState(null, '', location.pathname + location.search);
    } catch {
      // Storage blocked (some embedded contexts): leave the URL as it is.
    }
    return fromHash;
  }
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

function decodeClaims(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const binary = atob(part.padEnd(Math.ceil(part.length / 4) * 4, '='));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}

function formatWhen(startsAt, endsAt) {
  if (!startsAt || !endsAt) return '';
  const start = new Date(startsAt);
  const end = new Date(endsAt);
  if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) return '';
  const lang = i18n.language();
  const time = new Intl.DateTimeFormat(lang, { hour: '2-digit', minute: '2-digit' });
  const date = new Intl.DateTimeFormat(lang, { day: 'numeric', month: 'long', weekday: 'long' });
  return i18n.t('prejoin.when', {
    date: date.format(start), start: time.format(start), end: time.format(end),
  });
}

// ---------------------------------------------------------------- pre-join

async function fetchInfo() {
  let response;
  try {
    response = await fetch(`/call/${encodeURIComponent(lessonId)}/info`, {
      headers: { Authorization: `Bearer ${token}` },
      cache: 'no-store',
    });
  } catch {
    throw new SignallingError('connection_failed');
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = (body && body.error) || {};
    throw new SignallingError(error.code || 'generic', error.message || `HTTP ${response.status}`);
  }
  return body;
}

function renderLessonHeader() {
  const info = urok.info && urok.info.lesson;
  const title = (urok.call && urok.call.title) || (info && info.title) || i18n.t('app.name');
  $('lesson-title').textContent = title;
  $('lesson-when').textContent = info ? formatWhen(info.starts_at, info.ends_at) : '';
  const name = (urok.info && urok.info.you.name) || urok.claims.name || '';
  const role = (urok.info && urok.info.you.role) || urok.claims.role || '';
  const roleText = role && i18n.has(`role.${role}`) ? ` · ${i18n.t(`role.${role}`)}` : '';
  $('you-are').textContent = name ? i18n.t('prejoin.you_are', { name }) + roleText : '';
  $('host-hint').hidden = role !== 'teacher';
}

/** Ask the server whether the lesson can be joined; keep asking while it has not started. */
async function refreshInfo() {
  clearTimeout(infoTimer);
  try {
    urok.info = await fetchInfo();
  } catch (error) {
    if (error.code === 'connection_failed' && urok.info) {
      infoTimer = setTimeout(refreshInfo, INFO_POLL_MS);
      return;
    }
    stopPreview();
    showFatal(error.code, error.message);
    return;
  }
  if (urok.info.lesson.state === 'ended') {
    stopPreview();
    showFatal('lesson_ended');
    return;
  }
  urok.canJoin = Boolean(urok.info.can_join);
  $('not-started').hidden = urok.canJoin;
  renderLessonHeader();
  updateJoinButtons();
  if (!urok.canJoin && urok.state === 'prejoin') infoTimer = setTimeout(refreshInfo, INFO_POLL_MS);
}

function mediaNotice(problems) {
  const { audio, video } = problems;
  if (audio === 'unsupported') return i18n.t('prejoin.media_unsupported');
  if (audio === 'denied' && video === 'denied') return i18n.t('prejoin.permission_denied');
  if (audio === 'missing' && video === 'missing') return i18n.t('prejoin.no_devices');
  if (audio === 'busy' || video === 'busy') return i18n.t('prejoin.device_busy');
  const parts = [];
  if (video === 'denied') parts.push(i18n.t('prejoin.camera_denied'));
  if (video === 'missing') parts.push(i18n.t('prejoin.no_camera'));
  if (audio === 'denied') parts.push(i18n.t('prejoin.mic_denied'));
  if (audio === 'missing') parts.push(i18n.t('prejoin.no_mic'));
  return parts.join(' ');
}

function setNotice(text) {
  $('prejoin-notice').textContent = text || '';
  $('prejoin-notice').hidden = !text;
}

function stopPreview() {
  stopMeter();
  stopMeter = () => {};
  stopStream(urok.local.stream);
  urok.local = { stream: null, audio: null, video: null, screen: null, problems: {} };
  $('preview').srcObject = null;
}

async function startPreview() {
  stopPreview();
  urok.previewReady = false;
  updateJoinButtons();
  setNotice(mediaSupported() ? i18n.t('prejoin.asking_permission') : '');
  const result = await capture({ audioId: urok.prefs.audioId, videoId: urok.prefs.videoId });
  if (urok.state !== 'prejoin') {
    stopStream(result.stream);
    return;
  }
  const stream = result.stream;
  urok.local = {
    stream,
    audio: stream ? stream.getAudioTracks()[0] || null : null,
    video: stream ? stream.getVideoTracks()[0] || null : null,
    screen: null,
    problems: { audio: result.audioProblem, video: result.videoProblem },
  };
  $('preview').srcObject = urok.local.video ? new MediaStream([urok.local.video]) : null;
  $('preview-off').hidden = Boolean(urok.local.video);
  stopMeter = levelMeter(stream, (level) => {
    $('mic-meter').style.setProperty('--level', String(level));
  });
  setNotice(mediaNotice(urok.local.problems));
  await fillDeviceSelects();
  urok.previewReady = true;
  updateJoinButtons();
}

async function fillDeviceSelects() {
  const devices = await listDevices().catch(() => ({ audio: [], video: [] }));
  const fill = (select, list, current, noneKey) => {
    select.replaceChildren();
    if (!list.length || !current) {
      const option = new Option(i18n.t(noneKey), '');
      select.append(option);
      select.disabled = true;
      if (!list.length) return;
    } else {
      select.disabled = false;
    }
    list.forEach((device, index) => {
      const label = device.label || i18n.t('prejoin.device_default', { n: index + 1 });
      select.append(new Option(label, device.deviceId, false, device.deviceId === current));
    });
    if (!current) select.disabled = false;
  };
  const deviceOf = (track) => (track && track.getSettings().deviceId) || '';
  fill($('camera-select'), devices.video, deviceOf(urok.local.video), 'prejoin.no_camera_option');
  fill($('mic-select'), devices.audio, deviceOf(urok.local.audio), 'prejoin.no_mic_option');
}

function updateJoinButtons() {
  const ready = urok.canJoin && !urok.joining && urok.previewReady;
  const { audio, video } = urok.local;
  $('join-video').disabled = !ready || !video;
  $('join-audio').disabled = !ready;
  const label = audio ? 'prejoin.join_audio' : 'prejoin.join_without';
  $('join-audio-label').dataset.i18n = label;
  $('join-audio-label').textContent = i18n.t(urok.joining ? 'prejoin.joining' : label);
}

async function startPrejoin() {
  teardown();
  setState('prejoin');
  urok.joining = false;
  urok.call = null;
  show('prejoin');
  renderLessonHeader();
  await refreshInfo();
  if (urok.state === 'prejoin') await startPreview();
}

// ---------------------------------------------------------------- joining

async function join(withVideo) {
  if (urok.joining) return;
  urok.joining = true;
  clearTimeout(infoTimer);
  updateJoinButtons();
  stopMeter();
  if (!withVideo && urok.local.video) {
    urok.local.stream.removeTrack(urok.local.video);
    urok.local.video.stop();
    urok.local.video = null;
  }
  setState('joining');
  const sig = new Signalling();
  urok.ws = sig;
  wireSignalling(sig);
  try {
    await sig.connect();
    const message = { type: 'join', token };
    if (lessonId) message.lesson_id = lessonId;
    const reply = await sig.request(message, ['joined', 'waiting'], 15000);
    if (reply.type === 'waiting') onWaiting(reply);
    else await onJoined(reply);
  } catch (error) {
    urok.joining = false;
    sig.onclose = null;
    sig.close();
    if (urok.ws === sig) urok.ws = null;
    const code = error instanceof SignallingError ? error.code : 'generic';
    if (code === 'lesson_not_open') {
      await startPrejoin();
      toast(errorText(code), 'warning');
      return;
    }
    stopPreview();
    console.error('urok: join failed', error);
    showFatal(code, error.message);
  }
}

function startPing() {
  clearInterval(pingTimer);
  pingTimer = setInterval(() => urok.ws && urok.ws.send({ type: 'ping' }), PING_INTERVAL_MS);
}

/** The waiting room: no media, no chat, until a host admits (joined) or denies us. */
function onWaiting(msg) {
  urok.self = { ...msg.self };
  urok.call = msg.call || null;
  urok.joining = false;
  setState('waiting');
  show('waiting');
  $('waiting-lesson').textContent = (urok.call && urok.call.title) || '';
  const preview = $('waiting-preview');
  preview.srcObject = urok.local.video ? new MediaStream([urok.local.video]) : null;
  preview.parentElement.classList.toggle('no-video', !urok.local.video);
  startPing();
}

function wireSignalling(sig) {
  sig.on('joined', (msg) => {
    // Admitted from the waiting room: the same connection goes into the call.
    if (urok.ws !== sig || urok.state !== 'waiting') return;
    onJoined(msg).catch((error) => {
      console.error('urok: entering the call failed', error);
      showFatal('generic', String(error));
    });
  });
  sig.on('waiting', () => {});
  sig.on('subscribe_offer', (msg) => {
    subscriberQueue = subscriberQueue
      .then(() => onSubscribeOffer(sig, msg))
      .catch((error) => {
        console.error('urok: subscribe offer failed', error);
        urok.errors.push({ code: 'subscribe', message: String(error) });
        toast(i18n.t('call.media_failed'), 'error');
      });
  });
  sig.on('participant_joined', (msg) => {
    if (!msg.participant || (urok.self && msg.participant.id === urok.self.id)) return;
    const known = urok.tiles.has(msg.participant.id) && urok.tiles.get(msg.participant.id).participant.name;
    upsertParticipant(msg.participant);
    if (!known && urok.state === 'in-call') {
      toast(i18n.t('call.participant_joined', { name: msg.participant.name }));
    }
    renderPeople();
  });
  sig.on('participant_updated', (msg) => {
    if (!msg.participant) return;
    if (urok.self && msg.participant.id === urok.self.id) {
      onSelfUpdated(msg.participant);
      return;
    }
    upsertParticipant(msg.participant);
    renderScreens();
    renderPeople();
  });
  sig.on('participant_left', (msg) => {
    const tile = urok.tiles.get(msg.participant_id);
    if (!tile || tile.self) return;
    tile.remove();
    urok.tiles.delete(msg.participant_id);
    urok.remoteScreens.delete(msg.participant_id);
    if (tile.participant.name) {
      toast(i18n.t('call.participant_left', { name: tile.participant.name }));
    }
    relayout();
    renderScreens();
    renderPeople();
  });
  sig.on('hands', (msg) => {
    urok.hands = Array.isArray(msg.queue) ? msg.queue : [];
    renderHands();
  });
  sig.on('waiting_list', (msg) => onWaitingList(Array.isArray(msg.waiting) ? msg.waiting : []));
  sig.on('nudged', (msg) => onNudged(msg));
  sig.on('muted', (msg) => onMuted(msg));
  sig.on('call_settings', (msg) => onCallSettings(msg));
  sig.on('breakout', (msg) => onBreakout(msg));
  sig.on('chat_message', (msg) => {
    if (!urok.chatView || !msg.message) return;
    const message = msg.message;
    if (typeof message.room !== 'string' && typeof msg.room === 'string') message.room = msg.room;
    urok.chatView.add(message);
    if (isRecordingReady(message)) onRecordingReady(message);
  });
  sig.on('recording', (msg) => {
    if (urok.ws !== sig || !recordingUi) return;
    recordingUi.set(msg.recording || null, { reason: msg.reason || null });
  });
  sig.on('denied', () => {
    teardown();
    setState('denied');
    showMessage({
      title: i18n.t('denied.title'),
      text: i18n.t('denied.text'),
      iconName: 'info',
      action: { label: i18n.t('denied.retry'), run: () => startPrejoin() },
    });
  });
  sig.on('removed', () => {
    teardown();
    forgetToken();
    setState('removed');
    showMessage({ title: i18n.t('removed.title'), text: i18n.t('removed.text'), iconName: 'warning' });
  });
  sig.on('call_ended', (msg) => {
    const wasHost = urok.isHost;
    teardown();
    if (msg.reason === 'replaced') {
      setState('replaced');
      showMessage({
        title: i18n.t('replaced.title'),
        text: i18n.t('replaced.text'),
        iconName: 'info',
        action: { label: i18n.t('replaced.rejoin'), run: () => startPrejoin() },
      });
    } else {
      setState('ended');
      let text = i18n.t('ended.text');
      if (msg.reason === 'ended_by_host') {
        text = i18n.t(wasHost ? 'ended.text_by_you' : 'ended.text_by_host');
      } else if (msg.reason === 'time_over') {
        text = i18n.t('ended.text_time_over');
      } else if (msg.reason === 'server_shutdown') {
        text = i18n.t('ended.text_server');
      }
      showMessage({ title: i18n.t('ended.title'), text, iconName: 'check' });
    }
  });
  sig.on('error', (msg) => onServerError(msg));
  sig.on('pong', () => {});
  sig.on('publish_answer', () => {});
  sig.on('*', (msg) => console.debug('urok: unhandled message', msg.type));
  sig.onclose = () => {
    if (urok.ws !== sig) return;
    if (urok.state === 'in-call' || urok.state === 'waiting') {
      teardown();
      setState('lost');
      showMessage({
        title: i18n.t('lost.title'),
        text: i18n.t('lost.text'),
        iconName: 'warning',
        action: { label: i18n.t('left.rejoin'), run: () => startPrejoin() },
      });
    }
  };
}

const mediaStateRefs = new Set();

function onServerError(msg) {
  urok.errors.push({ code: msg.code, message: msg.message, ref: msg.ref });
  console.warn('urok: server error', msg.code, msg.message);
  if (urok.chatView && urok.chatView.handleError(msg.ref, msg.code, msg.message)) return;
  if (recordingUi && recordingUi.handleError(msg.ref, msg.code, msg.message)) return;
  if (msg.ref && mediaStateRefs.has(msg.ref)) {
    mediaStateRefs.delete(msg.ref);
    if (msg.code === 'not_permitted') {
      // The server kept something off: follow what it says.
      enforcePermissions();
      toast(i18n.t('call.not_permitted_media'), 'warning');
      return;
    }
  }
  // A refused settings change: show the settings as they really are.
  if (rights && urok.settings) rights.render(urok.settings);
  if (urok.state === 'in-call') toast(errorText(msg.code, msg.message), 'error');
}

async function onJoined(joined) {
  urok.self = { ...joined.self };
  urok.call = joined.call || null;
  urok.iceServers = Array.isArray(joined.ice_servers) ? joined.ice_servers : [];
  urok.joining = false;
  urok.hands = Array.isArray(joined.hands) ? joined.hands : [];
  urok.settings = joined.settings || null;
  urok.permissions = { ...DEFAULT_PERMISSIONS, ...(joined.permissions || {}) };
  urok.waiting = Array.isArray(joined.waiting) ? joined.waiting : [];
  $('waiting-preview').srcObject = null;
  if (!langOverride && joined.language && joined.language !== i18n.language()) {
    await i18n.setLanguage(joined.language);
    i18n.apply();
    rights.build();
    breakoutPanel.build();
  }
  // What the host does not allow stays off from the start.
  if (!urok.permissions.unmute && urok.local.audio) urok.local.audio.enabled = false;
  if (!urok.permissions.video && urok.local.video) urok.local.video.enabled = false;
  setState('in-call');
  show('call');
  $('call-title').textContent = (urok.call && urok.call.title) || '';
  $('call-when').textContent = urok.call ? formatWhen(urok.call.starts_at, urok.call.ends_at) : '';
  const selfTile = new Tile(
    { ...urok.self, audio: isOn('audio'), video: isOn('video') },
    { self: true },
  );
  urok.tiles.set(urok.self.id, selfTile);
  $('grid').prepend(selfTile.el);
  selfTile.setTrack('video', urok.local.video);
  for (const participant of joined.participants || []) upsertParticipant(participant);
  urok.chatView.reset(Array.isArray(joined.chat) ? joined.chat : []);
  urok.chatView.setPermitted(urok.permissions.chat !== false);
  rights.render(urok.settings);
  recordingUi.setLive(true);
  recordingUi.set(joined.recording || null, { joining: true });
  refreshRecordingAccess();
  applyHostUi();
  updateControls();
  relayout();
  renderHands();
  renderWaiting();
  if (joined.breakout && typeof joined.breakout === 'object') {
    onBreakout({ state: joined.breakout.state || joined.breakout, room: joined.breakout.room ?? joined.room ?? null });
  }
  applyBreakout();
  renderScreens();
  startPing();
  sendMediaState();
  if (urok.local.audio || urok.local.video) {
    enqueuePublish(async () => {
      createPublisher();
      await negotiatePublisher();
    });
  }
}

function onSelfUpdated(participant) {
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

// ---------------------------------------------------------------- classroom state

function applyHostUi() {
  const host = urok.isHost;
  $('toggle-rights').hidden = !host;
  $('toggle-breakout').hidden = !host;
  if (!host && urok.panel === 'breakout') openPanel(null);
  $('leave').title = i18n.t(host ? 'call.leave_title_host' : 'call.leave_title');
  if (!host && urok.panel === 'rights') openPanel(null);
  if (!host && recordingUi) recordingUi.closeDialog();
  if (recordingUi) recordingUi.render();
}

function renderHands() {
  for (const [id, tile] of urok.tiles) tile.setHand(urok.hands.indexOf(id));
  const raised = Boolean(urok.self) && urok.hands.includes(urok.self.id);
  const button = $('toggle-hand');
  button.setAttribute('aria-pressed', String(raised));
  button.classList.toggle('ctrl-active', raised);
  const label = raised ? 'call.lower_hand' : 'call.raise_hand';
  const text = button.querySelector('.ctrl-label');
  text.dataset.i18n = label;
  text.textContent = i18n.t(label);
  button.title = i18n.t(label);
  renderPeople();
}

const waitingToasts = new Map(); // participant id -> the "… is waiting [Admit]" toast

function onWaitingList(list) {
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

function renderWaiting() {
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

function onNudged(msg) {
  const name = (msg.by && msg.by.name) || i18n.t('call.host');
  urok.nudges.push({ by: msg.by || null, at: Date.now() });
  banner(i18n.t('call.nudged', { name }), { kind: 'nudge', key: 'nudge', iconName: 'bell', timeoutMs: 12000 });
  urok.beeped = beep();
  const tile = urok.self && urok.tiles.get(urok.self.id);
  if (tile) tile.flash();
  document.title = `🔔 ${i18n.t('app.page_title')}`;
  setTimeout(() => { document.title = i18n.t('app.page_title'); }, 8000);
}

function onMuted(msg) {
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

function onCallSettings(msg) {
  const before = urok.permissions;
  urok.settings = msg.settings || urok.settings;
  urok.permissions = { ...DEFAULT_PERMISSIONS, ...(msg.permissions || {}) };
  rights.render(urok.settings);
  if (urok.state !== 'in-call') return;
  if (!urok.isHost) {
    for (const right of RIGHTS) {
      if (Boolean(before[right]) === Boolean(urok.permissions[right])) continue;
      const text = i18n.t(`call.right_${urok.permissions[right] ? 'granted' : 'revoked'}_${right}`);
      urok.notices.push({ right, text });
      toast(text, urok.permissions[right] ? 'info' : 'warning', { timeoutMs: 7000 });
    }
  }
  urok.chatView.setPermitted(urok.permissions.chat !== false);
  enforcePermissions();
}

/** Switch off whatever the server does not (or no longer) let us have on. */
function enforcePermissions() {
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

// ---------------------------------------------------------------- breakout rooms

let breakoutTimer = null;
let helpSeen = new Set(); // hosts: rooms whose call for help was already announced
const helpToasts = new Map(); // room id -> its "… зовёт организатора" toast
let helpAsked = null; // the room we called the host from (until the state says so)

/** The room we are in now (null: the main room, or rooms are closed). */
function currentRoom() {
  return urok.breakout && urok.breakout.opened ? urok.room || null : null;
}

/**
 * Where someone is now. Ourselves: the `room` of the latest breakout message;
 * everyone else: the assignments (by user id), where the server also puts
 * hosts who visit a room.
 */
function roomOfParticipant(p) {
  const state = urok.breakout;
  if (!state || !state.opened || !p) return null;
  if (urok.self && p.id === urok.self.id) return urok.room || null;
  const assignments = state.assignments || {};
  return (p.user_id && assignments[p.user_id]) || null;
}

/** Where someone is meant to go (the plan while the rooms are closed; where they are while open). */
function plannedRoomOf(p) {
  const state = urok.breakout;
  if (!state) return null;
  if (state.opened) return roomOfParticipant(p);
  const assignments = state.assignments || {};
  return (p.user_id && assignments[p.user_id]) || null;
}

/** Only the people in our room are in the grid (the server only sends us their media). */
function placeTile(tile) {
  const visible = tile.self || roomOfParticipant(tile.participant) === currentRoom();
  if (tile.el.hidden === !visible) return false;
  tile.el.hidden = !visible;
  return true;
}

function onBreakout(msg) {
  const state = msg.state && typeof msg.state === 'object' ? msg.state : null;
  const before = urok.breakout;
  const wasOpen = Boolean(before && before.opened);
  const wasRoom = currentRoom();
  urok.breakout = state;
  urok.room = state && state.opened && typeof msg.room === 'string' && msg.room ? msg.room : null;
  const nowOpen = Boolean(state && state.opened);
  const room = currentRoom();
  if (urok.chatView) urok.chatView.setRoom(room || '');
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
function applyBreakout() {
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
  if (recordingUi) recordingUi.render();
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
  if (breakoutPanel && urok.panel === 'breakout') breakoutPanel.tick();
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

function renderBreakoutPanel() {
  if (!breakoutPanel || !urok.self || urok.state !== 'in-call' || urok.panel !== 'breakout') return;
  const everyone = [];
  const selfTile = urok.tiles.get(urok.self.id);
  for (const [id, tile] of urok.tiles) {
    const p = id === urok.self.id ? { ...urok.self, ...(selfTile ? selfTile.participant : {}) } : tile.participant;
    everyone.push({
      id,
      user_id: p.user_id,
      name: p.name,
      role: p.role,
      host: Boolean(p.host),
      cohost: Boolean(p.cohost),
      self: id === urok.self.id,
      room: plannedRoomOf(p),
    });
  }
  breakoutPanel.render({ state: urok.breakout, room: currentRoom(), people: everyone });
}

// ---------------------------------------------------------------- host actions

function sendAction(message) {
  if (!urok.ws) return null;
  return urok.ws.sendWithId(message);
}

function nameOf(id) {
  const tile = urok.tiles.get(id);
  if (tile) return tile.participant.name;
  const waiting = urok.waiting.find((p) => p.id === id);
  return waiting ? waiting.name : '';
}

async function hostAction(action, id) {
  switch (action) {
    case 'admit': sendAction({ type: 'admit', participant_id: id }); break;
    case 'deny': sendAction({ type: 'deny', participant_id: id }); break;
    case 'admit-all': sendAction({ type: 'admit_all' }); break;
    case 'deny-all': sendAction({ type: 'deny_all' }); break;
    case 'lower-hand': sendAction({ type: 'lower_hand', participant_id: id }); break;
    case 'lower-all-hands': sendAction({ type: 'lower_all_hands' }); break;
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

// ---------------------------------------------------------------- panels

function openPanel(name) {
  urok.panel = name;
  $('side-panel').hidden = !name;
  for (const panel of ['chat', 'breakout', 'people', 'rights']) {
    $(`panel-${panel}`).hidden = panel !== name;
    $(`toggle-${panel}`).setAttribute('aria-pressed', String(panel === name));
    $(`toggle-${panel}`).classList.toggle('ctrl-active', panel === name);
  }
  if (urok.chatView) urok.chatView.setOpen(name === 'chat');
  if (name === 'people') renderPeople();
  if (name === 'breakout') renderBreakoutPanel();
  relayout();
}

function togglePanel(name) {
  openPanel(urok.panel === name ? null : name);
}

function renderPeople() {
  if (!people || urok.state !== 'in-call' || !urok.self) return;
  const selfTile = urok.tiles.get(urok.self.id);
  const self = { ...urok.self, ...(selfTile ? selfTile.participant : {}), screen: Boolean(urok.local.screen) };
  const participants = [];
  for (const [id, tile] of urok.tiles) if (id !== urok.self.id) participants.push({ ...tile.participant });
  const opened = Boolean(urok.breakout && urok.breakout.opened);
  people.render({
    self,
    participants,
    hands: urok.hands,
    waiting: urok.isHost ? urok.waiting : [],
    isHost: urok.isHost,
    breakout: opened
      ? {
        here: currentRoom(),
        roomOf: (p) => roomOfParticipant(p),
        roomName: (id) => roomName(urok.breakout, id),
      }
      : null,
  });
  renderBreakoutPanel();
}

// ---------------------------------------------------------------- recordings

/** Guests may never open recordings; everybody else with a school profile may (by role). */
function canWatchRecordings() {
  const role = (urok.self && urok.self.role) || urok.claims.role || '';
  return role !== 'guest';
}

let accessQuery = Promise.resolve();

/**
 * Ask the server which of the chat's recordings this person may watch
 * (GET /call/{id}/recordings lists exactly those), so a card for a recording
 * not open to one's role says so instead of linking to a 403.
 */
function refreshRecordingAccess() {
  accessQuery = accessQuery.then(async () => {
    if (!urok.chatView || !token || !canWatchRecordings()) return;
    const ids = urok.chatView.recordingIds();
    if (!ids.length) return;
    let response;
    try {
      response = await fetch(`/call/${encodeURIComponent(lessonId)}/recordings`, {
        headers: { Authorization: `Bearer ${token}` },
        cache: 'no-store',
      });
    } catch {
      return; // Offline: the links stay; the server still checks.
    }
    let mine = null;
    if (response.ok) {
      const body = await response.json().catch(() => ({}));
      if (body && Array.isArray(body.recordings)) mine = new Set(body.recordings.map((r) => r.id));
    } else if (response.status === 403) {
      mine = new Set();
    }
    if (!mine || !urok.chatView) return;
    urok.chatView.setRecordingAccess(Object.fromEntries(ids.map((id) => [id, mine.has(id)])));
  }).catch((error) => console.warn('urok: recordings list failed', error));
  return accessQuery;
}

/** A recording is finished: its card is in the chat; say so when the chat is closed. */
function onRecordingReady(message) {
  refreshRecordingAccess();
  if (recordingUi) recordingUi.finished();
  if (urok.state !== 'in-call' || urok.panel === 'chat') return;
  const title = (message.data && message.data.title) || '';
  toast(i18n.t('recording.toast_ready', { title }), 'info', {
    timeoutMs: 10000,
    action: { label: i18n.t('recording.open_chat'), run: () => openPanel('chat') },
  });
}

function renderChatBadge() {
  const badge = $('chat-badge');
  const unread = urok.chatView ? urok.chatView.unread : 0;
  badge.hidden = !unread;
  badge.textContent = unread > 99 ? '99+' : String(unread);
  badge.title = i18n.t('chat.unread', { count: unread });
}

// ---------------------------------------------------------------- publishing

function isOn(kind) {
  const track = urok.local[kind];
  return Boolean(track && track.enabled && track.readyState === 'live');
}

function enqueuePublish(step) {
  publisherQueue = publisherQueue.then(step).catch((error) => {
    if (urok.state !== 'in-call') return;
    console.error('urok: publish failed', error);
    urok.errors.push({ code: error.code || 'publish', message: String(error.message || error) });
    toast(error.code ? errorText(error.code, error.message) : i18n.t('call.media_failed'), 'error');
  });
  return publisherQueue;
}

function createPublisher() {
  const pc = new RTCPeerConnection({ iceServers: urok.iceServers });
  urok.pcs.publisher = pc;
  urok.published = [];
  pc.addEventListener('connectionstatechange', () => {
    if (pc.connectionState === 'failed' && urok.pcs.publisher === pc) {
      toast(i18n.t('call.media_failed'), 'error');
    }
  });
  for (const [kind, source] of [['audio', 'microphone'], ['video', 'camera'], ['screen', 'screen']]) {
    if (urok.local[kind]) addPublishedTrack(urok.local[kind], source);
  }
}

function addPublishedTrack(track, source) {
  if (source !== 'screen' && !urok.local.stream) urok.local.stream = new MediaStream();
  const stream = source === 'screen' ? new MediaStream([track]) : urok.local.stream;
  const transceiver = urok.pcs.publisher.addTransceiver(track, {
    direction: 'sendonly',
    streams: [stream],
  });
  urok.published.push({ transceiver, source });
}

async function negotiatePublisher() {
  const pc = urok.pcs.publisher;
  const sig = urok.ws;
  await pc.setLocalDescription(await pc.createOffer());
  await iceGatheringComplete(pc);
  if (urok.pcs.publisher !== pc) return;
  // Every sending m-section, named by its source (a stopped screen share keeps its
  // m-section). An idle, already negotiated screen m-section is left out while
  // sharing is not permitted: the server refuses any offer naming a screen then,
  // and it knows that m-section's source already.
  const tracks = urok.published
    .filter(({ transceiver }) => transceiver.mid !== null && transceiver.direction !== 'inactive')
    .filter(({ transceiver, source }) => !(source === 'screen' && !allowed('screen')
      && !transceiver.sender.track && transceiver.currentDirection))
    .map(({ transceiver, source }) => ({ mid: transceiver.mid, source }));
  let answer;
  try {
    answer = await sig.request(
      { type: 'publish', sdp: pc.localDescription.sdp, tracks },
      ['publish_answer'],
    );
  } catch (error) {
    // The server applied nothing of this offer: go back to the last agreed state.
    if (urok.pcs.publisher === pc && pc.signalingState === 'have-local-offer') {
      await pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
    }
    throw error;
  }
  if (urok.pcs.publisher !== pc) return;
  await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
}

/** Get a microphone or camera track mid-call (joined without one, or it was lost). */
async function acquireTrack(kind) {
  const result = await capture({
    audio: kind === 'audio',
    video: kind === 'video',
    audioId: urok.prefs.audioId,
    videoId: urok.prefs.videoId,
  });
  const track = result.stream && result.stream.getTracks()[0];
  if (!track) {
    const problem = result[`${kind}Problem`];
    const name = kind === 'audio' ? 'mic' : 'camera';
    toast(i18n.t(problem === 'denied' ? `prejoin.${name}_denied` : `prejoin.no_${name}`), 'warning');
    return;
  }
  if (urok.state !== 'in-call') {
    track.stop();
    return;
  }
  if (!urok.local.stream) urok.local.stream = new MediaStream();
  urok.local.stream.addTrack(track);
  urok.local[kind] = track;
  if (kind === 'video') urok.tiles.get(urok.self.id).setTrack('video', track);
  await enqueuePublish(async () => {
    if (!urok.pcs.publisher) {
      createPublisher();
    } else {
      addPublishedTrack(track, kind === 'audio' ? 'microphone' : 'camera');
    }
    await negotiatePublisher();
  });
}

function allowed(kind) {
  if (urok.isHost) return true;
  return Boolean(urok.permissions[kind === 'audio' ? 'unmute' : kind]);
}

async function toggle(kind) {
  const track = urok.local[kind];
  const turningOn = !isOn(kind);
  if (turningOn && !allowed(kind)) {
    toast(i18n.t(kind === 'audio' ? 'call.mic_not_permitted' : 'call.camera_not_permitted'), 'warning');
    updateControls();
    return;
  }
  if (!track || track.readyState !== 'live') {
    await acquireTrack(kind);
  } else {
    track.enabled = !track.enabled;
  }
  if (turningOn) {
    const key = `muted-${kind}`;
    for (const old of document.querySelectorAll(`#banners [data-key="${key}"]`)) old.remove();
  }
  updateControls();
  sendMediaState();
}

function sendMediaState() {
  const state = {
    audio: isOn('audio'),
    video: isOn('video'),
    screen: Boolean(urok.local.screen && urok.local.screen.readyState === 'live'),
  };
  if (urok.ws && urok.state === 'in-call') {
    const id = urok.ws.sendWithId({ type: 'media_state', ...state });
    if (id) {
      mediaStateRefs.add(id);
      if (mediaStateRefs.size > 20) mediaStateRefs.delete(mediaStateRefs.values().next().value);
    }
  }
  if (urok.self) {
    Object.assign(urok.self, state);
    const tile = urok.tiles.get(urok.self.id);
    if (tile) tile.update(state);
  }
  renderPeople();
}

function updateControls() {
  for (const [kind, id, name, iconOn, iconOff] of [
    ['audio', 'toggle-mic', 'mic', 'mic', 'mic-off'],
    ['video', 'toggle-camera', 'camera', 'camera', 'camera-off'],
  ]) {
    const on = isOn(kind);
    const locked = !on && !allowed(kind);
    const button = $(id);
    button.setAttribute('aria-pressed', String(on));
    button.classList.toggle('ctrl-off', !on);
    button.classList.toggle('ctrl-locked', locked);
    button.disabled = locked;
    button.dataset.permitted = String(allowed(kind));
    button.title = locked
      ? i18n.t(`call.${name}_not_permitted`)
      : i18n.t(on ? `call.${name}_turn_off` : `call.${name}_turn_on`);
    setIcon(button.querySelector('.icon-slot'), on ? iconOn : iconOff);
  }
  const sharing = Boolean(urok.local.screen);
  const screenButton = $('toggle-screen');
  const screenAllowed = allowed('screen') && screenShareSupported();
  screenButton.setAttribute('aria-pressed', String(sharing));
  screenButton.classList.toggle('ctrl-active', sharing);
  screenButton.classList.toggle('ctrl-locked', !sharing && !screenAllowed);
  screenButton.disabled = !sharing && !screenAllowed;
  screenButton.dataset.permitted = String(allowed('screen'));
  if (sharing) screenButton.title = i18n.t('call.screen_stop');
  else if (!screenShareSupported()) screenButton.title = i18n.t('call.screen_unsupported');
  else if (!screenAllowed) screenButton.title = i18n.t('call.screen_not_permitted');
  else screenButton.title = i18n.t('call.screen_start');
  setIcon(screenButton.querySelector('.icon-slot'), sharing ? 'screen-off' : 'screen');
}

// ---------------------------------------------------------------- screen sharing

function screenShareSupported() {
  return Boolean(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
}

async function toggleScreenShare() {
  if (urok.local.screen) stopScreenShare();
  else await startScreenShare();
}

async function startScreenShare() {
  if (!allowed('screen')) {
    toast(i18n.t('call.screen_not_permitted'), 'warning');
    return;
  }
  if (!screenShareSupported()) {
    toast(i18n.t('call.screen_unsupported'), 'warning');
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({
      video: { frameRate: { ideal: 15, max: 30 } },
      audio: false,
    });
  } catch (error) {
    if (!error || error.name !== 'NotAllowedError') {
      console.warn('urok: getDisplayMedia failed', error);
      toast(i18n.t('call.screen_failed'), 'error');
    }
    return;
  }
  const track = stream.getVideoTracks()[0];
  if (!track || urok.state !== 'in-call' || !allowed('screen')) {
    stopStream(stream);
    return;
  }
  if ('contentHint' in track) track.contentHint = 'detail';
  urok.local.screen = track;
  track.addEventListener('ended', () => {
    // The browser's own "stop sharing" button.
    if (urok.local.screen === track) stopScreenShare();
  });
  updateControls();
  renderScreens();
  let published = false;
  await enqueuePublish(async () => {
    if (urok.local.screen !== track) return;
    if (!urok.pcs.publisher) {
      createPublisher();
      await negotiatePublisher();
    } else {
      const entry = urok.published.find((p) => p.source === 'screen');
      if (entry) {
        await entry.transceiver.sender.replaceTrack(track);
      } else {
        addPublishedTrack(track, 'screen');
        await negotiatePublisher();
      }
    }
    published = true;
  });
  if (!published) {
    // Refused (not permitted any more) or failed: do not pretend to share.
    const entry = urok.published.find((p) => p.source === 'screen');
    if (entry && entry.transceiver.mid === null) {
      urok.published = urok.published.filter((p) => p !== entry);
      entry.transceiver.sender.replaceTrack(null).catch(() => {});
      entry.transceiver.direction = 'inactive';
    }
    if (urok.local.screen === track) stopScreenShare({ announce: false });
    return;
  }
  if (urok.local.screen === track) sendMediaState();
}

/** Stop sharing; the screen m-section stays for the next time (replaceTrack). */
function stopScreenShare({ announce = true } = {}) {
  const track = urok.local.screen;
  urok.local.screen = null;
  if (track) track.stop();
  const entry = urok.published.find((p) => p.source === 'screen');
  if (entry) entry.transceiver.sender.replaceTrack(null).catch(() => {});
  updateControls();
  renderScreens();
  if (announce) sendMediaState();
}

const screenTiles = new Map(); // participant id -> ScreenTile

/** Big screen + filmstrip while anyone shares; the grid otherwise. */
function renderScreens() {
  if (urok.state !== 'in-call' || !urok.self) return;
  const sharing = new Map(); // id -> track
  if (urok.local.screen && urok.local.screen.readyState === 'live') sharing.set(urok.self.id, urok.local.screen);
  for (const [id, track] of urok.remoteScreens) {
    const tile = urok.tiles.get(id);
    if (tile && tile.participant.screen && track) sharing.set(id, track);
  }
  urok.screenOrder = urok.screenOrder.filter((id) => sharing.has(id));
  for (const id of sharing.keys()) if (!urok.screenOrder.includes(id)) urok.screenOrder.push(id);
  for (const [id, tile] of screenTiles) {
    if (!sharing.has(id)) {
      tile.remove();
      screenTiles.delete(id);
    }
  }
  const main = urok.pinnedScreen && sharing.has(urok.pinnedScreen)
    ? urok.pinnedScreen
    : urok.screenOrder[urok.screenOrder.length - 1];
  for (const [id, track] of sharing) {
    let tile = screenTiles.get(id);
    const name = id === urok.self.id ? urok.self.name : urok.tiles.get(id).participant.name;
    if (!tile) {
      tile = new ScreenTile(id, name, { self: id === urok.self.id });
      tile.el.addEventListener('click', () => {
        urok.pinnedScreen = id;
        renderScreens();
      });
      screenTiles.set(id, tile);
    }
    tile.setName(name);
    tile.setTrack(track);
    if (id === main) {
      if (tile.el.parentElement !== $('screen-stage')) $('screen-stage').replaceChildren(tile.el);
    } else if (tile.el.parentElement !== $('grid')) {
      $('grid').prepend(tile.el);
    }
  }
  const presenting = sharing.size > 0;
  $('stage').classList.toggle('presenting', presenting);
  $('screen-stage').hidden = !presenting;
  if (!presenting) $('screen-stage').replaceChildren();
  relayout();
}

// ---------------------------------------------------------------- subscribing

async function onSubscribeOffer(sig, msg) {
  if (urok.ws !== sig) return;
  let pc = urok.pcs.subscriber;
  if (!pc) {
    pc = new RTCPeerConnection({ iceServers: urok.iceServers });
    urok.pcs.subscriber = pc;
    pc.addEventListener('track', () => applyTracks());
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed' && urok.pcs.subscriber === pc) {
        toast(i18n.t('call.media_failed'), 'error');
      }
    });
  }
  await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
  urok.tracks = msg.tracks && typeof msg.tracks === 'object' ? msg.tracks : {};
  applyTracks();
  await pc.setLocalDescription(await pc.createAnswer());
  await iceGatheringComplete(pc);
  if (urok.ws !== sig || urok.pcs.subscriber !== pc) return;
  sig.send({ type: 'subscribe_answer', sdp: pc.localDescription.sdp });
}

/** Give each participant's tile the receiver tracks the latest offer says are theirs. */
function applyTracks() {
  const pc = urok.pcs.subscriber;
  if (!pc) return;
  const wanted = new Map();
  const screens = new Map();
  for (const transceiver of pc.getTransceivers()) {
    const info = transceiver.mid !== null ? urok.tracks[transceiver.mid] : undefined;
    if (!info || !info.participant_id) continue;
    const entry = wanted.get(info.participant_id) || { audio: null, video: null };
    const track = transceiver.receiver.track;
    if (info.kind === 'audio') {
      entry.audio = entry.audio || track;
    } else if (info.source === 'screen') {
      screens.set(info.participant_id, track);
    } else {
      entry.video = entry.video || track;
    }
    wanted.set(info.participant_id, entry);
  }
  for (const id of wanted.keys()) {
    if (!urok.tiles.has(id) && (!urok.self || id !== urok.self.id)) upsertParticipant({ id, name: '' });
  }
  for (const [id, tile] of urok.tiles) {
    if (tile.self) continue;
    const entry = wanted.get(id) || { audio: null, video: null };
    tile.setTrack('audio', entry.audio);
    tile.setTrack('video', entry.video);
  }
  urok.remoteScreens = screens;
  renderScreens();
}

// ---------------------------------------------------------------- tiles and layout

function upsertParticipant(participant) {
  let tile = urok.tiles.get(participant.id);
  if (tile) {
    tile.update(participant);
    placeTile(tile);
  } else {
    tile = new Tile(participant);
    urok.tiles.set(participant.id, tile);
    $('grid').append(tile.el);
    tile.setHand(urok.hands.indexOf(participant.id));
    placeTile(tile);
    relayout();
  }
  return tile;
}

function relayout() {
  const count = urok.tiles.size;
  $('participant-count').textContent = i18n.t('call.participants', { count });
  let here = 0;
  for (const tile of urok.tiles.values()) if (!tile.el.hidden) here += 1;
  const alone = $('alone-hint');
  alone.hidden = here > 1 || urok.state !== 'in-call';
  const aloneKey = urok.breakout && urok.breakout.opened ? 'breakout.alone_in_room' : 'call.alone';
  if (alone.dataset.i18n !== aloneKey) {
    alone.dataset.i18n = aloneKey;
    alone.textContent = i18n.t(aloneKey);
  }
  layoutGrid($('grid'), $('stage'), { filmstrip: $('stage').classList.contains('presenting') });
}

// ---------------------------------------------------------------- leaving

function teardown() {
  clearInterval(pingTimer);
  clearTimeout(infoTimer);
  clearTimeout(endTimer);
  pingTimer = null;
  closeDialog();
  if (recordingUi) recordingUi.reset();
  const sig = urok.ws;
  urok.ws = null;
  if (sig) {
    sig.onclose = null;
    sig.close();
  }
  for (const key of ['publisher', 'subscriber']) {
    if (urok.pcs[key]) urok.pcs[key].close();
    urok.pcs[key] = null;
  }
  if (urok.local.screen) urok.local.screen.stop();
  urok.local.screen = null;
  urok.published = [];
  urok.tracks = {};
  urok.remoteScreens = new Map();
  urok.screenOrder = [];
  urok.pinnedScreen = null;
  urok.hands = [];
  urok.waiting = [];
  urok.breakout = null;
  urok.room = null;
  helpSeen = new Set();
  for (const el of helpToasts.values()) el.remove();
  helpToasts.clear();
  clearInterval(breakoutTimer);
  breakoutTimer = null;
  $('breakout-bar').hidden = true;
  $('breakout-badge').hidden = true;
  if (urok.chatView) urok.chatView.setRoom('');
  subscriberQueue = Promise.resolve();
  publisherQueue = Promise.resolve();
  for (const tile of urok.tiles.values()) tile.remove();
  urok.tiles.clear();
  for (const tile of screenTiles.values()) tile.remove();
  screenTiles.clear();
  $('stage').classList.remove('presenting');
  $('screen-stage').hidden = true;
  $('sound-blocked').hidden = true;
  $('waiting-preview').srcObject = null;
  clearBanners();
  openPanel(null);
  stopPreview();
}

function leave() {
  if (urok.ws) urok.ws.send({ type: 'leave' });
  teardown();
  setState('left');
  showMessage({
    title: i18n.t('left.title'),
    text: i18n.t('left.text'),
    iconName: 'check',
    action: { label: i18n.t('left.rejoin'), run: () => startPrejoin() },
  });
}

let endTimer = null;

/** Hosts choose: leave (the lesson goes on) or end it for everyone. */
async function onLeaveClicked() {
  if (!urok.isHost) {
    leave();
    return;
  }
  const choice = await ask({
    title: i18n.t('end.title'),
    text: i18n.t('end.text'),
    buttons: [
      { value: 'cancel', label: i18n.t('common.cancel'), kind: 'secondary' },
      { value: 'leave', label: i18n.t('end.leave'), kind: 'secondary' },
      { value: 'end', label: i18n.t('end.end_for_all'), kind: 'danger' },
    ],
  });
  if (choice === 'leave') {
    leave();
  } else if (choice === 'end' && urok.ws) {
    sendAction({ type: 'end_call' });
    // call_ended follows; should it not, do not leave the host hanging.
    clearTimeout(endTimer);
    endTimer = setTimeout(() => {
      if (urok.state !== 'in-call') return;
      teardown();
      setState('ended');
      showMessage({ title: i18n.t('ended.title'), text: i18n.t('ended.text_by_you'), iconName: 'check' });
    }, 8000);
  }
}

// ---------------------------------------------------------------- start

let people = null;
let rights = null;
let breakoutPanel = null;
let recordingUi = null;

function wireControls() {
  $('join-video').addEventListener('click', () => join(true));
  $('join-audio').addEventListener('click', () => join(false));
  $('camera-select').addEventListener('change', (event) => {
    urok.prefs.videoId = event.target.value;
    startPreview();
  });
  $('mic-select').addEventListener('change', (event) => {
    urok.prefs.audioId = event.target.value;
    startPreview();
  });
  $('toggle-mic').addEventListener('click', () => toggle('audio'));
  $('toggle-camera').addEventListener('click', () => toggle('video'));
  $('toggle-screen').addEventListener('click', () => toggleScreenShare());
  $('toggle-hand').addEventListener('click', () => {
    const raised = Boolean(urok.self) && urok.hands.includes(urok.self.id);
    sendAction({ type: 'hand', raised: !raised });
  });
  $('toggle-chat').addEventListener('click', () => togglePanel('chat'));
  $('toggle-breakout').addEventListener('click', () => togglePanel('breakout'));
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
  $('toggle-people').addEventListener('click', () => togglePanel('people'));
  $('toggle-rights').addEventListener('click', () => togglePanel('rights'));
  $('waiting-pill').addEventListener('click', () => openPanel('people'));
  for (const close of document.querySelectorAll('.panel-close')) {
    close.addEventListener('click', () => openPanel(null));
  }
  $('leave').addEventListener('click', onLeaveClicked);
  $('waiting-leave').addEventListener('click', leave);
  $('enable-sound').addEventListener('click', () => {
    $('sound-blocked').hidden = true;
    for (const tile of urok.tiles.values()) tile.playAudio();
  });
  document.addEventListener('urok:sound-blocked', () => {
    if (urok.state === 'in-call') $('sound-blocked').hidden = false;
  });
  new ResizeObserver(() => relayout()).observe($('stage'));
  window.addEventListener('pagehide', () => {
    if (urok.ws) urok.ws.send({ type: 'leave' });
  });
  urok.chatView = new Chat({
    send: (text) => sendAction({ type: 'chat_send', text }),
    selfId: () => (urok.self ? urok.self.id : ''),
    onChange: renderChatBadge,
    recordings: {
      url: (path) => withToken(path, token),
      canWatch: () => canWatchRecordings(),
    },
  });
  recordingUi = new RecordingControl({
    send: (message) => sendAction(message),
    isHost: () => urok.state === 'in-call' && urok.isHost,
    selfId: () => (urok.self ? urok.self.id : ''),
    call: () => urok.call || (urok.info && urok.info.lesson) || null,
    inBreakoutRoom: () => Boolean(currentRoom()),
  });
  people = new People($('people-body'), { onAction: (action, id) => hostAction(action, id) });
  breakoutPanel = new BreakoutPanel($('breakout-body'), {
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
  rights = new Rights($('rights-body'), {
    onPermission: (role, right, value) => {
      sendAction({ type: 'set_permissions', role, permissions: { [right]: value } });
    },
    onSetting: (name, value) => sendAction({ type: 'set_call_settings', [name]: value }),
  });
}

async function main() {
  await i18n.setLanguage(langOverride || 'ru');
  i18n.apply();
  fillIcons();
  wireControls();
  token = readToken();
  if (!token || !lessonId) {
    showFatal('no_token');
    return;
  }
  urok.claims = decodeClaims(token);
  await startPrejoin();
}

main().catch((error) => {
  console.error('urok: failed to start', error);
  urok.errors.push({ code: 'startup', message: String(error) });
  $('screen-loading').querySelector('p').textContent = String(error);
});
