// Receiving everyone else's media on the subscriber peer connection
// (docs/protocol.md "subscribe_offer"): the server offers, we answer, and
// each receiver track goes to the tile (or screen share) of its participant;
// audio slots (a large call's loudest few) play on their own (slotaudio.js).

import * as i18n from './i18n.js';
import { renderScreens, upsertParticipant } from './layout.js';
import { watchConnection } from './icerestart.js';
import { iceGatheringComplete } from './media.js';
import { playSlots, stopSlots } from './slotaudio.js';
import { urok } from './state.js';
import { toast } from './ui.js';
import { forgetVideoQualities } from './videoquality.js';

// Offers are answered one at a time, in the order they came.
let subscriberQueue = Promise.resolve();

/** A subscribe_offer on connection `sig`: answer it after the ones before. */
export function queueSubscribeOffer(sig, msg) {
  // Made for the subscriber connection being replaced: the new one's offer follows.
  if (urok.subscriberRestarting) return;
  subscriberQueue = subscriberQueue
    .then(() => onSubscribeOffer(sig, msg))
    .catch((error) => {
      console.error('urok: subscribe offer failed', error);
      urok.errors.push({ code: 'subscribe', message: String(error) });
      toast(i18n.t('call.media_failed'), 'error');
    });
}

/**
 * A new subscriber connection in place of a broken one (docs/protocol.md
 * "ice_restart"): the server replaces its side and offers again; offers made
 * for the old one before its reply are dropped. In the offers' queue.
 */
export function replaceSubscriber(sig) {
  const step = async () => {
    urok.subscriberRestarting = true;
    try {
      await sig.request({ type: 'ice_restart', connection: 'subscriber' }, ['ice_restarted']);
    } finally {
      urok.subscriberRestarting = false;
    }
    const old = urok.pcs.subscriber;
    urok.pcs.subscriber = null; // the next offer makes the new one
    if (old) old.close();
  };
  const run = subscriberQueue.then(step);
  subscriberQueue = run.catch(() => {});
  return run;
}

/** Leaving: the next call starts with an empty queue. */
export function resetSubscriber() {
  subscriberQueue = Promise.resolve();
  stopSlots();
}

async function onSubscribeOffer(sig, msg) {
  if (urok.ws !== sig) return;
  forgetVideoQualities();
  let pc = urok.pcs.subscriber;
  if (!pc) {
    pc = new RTCPeerConnection({ iceServers: urok.iceServers });
    urok.pcs.subscriber = pc;
    pc.addEventListener('track', () => applyTracks());
    watchConnection(pc, 'subscriber');
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
  const slots = new Map();
  for (const transceiver of pc.getTransceivers()) {
    const info = transceiver.mid !== null ? urok.tracks[transceiver.mid] : undefined;
    if (info && info.slot === true && info.kind === 'audio') {
      slots.set(transceiver.mid, transceiver.receiver.track);
      continue;
    }
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
  playSlots(slots);
}
