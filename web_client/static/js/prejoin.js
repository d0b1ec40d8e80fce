// The pre-join screen: the lesson's title and time, whether it can be joined
// yet (asked again every few seconds until it can), the camera preview with
// a microphone meter, the device choice and the two join buttons; its toggles,
// speakers and the host's join rules are prejoinmedia.js's.

import * as i18n from './i18n.js';
import {
  capture, levelMeter, listDevices, mediaSupported, stopStream,
} from './media.js';
import {
  formatWhen, setState, show, showFatal,
} from './page.js';
import {
  applyChoices, applyJoinRules, fillSpeakers, wirePrejoinMedia,
} from './prejoinmedia.js';
import { SignallingError } from './signalling.js';
import { $, lessonId, urok } from './state.js';
import { joinToken } from './token.js';

const INFO_POLL_MS = 5000;

let stopMeter = () => {};
let infoTimer = null;

async function fetchInfo() {
  let response;
  try {
    response = await fetch(`/call/${encodeURIComponent(lessonId)}/info`, {
      headers: { Authorization: `Bearer ${joinToken()}` },
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
    showFatal('lesson_ended'); // the end screen (ended.js), not an error
    return;
  }
  urok.canJoin = Boolean(urok.info.can_join);
  $('not-started').hidden = urok.canJoin;
  renderLessonHeader();
  applyJoinRules(urok.info);
  updateJoinButtons();
  if (!urok.canJoin && urok.state === 'prejoin') infoTimer = setTimeout(refreshInfo, INFO_POLL_MS);
}

/** Joining, or leaving the page: stop asking whether the lesson has started. */
export function stopInfoPolling() {
  clearTimeout(infoTimer);
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

/** Joining: the meter goes, the microphone and camera stay (they are published). */
export function stopMicMeter() {
  stopMeter();
}

export function stopPreview() {
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
    urok.prejoin.level = level;
  });
  applyChoices();
  setNotice(mediaNotice(urok.local.problems));
  await fillDeviceSelects();
  await fillSpeakers();
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

export function updateJoinButtons() {
  const ready = urok.canJoin && !urok.joining && urok.previewReady;
  const { audio, video } = urok.local;
  $('join-video').disabled = !ready || !video;
  $('join-audio').disabled = !ready;
  const label = audio ? 'prejoin.join_audio' : 'prejoin.join_without';
  $('join-audio-label').dataset.i18n = label;
  $('join-audio-label').textContent = i18n.t(urok.joining ? 'prejoin.joining' : label);
}

/** Show the pre-join screen (whatever was before is already torn down: session.startPrejoin). */
export async function openPrejoin() {
  setState('prejoin');
  urok.joining = false;
  urok.call = null;
  show('prejoin');
  renderLessonHeader();
  await refreshInfo();
  if (urok.state === 'prejoin') await startPreview();
}

/** Another camera or microphone chosen: a new preview with it. */
export function wirePrejoin() {
  wirePrejoinMedia();
  $('camera-select').addEventListener('change', (event) => {
    urok.prefs.videoId = event.target.value;
    startPreview();
  });
  $('mic-select').addEventListener('change', (event) => {
    urok.prefs.audioId = event.target.value;
    startPreview();
  });
}
