// Sharing our screen: getDisplayMedia, then its track on the publisher
// connection's screen m-section (kept for the next share: replaceTrack).

import * as i18n from './i18n.js';
import { renderScreens } from './layout.js';
import { screenShareSupported, stopStream } from './media.js';
import {
  addPublishedTrack, createPublisher, enqueuePublish, negotiatePublisher, sendMediaState,
  updateControls,
} from './publisher.js';
import { $, allowed, urok } from './state.js';
import { toast } from './ui.js';

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
export function stopScreenShare({ announce = true } = {}) {
  const track = urok.local.screen;
  urok.local.screen = null;
  if (track) track.stop();
  const entry = urok.published.find((p) => p.source === 'screen');
  if (entry) entry.transceiver.sender.replaceTrack(null).catch(() => {});
  updateControls();
  renderScreens();
  if (announce) sendMediaState();
}

export function wireScreenShare() {
  $('toggle-screen').addEventListener('click', () => toggleScreenShare());
  $('presenting-stop').addEventListener('click', () => stopScreenShare());
}
