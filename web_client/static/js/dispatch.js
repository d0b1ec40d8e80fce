// What the server tells us during a call (docs/protocol.md), each message
// type handed to the module it concerns. Joining, leaving and the end of the
// call (joined, denied, removed, call_ended, a lost connection) are
// session.js's own.

import { onChatMessage } from './callchat.js';
import {
  enforcePermissions, onCallSettings, onMuted, onNudged, onSelfUpdated, onWaitingList, renderHands,
} from './classroom.js';
import { announceHands } from './hands.js';
import * as i18n from './i18n.js';
import {
  relayout, renderPeople, renderScreens, upsertParticipant,
} from './layout.js';
import { errorText } from './page.js';
import { onPolls } from './polls.js';
import { enqueuePublish, setPublishedLayers, takeMediaStateRef } from './publisher.js';
import { forgetQuality, onConnectionQuality } from './quality.js';
import { onBreakout } from './rooms.js';
import { forgetSpeaker, onActiveSpeakers, renderSpeaking } from './speakers.js';
import { takeViewRef } from './videoquality.js';
import { onSpotlight } from './spotlight.js';
import { urok, views } from './state.js';
import { queueSubscribeOffer } from './subscriber.js';
import { toast } from './ui.js';

/** Handle the in-call messages arriving on `sig`. */
export function routeMessages(sig) {
  sig.on('waiting', () => {});
  sig.on('subscribe_offer', (msg) => queueSubscribeOffer(sig, msg));
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
      renderSpeaking();
      return;
    }
    upsertParticipant(msg.participant);
    renderScreens();
    renderPeople();
    renderSpeaking(); // a muted tile is not ringed, whatever the last list said
  });
  sig.on('participant_left', (msg) => {
    const tile = urok.tiles.get(msg.participant_id);
    if (!tile || tile.self) return;
    tile.remove();
    urok.tiles.delete(msg.participant_id);
    urok.remoteScreens.delete(msg.participant_id);
    forgetQuality(msg.participant_id);
    forgetSpeaker(msg.participant_id);
    if (tile.participant.name) {
      toast(i18n.t('call.participant_left', { name: tile.participant.name }));
    }
    relayout();
    renderScreens();
    renderPeople();
    renderSpeaking();
  });
  sig.on('hands', (msg) => {
    urok.hands = Array.isArray(msg.queue) ? msg.queue : [];
    renderHands();
    announceHands();
  });
  sig.on('waiting_list', (msg) => onWaitingList(Array.isArray(msg.waiting) ? msg.waiting : []));
  sig.on('nudged', (msg) => onNudged(msg));
  sig.on('muted', (msg) => onMuted(msg));
  sig.on('call_settings', (msg) => onCallSettings(msg));
  sig.on('breakout', (msg) => onBreakout(msg));
  sig.on('connection_quality', (msg) => {
    if (urok.ws === sig) onConnectionQuality(msg);
  });
  sig.on('active_speakers', (msg) => {
    if (urok.ws === sig) onActiveSpeakers(msg);
  });
  sig.on('publish_layers', (msg) => {
    // After any negotiation in flight: setParameters fails in the middle of one.
    if (urok.ws === sig) enqueuePublish(() => setPublishedLayers(msg.source, msg.layers));
  });
  sig.on('spotlight', (msg) => {
    if (urok.ws === sig) onSpotlight(msg);
  });
  sig.on('chat_message', (msg) => onChatMessage(msg));
  sig.on('polls', (msg) => onPolls(msg));
  sig.on('recording', (msg) => {
    if (urok.ws !== sig || !views.recording) return;
    views.recording.set(msg.recording || null, { reason: msg.reason || null });
  });
  sig.on('error', (msg) => onServerError(msg));
  sig.on('pong', () => {});
  sig.on('publish_answer', () => {});
  sig.on('*', (msg) => console.debug('urok: unhandled message', msg.type));
}

/** An error not awaited by a request: whichever part sent the message it answers handles it. */
function onServerError(msg) {
  urok.errors.push({ code: msg.code, message: msg.message, ref: msg.ref });
  console.warn('urok: server error', msg.code, msg.message);
  if (views.chat && views.chat.handleError(msg.ref, msg.code, msg.message)) return;
  if (views.recording && views.recording.handleError(msg.ref, msg.code, msg.message)) return;
  // A view of somebody who has just left: the server took the others.
  if (takeViewRef(msg.ref)) return;
  if (takeMediaStateRef(msg.ref)) {
    if (msg.code === 'not_permitted') {
      // The server kept something off: follow what it says.
      enforcePermissions();
      toast(i18n.t('call.not_permitted_media'), 'warning');
      return;
    }
  }
  // A refused settings change: show the settings as they really are.
  if (views.rights && urok.settings) views.rights.render(urok.settings);
  if (urok.state === 'in-call') toast(errorText(msg.code, msg.message), 'error');
}
