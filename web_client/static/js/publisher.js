// Publishing our microphone, camera (and screen share's track) on the
// publisher peer connection (docs/protocol.md "publish"): we offer, the
// server answers. Also the microphone / camera / screen buttons and the
// media_state we announce.

import * as i18n from './i18n.js';
import { setIcon } from './icons.js';
import { renderPeople } from './layout.js';
import { watchConnection } from './icerestart.js';
import { capture, iceGatheringComplete, screenShareSupported } from './media.js';
import { errorText } from './page.js';
import { watchOwnLevel } from './speakers.js';
import {
  $, allowed, isOn, urok,
} from './state.js';
import { toast } from './ui.js';

// One negotiation at a time: each step waits for the one before.
let publisherQueue = Promise.resolve();

// Ids of our media_state messages, so that an error answering one is known as ours.
const mediaStateRefs = new Set();

export function enqueuePublish(step) {
  publisherQueue = publisherQueue.then(step).catch((error) => {
    if (urok.state !== 'in-call' || urok.reconnecting) return;
    console.error('urok: publish failed', error);
    urok.errors.push({ code: error.code || 'publish', message: String(error.message || error) });
    toast(error.code ? errorText(error.code, error.message) : i18n.t('call.media_failed'), 'error');
  });
  return publisherQueue;
}

/** Leaving: the next call starts with an empty queue. */
export function resetPublisher() {
  publisherQueue = Promise.resolve();
}

export function createPublisher() {
  const pc = new RTCPeerConnection({ iceServers: urok.iceServers });
  urok.pcs.publisher = pc;
  urok.published = [];
  // A failed connection is replaced by a new one (icerestart.js).
  watchConnection(pc, 'publisher');
  for (const [kind, source] of [['audio', 'microphone'], ['video', 'camera'], ['screen', 'screen']]) {
    if (urok.local[kind]) addPublishedTrack(urok.local[kind], source);
  }
}

// Smallest first: the server takes this order as its layer order (low, medium, high).
// Of the 640x360 capture (media.js): 160x90, 320x180 and 640x360, at LiveKit's
// rates for those sizes (its VideoPresets h90, h180, h360), so that a page of 16
// tiles of 320x180 costs a pupil ~2.4 Mbit/s; the browser sends the larger ones as
// its bandwidth estimate allows.
const CAMERA_LAYERS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 90000, maxFramerate: 15 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 160000, maxFramerate: 20 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 450000 },
];

export function addPublishedTrack(track, source) {
  if (source !== 'screen' && !urok.local.stream) urok.local.stream = new MediaStream();
  const stream = source === 'screen' ? new MediaStream([track]) : urok.local.stream;
  const count = urok.publishLayers[source] || CAMERA_LAYERS.length;
  const transceiver = urok.pcs.publisher.addTransceiver(track, {
    direction: 'sendonly',
    streams: [stream],
    // The camera in three sizes (simulcast): the server forwards each viewer one,
    // and says which are received at all (publish_layers).
    ...(source === 'camera'
      ? { sendEncodings: CAMERA_LAYERS.map((layer, i) => ({ ...layer, active: i < count })) }
      : {}),
  });
  urok.published.push({ transceiver, source });
}

/**
 * The server's publish_layers (docs/protocol.md): encode only the first `count`
 * layers of a source, smallest first (dynacast: nobody receives the others). Kept
 * for a connection made later (ICE restart, the camera turned on again).
 */
export async function setPublishedLayers(source, count) {
  if (!Number.isInteger(count) || count < 1) return;
  urok.publishLayers[source] = count;
  for (const { transceiver, source: its } of urok.published) {
    if (its !== source || !transceiver.sender) continue;
    const params = transceiver.sender.getParameters();
    if (!params.encodings || params.encodings.length < 2) continue;
    let changed = false;
    params.encodings.forEach((encoding, i) => {
      const active = i < count;
      if (encoding.active !== active) changed = true;
      encoding.active = active;
    });
    if (changed) {
      await transceiver.sender.setParameters(params).catch((error) => {
        console.warn('urok: publish_layers not applied', error);
      });
    }
  }
}

/**
 * A new publisher connection with the same tracks in place of a broken one
 * (docs/protocol.md "ice_restart"); the old one is closed once the server has
 * answered, and kept if it refuses. In the publish queue.
 */
export async function replacePublisher() {
  const old = { pc: urok.pcs.publisher, published: urok.published };
  createPublisher();
  const pc = urok.pcs.publisher;
  try {
    await negotiatePublisher({ restart: true });
  } catch (error) {
    if (urok.pcs.publisher === pc) Object.assign(urok, { published: old.published });
    if (urok.pcs.publisher === pc) urok.pcs.publisher = old.pc;
    pc.close();
    throw error;
  }
  if (old.pc) old.pc.close();
}

export async function negotiatePublisher({ restart = false } = {}) {
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
      restart
        ? { type: 'ice_restart', connection: 'publisher', sdp: pc.localDescription.sdp, tracks }
        : { type: 'publish', sdp: pc.localDescription.sdp, tracks },
      [restart ? 'ice_restarted' : 'publish_answer'],
    );
  } catch (error) {
    if (restart) throw error;
    // The server applied nothing of this offer: go back to the last agreed state.
    if (urok.pcs.publisher === pc && pc.signalingState === 'have-local-offer') {
      await pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
    }
    // The connection dropped under it: offer again once resumed (session.js).
    if (error.code === 'connection_failed') urok.republish = true;
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
  if (kind === 'audio') watchOwnLevel();
  await enqueuePublish(async () => {
    if (!urok.pcs.publisher) {
      createPublisher();
    } else {
      addPublishedTrack(track, kind === 'audio' ? 'microphone' : 'camera');
    }
    await negotiatePublisher();
  });
}

/** The microphone ('audio') or camera ('video') button. */
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

/** Tell the call (and our own tile) what we send now. */
export function sendMediaState() {
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

/** Did an error with this `ref` answer one of our media_state messages? (Asks once per ref.) */
export function takeMediaStateRef(ref) {
  if (!ref || !mediaStateRefs.has(ref)) return false;
  mediaStateRefs.delete(ref);
  return true;
}

/** Set a control's visible label (also its accessible name) to the catalog's `key`. */
export function setControlLabel(button, key) {
  const label = button.querySelector('.ctrl-label');
  if (label.dataset.i18n === key) return;
  label.dataset.i18n = key;
  label.textContent = i18n.t(key);
}

/** The microphone, camera and screen buttons: on, off, or locked by the host. Their
 * labels say the state ("Микрофон выключен"), the tooltip what a press does. */
export function updateControls() {
  for (const [kind, id, name, iconOn, iconOff, key] of [
    ['audio', 'toggle-mic', 'mic', 'mic', 'mic-off', 'M'],
    ['video', 'toggle-camera', 'camera', 'camera', 'camera-off', 'V'],
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
      : `${i18n.t(on ? `call.${name}_turn_off` : `call.${name}_turn_on`)} (${key})`;
    setControlLabel(button, `call.${name}_${on ? 'on' : 'off'}`);
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
  if (sharing) screenButton.title = `${i18n.t('call.screen_stop')} (S)`;
  else if (!screenShareSupported()) screenButton.title = i18n.t('call.screen_unsupported');
  else if (!screenAllowed) screenButton.title = i18n.t('call.screen_not_permitted');
  else screenButton.title = `${i18n.t('call.screen_start')} (S)`;
  setControlLabel(screenButton, sharing ? 'call.screen_label_stop' : 'call.screen_label');
  setIcon(screenButton.querySelector('.icon-slot'), sharing ? 'screen-off' : 'screen');
  // The presenter's own "you are presenting — stop" bar (no mirror of the screen itself).
  $('presenting-bar').hidden = !sharing || urok.state !== 'in-call';
}

export function wirePublisher() {
  $('toggle-mic').addEventListener('click', () => toggle('audio'));
  $('toggle-camera').addEventListener('click', () => toggle('video'));
}
