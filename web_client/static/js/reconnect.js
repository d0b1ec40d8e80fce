// Coming back by ourselves after the WebSocket dropped (docs/protocol.md
// "resume"): new connections with backoff, a small "reconnecting" banner (never
// the pre-join screen), `resume` with our session and the last chat message
// seen, then the call's state as the server says it is now. The peer
// connections do not depend on the WebSocket and are kept as they are.

import { onChatMessage, refreshRecordingAccess } from './callchat.js';
import {
  applyHostUi, onCallSettings, onSelfUpdated, onWaitingList, renderHands, renderWaiting,
} from './classroom.js';
import * as i18n from './i18n.js';
import {
  relayout, renderPeople, renderScreens, upsertParticipant,
} from './layout.js';
import { forgetQuality } from './quality.js';
import { applySpotlight } from './spotlight.js';
import { urok, views } from './state.js';
import { joinToken } from './token.js';
import { banner } from './ui.js';

// The first tries come quickly (a Wi-Fi blip), then every 7 s, jittered so a
// whole class cut off at once does not come back in the same instant.
const DELAYS_MS = [0, 300, 1200, 2700, 4800];
const EVERY_MS = 7000;
const DEFAULT_TOTAL_S = 60;
// Codes worth another try: the server was not reached, did not answer, or is
// restarting (docs/protocol.md "restarting").
const TRANSIENT = new Set(['connection_failed', 'timeout', 'rate_limited', 'restarting']);

/** How long to wait before try number `attempt` (0-based). */
export function delayFor(attempt) {
  if (attempt < DELAYS_MS.length) return DELAYS_MS[attempt];
  return EVERY_MS * (0.8 + 0.4 * Math.random());
}

/** Wait `ms`, or less if the browser says the network is back. */
function sleep(ms) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      window.removeEventListener('online', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    window.addEventListener('online', done);
  });
}

/** Stop trying (we left, or the call ended, while reconnecting). */
export function stopReconnecting() {
  urok.reconnecting = false;
  const old = document.querySelector('#banners [data-key="reconnect"]');
  if (old) old.remove();
}

/**
 * Try to resume until it works, the server says the session is gone, or the
 * configured total time has passed. `open()` makes a new Signalling wired like
 * the first; `resumed(sig, msg)` takes over with it; `failed(code)` is the
 * end of the road (the page says the connection is lost).
 */
export async function reconnect({ open, resumed, failed }) {
  if (urok.reconnecting || !urok.resume) return;
  urok.reconnecting = true;
  banner(i18n.t(urok.serverRestarting ? 'reconnect.restarting' : 'reconnect.banner'), {
    kind: 'info', key: 'reconnect', iconName: 'info', timeoutMs: 0,
  });
  const started = Date.now();
  const totalMs = (Number(urok.resume.retry_s) || DEFAULT_TOTAL_S) * 1000;
  for (let attempt = 0; Date.now() - started <= totalMs; attempt += 1) {
    await sleep(delayFor(attempt));
    if (!urok.reconnecting) return;
    urok.reconnectAttempts += 1;
    const sig = open();
    try {
      await sig.connect(5000);
      const reply = await sig.request({
        type: 'resume',
        session: urok.resume.session,
        token: joinToken(),
        last_chat_seq: urok.lastChatSeq,
      }, ['resumed'], 10000);
      if (!urok.reconnecting) {
        sig.onclose = null;
        sig.close();
        return;
      }
      stopReconnecting();
      urok.serverRestarting = false;
      urok.resumes += 1;
      await resumed(sig, reply);
      return;
    } catch (error) {
      sig.onclose = null;
      sig.close();
      const code = error && error.code ? error.code : 'connection_failed';
      if (!TRANSIENT.has(code)) {
        stopReconnecting();
        failed(code);
        return;
      }
    }
  }
  if (!urok.reconnecting) return;
  stopReconnecting();
  failed('connection_failed');
}

/** `resumed` while in the call: take the call's state as it is now. */
export function applyResumed(msg) {
  urok.resume = msg.resume || urok.resume;
  // Fresh TURN credentials: connections made from now on (an ICE restart) use them.
  if (Array.isArray(msg.ice_servers)) urok.iceServers = msg.ice_servers;
  urok.hands = Array.isArray(msg.hands) ? msg.hands : [];
  onSelfUpdated(msg.self || {});
  onCallSettings(msg);
  const present = new Set((msg.participants || []).map((p) => p.id));
  for (const [id, tile] of [...urok.tiles]) {
    if (tile.self || present.has(id)) continue;
    // Left while we were away.
    tile.remove();
    urok.tiles.delete(id);
    urok.remoteScreens.delete(id);
    forgetQuality(id);
  }
  for (const participant of msg.participants || []) upsertParticipant(participant);
  for (const message of msg.chat || []) onChatMessage({ type: 'chat_message', message });
  if (urok.isHost) onWaitingList(Array.isArray(msg.waiting) ? msg.waiting : []);
  if (views.recording) views.recording.set(msg.recording || null, { joining: true });
  refreshRecordingAccess();
  applyHostUi();
  relayout();
  renderHands();
  renderWaiting();
  renderScreens();
  renderPeople();
  applySpotlight(msg.spotlight || null, { announce: true });
}
