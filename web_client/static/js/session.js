// The call session: joining over /ws (docs/protocol.md "join"), the waiting
// room, entering the call, and every way out of it (leaving, ending it for
// everyone, being denied or removed, the call ending, the connection lost).

import { setLimits as setBreakoutLimits } from './breakout.js';
import { refreshRecordingAccess } from './callchat.js';
import {
  applyHostUi, renderHands, renderWaiting,
} from './classroom.js';
import { routeMessages } from './dispatch.js';
import { showEnded } from './ended.js';
import { resetHands } from './hands.js';
import * as i18n from './i18n.js';
import {
  clearTiles, openPanel, relayout, renderScreens, upsertParticipant,
} from './layout.js';
import {
  errorText, formatWhen, setState, show, showFatal, showMessage,
} from './page.js';
import {
  openPrejoin, stopInfoPolling, stopMicMeter, stopPreview, updateJoinButtons,
} from './prejoin.js';
import {
  createPublisher, enqueuePublish, negotiatePublisher, resetPublisher, sendMediaState,
  updateControls,
} from './publisher.js';
import { resetPolls } from './polls.js';
import { resetQuality } from './quality.js';
import { applyResumed, reconnect, stopReconnecting } from './reconnect.js';
import { applyBreakout, onBreakout, resetRooms } from './rooms.js';
import { Signalling, SignallingError } from './signalling.js';
import { resetMinimise } from './minimise.js';
import { stopWatchingOwnLevel, watchOwnLevel } from './speakers.js';
import { applySpotlight, resetSpotlight } from './spotlight.js';
import {
  $, DEFAULT_PERMISSIONS, isOn, langOverride, lessonId, sendAction, urok, views,
} from './state.js';
import { resetSubscriber } from './subscriber.js';
import { Tile } from './tiles.js';
import { forgetToken, joinToken } from './token.js';
import {
  ask, clearBanners, closeDialog, toast,
} from './ui.js';

// A ping every 5 s; a connection silent for 12 s (no pong, nothing) is taken for
// dead: a link that drops packets may never close the socket by itself.
const PING_INTERVAL_MS = 5000;
const SILENT_MS = 12000;

let pingTimer = null;
let endTimer = null;

/** Back to the pre-join screen, whatever the page showed before (also "retry" and "rejoin"). */
export async function startPrejoin() {
  teardown();
  await openPrejoin();
}

async function join(withVideo) {
  if (urok.joining) return;
  urok.joining = true;
  stopInfoPolling();
  updateJoinButtons();
  stopMicMeter();
  if (!withVideo && urok.local.video) {
    urok.local.stream.removeTrack(urok.local.video);
    urok.local.video.stop();
    urok.local.video = null;
  }
  setState('joining');
  const sig = new Signalling();
  urok.ws = sig;
  routeMessages(sig);
  watchSession(sig);
  try {
    await sig.connect();
    const message = { type: 'join', token: joinToken() };
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
  pingTimer = setInterval(() => {
    const sig = urok.ws;
    if (!sig) return;
    if (Date.now() - sig.lastMessageAt > SILENT_MS) {
      sig.onclose = null;
      sig.close();
      connectionDropped(sig);
      return;
    }
    sig.send({ type: 'ping' });
  }, PING_INTERVAL_MS);
}

/** The waiting room: no media, no chat, until a host admits (joined) or denies us. */
function onWaiting(msg) {
  urok.self = { ...msg.self };
  urok.call = msg.call || null;
  urok.resume = msg.resume || null;
  urok.joining = false;
  setState('waiting');
  show('waiting');
  $('waiting-lesson').textContent = (urok.call && urok.call.title) || '';
  const preview = $('waiting-preview');
  preview.srcObject = urok.local.video ? new MediaStream([urok.local.video]) : null;
  preview.parentElement.classList.toggle('no-video', !urok.local.video);
  startPing();
}

/** The messages that begin or end the session on `sig`. */
function watchSession(sig) {
  sig.on('joined', (msg) => {
    // Admitted from the waiting room: the same connection goes into the call.
    if (urok.ws !== sig || urok.state !== 'waiting') return;
    onJoined(msg).catch((error) => {
      console.error('urok: entering the call failed', error);
      showFatal('generic', String(error));
    });
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
  sig.on('call_ended', (msg) => onCallEnded(msg));
  // The node is stopping and closes the connection next: come back, no error.
  sig.on('restarting', () => { urok.serverRestarting = true; });
  sig.onclose = () => connectionDropped(sig);
}

/** The call's connection `sig` is gone: come back by ourselves (reconnect.js). */
function connectionDropped(sig) {
  if (urok.ws !== sig) return;
  if (urok.state !== 'in-call' && urok.state !== 'waiting') return;
  if (!urok.resume) {
    showLost();
    return;
  }
  clearInterval(pingTimer); // the call screen stays; the resume starts it again
  reconnect({ open: openSignalling, resumed: onResumed, failed: onReconnectFailed });
}

/** A new connection to the server, wired like the first. */
function openSignalling() {
  const sig = new Signalling();
  routeMessages(sig);
  watchSession(sig);
  return sig;
}

/** Coming back did not work: after a server restart that kept no session, join
 * afresh as before, without asking; otherwise say the connection is lost. */
function onReconnectFailed(code) {
  if (code === 'resume_failed' && urok.serverRestarting) {
    rejoinAfterRestart().catch((error) => {
      console.error('urok: joining again after the restart failed', error);
      showLost();
    });
    return;
  }
  showLost();
}

/** The node restarted (docs/protocol.md "restarting"): a new join with the same
 * choice of camera; the pre-join screen shows only for a moment. */
async function rejoinAfterRestart() {
  const withVideo = Boolean(urok.local.video);
  urok.serverRestarting = false;
  await startPrejoin();
  if (urok.state === 'prejoin' && urok.canJoin && urok.previewReady) await join(withVideo);
}

function showLost() {
  teardown();
  setState('lost');
  showMessage({
    title: i18n.t('lost.title'),
    text: i18n.t('lost.text'),
    iconName: 'warning',
    action: { label: i18n.t('left.rejoin'), run: () => startPrejoin() },
  });
}

/** Resumed on `sig`: it is the call's connection now; the state is the server's. */
async function onResumed(sig, msg) {
  const old = urok.ws;
  urok.ws = sig; // first: the messages right behind `resumed` are for this connection
  if (old && old !== sig) {
    old.onclose = null;
    old.close();
  }
  startPing();
  if (msg.state === 'waiting') {
    urok.resume = msg.resume || urok.resume;
    return;
  }
  if (urok.state === 'waiting') {
    await onJoined(msg); // admitted while we were away
    return;
  }
  applyResumed(msg);
  toast(i18n.t('reconnect.back'));
  sendMediaState(); // what we switched while away
  if (urok.republish && urok.pcs.publisher) {
    urok.republish = false;
    enqueuePublish(() => negotiatePublisher());
  }
}

function onCallEnded(msg) {
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
    return;
  }
  if (msg.reason === 'server_shutdown') {
    setState('ended');
    showMessage({ title: i18n.t('ended.title'), text: i18n.t('ended.text_server'), iconName: 'info' });
    return;
  }
  showEnded(msg.reason === 'ended_by_host' && wasHost ? 'ended_by_you' : msg.reason);
}

/** In the call (joined, or admitted from the waiting room): the call screen and our media. */
async function onJoined(joined) {
  urok.self = { ...joined.self };
  urok.call = joined.call || null;
  urok.resume = joined.resume || null;
  urok.iceServers = Array.isArray(joined.ice_servers) ? joined.ice_servers : [];
  urok.joining = false;
  urok.hands = Array.isArray(joined.hands) ? joined.hands : [];
  resetHands();
  urok.settings = joined.settings || null;
  urok.permissions = { ...DEFAULT_PERMISSIONS, ...(joined.permissions || {}) };
  urok.waiting = Array.isArray(joined.waiting) ? joined.waiting : [];
  $('waiting-preview').srcObject = null;
  setBreakoutLimits(joined.limits);
  views.breakoutPanel.build();
  if (!langOverride && joined.language && joined.language !== i18n.language()) {
    await i18n.setLanguage(joined.language);
    i18n.apply();
    views.rights.build();
    views.breakoutPanel.build();
  }
  // What the host does not allow, or has pupils join without, stays off from the start.
  if (joined.self && joined.self.audio === false && urok.local.audio) urok.local.audio.enabled = false;
  if (joined.self && joined.self.video === false && urok.local.video) urok.local.video.enabled = false;
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
  watchOwnLevel();
  for (const participant of joined.participants || []) upsertParticipant(participant);
  views.chat.reset(Array.isArray(joined.chat) ? joined.chat : []);
  for (const message of joined.chat || []) {
    if (Number.isInteger(message.seq)) urok.lastChatSeq = Math.max(urok.lastChatSeq, message.seq);
  }
  views.chat.setPermitted(urok.permissions.chat !== false);
  views.rights.render(urok.settings);
  views.recording.setLive(true);
  views.recording.set(joined.recording || null, { joining: true });
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
  applySpotlight(joined.spotlight || null);
  startPing();
  sendMediaState();
  if (urok.local.audio || urok.local.video) {
    enqueuePublish(async () => {
      createPublisher();
      await negotiatePublisher();
    });
  }
}

/** Close everything of the session: connection, peer connections, media, timers, the call screen. */
function teardown() {
  stopReconnecting();
  urok.resume = null;
  urok.lastChatSeq = 0;
  urok.republish = false;
  clearInterval(pingTimer);
  stopInfoPolling();
  clearTimeout(endTimer);
  pingTimer = null;
  closeDialog();
  if (views.recording) views.recording.reset();
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
  urok.publishLayers = {};
  urok.tracks = {};
  urok.remoteScreens = new Map();
  urok.screenOrder = [];
  urok.pinnedScreen = null;
  urok.hands = [];
  urok.waiting = [];
  urok.breakout = null;
  resetPolls();
  urok.room = null;
  resetRooms();
  resetQuality();
  resetSubscriber();
  resetPublisher();
  stopWatchingOwnLevel();
  resetSpotlight();
  resetMinimise();
  clearTiles();
  $('sound-blocked').hidden = true;
  $('waiting-preview').srcObject = null;
  clearBanners();
  openPanel(null);
  stopPreview();
}

/** Leave the call (the lesson goes on); also the journal's "hangUp" (embedding.js). */
export function leave() {
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
  } else if (choice === 'end') {
    endForEveryone();
  }
}

/** A host ends the lesson for everyone (also the journal's "endLesson", embedding.js). */
export function endForEveryone() {
  if (!urok.ws || !urok.isHost) return false;
  sendAction({ type: 'end_call' });
  // call_ended follows; should it not, do not leave the host hanging.
  clearTimeout(endTimer);
  endTimer = setTimeout(() => {
    if (urok.state !== 'in-call') return;
    teardown();
    showEnded('ended_by_you');
  }, 8000);
  return true;
}

/** The join and leave buttons; closing the tab says goodbye to the server. */
export function wireSession() {
  $('join-video').addEventListener('click', () => join(true));
  $('join-audio').addEventListener('click', () => join(false));
  $('leave').addEventListener('click', onLeaveClicked);
  $('waiting-leave').addEventListener('click', leave);
  window.addEventListener('pagehide', () => {
    if (urok.ws) urok.ws.send({ type: 'leave' });
  });
}
