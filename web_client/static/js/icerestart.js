// A broken media path (docs/protocol.md "ice_restart"): when a peer connection
// stays `disconnected` for 3 s or goes `failed`, or the browser says it is
// `online` again (a new network), that connection is replaced by a new one while
// the other keeps running. No reload, no pre-join screen: a small
// "Восстанавливаем звук и видео…" banner while it happens.

import * as i18n from './i18n.js';
import { urok } from './state.js';
import { banner } from './ui.js';

// `disconnected` often heals by itself within a second or two (a lost burst).
const DISCONNECTED_MS = 3000;
// After a refused or cut-short try (rate_limited, a dropped WebSocket).
const RETRY_MS = 2500;
const BANNER_KEY = 'media-restart';

const timers = { publisher: null, subscriber: null };
const busy = { publisher: false, subscriber: false };
// How to replace each connection: set by call.js (publisher.js, subscriber.js).
let replacers = { publisher: null, subscriber: null };

export function wireIceRestart({ publisher, subscriber }) {
  replacers = { publisher, subscriber };
  const networkChanged = () => {
    for (const which of ['publisher', 'subscriber']) {
      if (urok.pcs[which]) restart(which);
    }
  };
  window.addEventListener('online', networkChanged);
  // Chromium on phones also says when the kind of network changed (Wi-Fi to
  // cellular), which `online` does not when it was never offline in between.
  // Pages cannot see their local addresses: this is the nearest sign of a new
  // one. Only `type`: the speed estimates change all the time.
  const info = navigator.connection;
  if (info && info.addEventListener && info.type !== undefined) {
    let type = info.type;
    info.addEventListener('change', () => {
      if (info.type === type) return;
      type = info.type;
      networkChanged();
    });
  }
}

function broken(pc) {
  if (!pc) return '';
  if (pc.iceConnectionState === 'failed' || pc.connectionState === 'failed') return 'failed';
  if (pc.iceConnectionState === 'disconnected' || pc.connectionState === 'disconnected') {
    return 'disconnected';
  }
  return '';
}

/** Watch `pc`, the current `which` ('publisher' | 'subscriber') connection. */
export function watchConnection(pc, which) {
  const check = () => {
    if (urok.pcs[which] !== pc) return;
    const state = broken(pc);
    if (state !== 'disconnected') {
      clearTimeout(timers[which]);
      timers[which] = null;
    }
    if (state === 'failed') {
      restart(which);
    } else if (state === 'disconnected' && !timers[which]) {
      timers[which] = setTimeout(() => {
        timers[which] = null;
        if (urok.pcs[which] === pc && broken(pc)) restart(which);
      }, DISCONNECTED_MS);
    } else if (!state) {
      settled();
    }
  };
  pc.addEventListener('iceconnectionstatechange', check);
  pc.addEventListener('connectionstatechange', check);
}

function sleep(ms) {
  return new Promise((resolve) => { setTimeout(resolve, ms); });
}

/** Replace the `which` connection now (once at a time per connection). */
export async function restart(which) {
  if (busy[which] || urok.state !== 'in-call' || !replacers[which]) return;
  busy[which] = true;
  banner(i18n.t('reconnect.media'), {
    kind: 'info', key: BANNER_KEY, iconName: 'info', timeoutMs: 0,
  });
  let retry = false;
  try {
    // The WebSocket first: a resume brings it back (reconnect.js).
    while (urok.state === 'in-call' && (urok.reconnecting || !urok.ws || !urok.ws.open)) {
      await sleep(300);
    }
    if (urok.state !== 'in-call') return;
    await replacers[which](urok.ws);
    urok.iceRestarts += 1;
  } catch (error) {
    console.warn(`urok: replacing the ${which} connection failed`, error);
    retry = true;
  } finally {
    busy[which] = false;
  }
  if (retry) {
    await sleep(RETRY_MS);
    if (urok.state === 'in-call' && (broken(urok.pcs[which]) || !urok.pcs[which])) restart(which);
  }
  settled();
}

/** Both connections are up (or there is none to wait for): the banner goes. */
function settled() {
  const waiting = ['publisher', 'subscriber'].some((which) => {
    const pc = urok.pcs[which];
    return busy[which] || (pc && pc.connectionState !== 'connected');
  });
  if (waiting && urok.state === 'in-call') return;
  const old = document.querySelector(`#banners [data-key="${BANNER_KEY}"]`);
  if (old) old.remove();
}
