// The call page (/call/{lesson id}#token=…): loads the UI strings, wires the
// modules together and opens the pre-join screen. Each concern has its own
// module (docs/architecture.md "The call page"):
//   state.js       the call's state (window.urok) and the questions asked of it
//   token.js       the join token (address, tab storage, claims)
//   page.js        which screen is shown, full-page messages and errors
//   prejoin.js     the pre-join screen: lesson info, preview, devices
//   session.js     joining, the waiting room, entering and leaving the call
//   reconnect.js   coming back by ourselves after the WebSocket dropped
//   dispatch.js    server messages during the call, to the module concerned
//   publisher.js   publishing microphone and camera, the media buttons
//   screenshare.js sharing our screen
//   subscriber.js  receiving everyone else's media into their tiles
//   icerestart.js  a broken media path: the connection replaced, no reload
//   layout.js      tiles, the screen-share stage, the side panels
//   classroom.js   hosts, hands, waiting room, nudges, mutes, rights
//   rooms.js       breakout rooms as this page lives them
//   quality.js     weak links: our own sign, "audio only", hosts' signs on tiles
//   speakers.js    who is speaking: ringed tiles, the speaker layout
//   spotlight.js   pin a tile for oneself, the host's spotlight for everyone
//   minimise.js    the call as a small floating view, and back
//   callchat.js    the chat and recording controls, recording access
//   controls.js    the control bar at any width: the "⋯" menu, fullscreen
//   shortcuts.js   keyboard shortcuts and their "?" dialog
//   hands.js       raised hands for hosts: toast, sound, count
//   ended.js       the end of the lesson: its screen, chat history, recordings
//   polls.js       polls: asking, the open polls' cards, answering, results
//   prejoinmedia.js the pre-join toggles, speaker choice, the host's join rules
//   embedding.js   the journal's embedding API: commands in, events out (postMessage)

import { wireChat } from './callchat.js';
import { wireClassroom } from './classroom.js';
import { wireControls } from './controls.js';
import { startEmbedding, wireEmbedding } from './embedding.js';
import { wireEnded } from './ended.js';
import { wireHands } from './hands.js';
import * as i18n from './i18n.js';
import { wireIceRestart } from './icerestart.js';
import { fillIcons } from './icons.js';
import { wireLayout } from './layout.js';
import { onRestart, showFatal } from './page.js';
import { wirePolls } from './polls.js';
import { wirePrejoin } from './prejoin.js';
import { enqueuePublish, replacePublisher, wirePublisher } from './publisher.js';
import { wireQuality } from './quality.js';
import { wireRooms } from './rooms.js';
import { wireScreenShare } from './screenshare.js';
import { startPrejoin, wireSession } from './session.js';
import { wireMinimise } from './minimise.js';
import { wireShortcuts } from './shortcuts.js';
import { wireSpeakers } from './speakers.js';
import { wireSpotlight } from './spotlight.js';
import { replaceSubscriber } from './subscriber.js';
import { wireVideoQuality } from './videoquality.js';
import {
  $, langOverride, lessonId, urok,
} from './state.js';
import { decodeClaims, readToken } from './token.js';

// Test hook, kept on purpose: window.urok is state.js's state object itself.
// The browser tests (tests/browser) read (and wait on) these names, so keep
// them: state, self, isHost, participants, local, pcs, published, tracks,
// hands, nudges, beeped, settings, permissions, breakout, room, roomName,
// chat, recording, errors, previewReady, connection, qualities, ws, resume,
// reconnecting, resumes, speakers, layout, iceRestarts, ownLevel, handAlerts, polls,
// prejoin, pin, spotlight, focus, minimised. The page
// itself never goes through window.urok: the modules import the state
// (docs/architecture.md).
window.urok = urok;

async function main() {
  await i18n.setLanguage(langOverride || 'ru');
  i18n.apply();
  fillIcons();
  onRestart(startPrejoin);
  wireSession();
  wirePrejoin();
  wirePublisher();
  wireScreenShare();
  wireLayout();
  wireChat();
  wireClassroom();
  wirePolls();
  wireRooms();
  wireQuality();
  wireSpeakers();
  wireSpotlight();
  wireMinimise();
  wireVideoQuality();
  wireControls();
  wireShortcuts();
  wireHands();
  wireEnded();
  wireEmbedding();
  wireIceRestart({
    // In the publish queue, with its errors back to the caller (who tries again).
    publisher: () => new Promise((resolve, reject) => {
      enqueuePublish(() => replacePublisher().then(resolve, reject));
    }),
    subscriber: replaceSubscriber,
  });
  const token = readToken();
  if (!token || !lessonId) {
    showFatal('no_token');
    return;
  }
  urok.claims = decodeClaims(token);
  startEmbedding();
  await startPrejoin();
}

main().catch((error) => {
  console.error('urok: failed to start', error);
  urok.errors.push({ code: 'startup', message: String(error) });
  $('screen-loading').querySelector('p').textContent = String(error);
});
