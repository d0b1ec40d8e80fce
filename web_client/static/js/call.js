// The call page: pre-join screen, joining over /ws, the publisher and
// subscriber peer connections (docs/protocol.md) and the in-call screen.

import * as i18n from './i18n.js';
import { fillIcons, setIcon } from './icons.js';
import {
  capture, iceGatheringComplete, levelMeter, listDevices, mediaSupported, stopStream,
} from './media.js';
import { Signalling, SignallingError } from './signalling.js';
import { Tile, layoutGrid } from './tiles.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const langOverride = params.get('lang');
const lessonId = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');
const PING_INTERVAL_MS = 25000;
const INFO_POLL_MS = 5000;

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
  local: { stream: null, audio: null, video: null, problems: {} },
  prefs: { audioId: '', videoId: '' },
  errors: [],
  get participants() {
    const out = {};
    for (const [id, tile] of this.tiles) out[id] = { ...tile.participant };
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
  for (const name of ['loading', 'prejoin', 'call', 'message']) {
    $(`screen-${name}`).hidden = name !== screen;
  }
}

function errorText(code, message = '') {
  const key = `errors.${code}`;
  return i18n.has(key) ? i18n.t(key) : i18n.t('errors.generic', { message: message || code });
}

function toast(text, kind = 'info') {
  const el = document.createElement('div');
  el.className = `toast toast-${kind}`;
  el.textContent = text;
  $('toasts').append(el);
  setTimeout(() => el.classList.add('toast-out'), 4500);
  setTimeout(() => el.remove(), 5000);
}

function showMessage({ title, text, details = '', iconName = 'info', action = null }) {
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
  urok.local = { stream: null, audio: null, video: null, problems: {} };
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
    const joined = await sig.request({ type: 'join', token }, ['joined'], 15000);
    await onJoined(joined);
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

function wireSignalling(sig) {
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
  });
  sig.on('participant_updated', (msg) => {
    if (!msg.participant) return;
    if (urok.self && msg.participant.id === urok.self.id) {
      Object.assign(urok.self, msg.participant);
      const tile = urok.tiles.get(urok.self.id);
      if (tile) tile.update({ host: urok.self.host, name: urok.self.name });
      return;
    }
    upsertParticipant(msg.participant);
  });
  sig.on('participant_left', (msg) => {
    const tile = urok.tiles.get(msg.participant_id);
    if (!tile || tile.self) return;
    tile.remove();
    urok.tiles.delete(msg.participant_id);
    if (tile.participant.name) {
      toast(i18n.t('call.participant_left', { name: tile.participant.name }));
    }
    relayout();
  });
  sig.on('call_ended', (msg) => {
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
      showMessage({ title: i18n.t('ended.title'), text: i18n.t('ended.text'), iconName: 'check' });
    }
  });
  sig.on('error', (msg) => {
    urok.errors.push({ code: msg.code, message: msg.message });
    console.warn('urok: server error', msg.code, msg.message);
    if (urok.state === 'in-call') toast(errorText(msg.code, msg.message), 'error');
  });
  sig.on('pong', () => {});
  sig.on('publish_answer', () => {});
  sig.on('*', (msg) => console.debug('urok: unhandled message', msg.type));
  sig.onclose = () => {
    if (urok.ws !== sig) return;
    if (urok.state === 'in-call') {
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

async function onJoined(joined) {
  urok.self = { ...joined.self };
  urok.call = joined.call || null;
  urok.iceServers = Array.isArray(joined.ice_servers) ? joined.ice_servers : [];
  urok.joining = false;
  if (!langOverride && joined.language && joined.language !== i18n.language()) {
    await i18n.setLanguage(joined.language);
    i18n.apply();
  }
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
  updateControls();
  relayout();
  pingTimer = setInterval(() => urok.ws && urok.ws.send({ type: 'ping' }), PING_INTERVAL_MS);
  sendMediaState();
  if (urok.local.audio || urok.local.video) {
    enqueuePublish(async () => {
      createPublisher();
      await negotiatePublisher();
    });
  }
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
  for (const [kind, source] of [['audio', 'microphone'], ['video', 'camera']]) {
    if (urok.local[kind]) addPublishedTrack(urok.local[kind], source);
  }
}

function addPublishedTrack(track, source) {
  const transceiver = urok.pcs.publisher.addTransceiver(track, {
    direction: 'sendonly',
    streams: [urok.local.stream],
  });
  urok.published.push({ transceiver, source });
}

async function negotiatePublisher() {
  const pc = urok.pcs.publisher;
  const sig = urok.ws;
  await pc.setLocalDescription(await pc.createOffer());
  await iceGatheringComplete(pc);
  if (urok.pcs.publisher !== pc) return;
  const tracks = urok.published.map(({ transceiver, source }) => ({ mid: transceiver.mid, source }));
  const answer = await sig.request(
    { type: 'publish', sdp: pc.localDescription.sdp, tracks },
    ['publish_answer'],
  );
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

async function toggle(kind) {
  const track = urok.local[kind];
  if (!track || track.readyState !== 'live') {
    await acquireTrack(kind);
  } else {
    track.enabled = !track.enabled;
  }
  updateControls();
  sendMediaState();
}

function sendMediaState() {
  const state = { audio: isOn('audio'), video: isOn('video') };
  if (urok.ws) urok.ws.send({ type: 'media_state', ...state });
  if (urok.self) {
    Object.assign(urok.self, state);
    const tile = urok.tiles.get(urok.self.id);
    if (tile) tile.update(state);
  }
}

function updateControls() {
  for (const [kind, id, name, iconOn, iconOff] of [
    ['audio', 'toggle-mic', 'mic', 'mic', 'mic-off'],
    ['video', 'toggle-camera', 'camera', 'camera', 'camera-off'],
  ]) {
    const on = isOn(kind);
    const button = $(id);
    button.setAttribute('aria-pressed', String(on));
    button.classList.toggle('ctrl-off', !on);
    button.title = i18n.t(on ? `call.${name}_turn_off` : `call.${name}_turn_on`);
    setIcon(button.querySelector('.icon-slot'), on ? iconOn : iconOff);
  }
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
  for (const transceiver of pc.getTransceivers()) {
    const info = transceiver.mid !== null ? urok.tracks[transceiver.mid] : undefined;
    if (!info || !info.participant_id) continue;
    const entry = wanted.get(info.participant_id) || { audio: null, video: null };
    const track = transceiver.receiver.track;
    if (info.kind === 'audio') {
      entry.audio = entry.audio || track;
    } else if (info.source === 'camera' || !entry.video) {
      entry.video = track;
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
}

// ---------------------------------------------------------------- tiles and layout

function upsertParticipant(participant) {
  let tile = urok.tiles.get(participant.id);
  if (tile) {
    tile.update(participant);
  } else {
    tile = new Tile(participant);
    urok.tiles.set(participant.id, tile);
    $('grid').append(tile.el);
    relayout();
  }
  return tile;
}

function relayout() {
  const count = urok.tiles.size;
  $('participant-count').textContent = i18n.t('call.participants', { count });
  $('alone-hint').hidden = count > 1 || urok.state !== 'in-call';
  layoutGrid($('grid'), $('stage'));
}

// ---------------------------------------------------------------- leaving

function teardown() {
  clearInterval(pingTimer);
  clearTimeout(infoTimer);
  pingTimer = null;
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
  urok.published = [];
  urok.tracks = {};
  subscriberQueue = Promise.resolve();
  publisherQueue = Promise.resolve();
  for (const tile of urok.tiles.values()) tile.remove();
  urok.tiles.clear();
  $('sound-blocked').hidden = true;
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

// ---------------------------------------------------------------- start

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
  $('leave').addEventListener('click', leave);
  $('enable-sound').addEventListener('click', () => {
    $('sound-blocked').hidden = true;
    for (const tile of urok.tiles.values()) tile.playAudio();
  });
  document.addEventListener('urok:sound-blocked', () => {
    if (urok.state === 'in-call') $('sound-blocked').hidden = false;
  });
  new ResizeObserver(() => layoutGrid($('grid'), $('stage'))).observe($('stage'));
  window.addEventListener('pagehide', () => {
    if (urok.ws) urok.ws.send({ type: 'leave' });
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
