// Weak links (docs/protocol.md "connection_quality"): the sign on our own view
// when our connection is weak, with the "audio only" choice; the sign on a
// pupil's tile at a host's page; and the tiles whose video the server holds
// back for us, which say so instead of showing a frozen picture.

import * as i18n from './i18n.js';
import { renderScreens } from './layout.js';
import { renderSaveData } from './videoquality.js';
import {
  $, pausedReason, sendAction, urok,
} from './state.js';

/** good, weak or bad: `level` since protocol 1.4, else what `quality` says. */
function levelOf(msg) {
  if (msg.level === 'bad' || msg.level === 'weak' || msg.level === 'good') return msg.level;
  return msg.quality === 'weak' ? 'weak' : 'good';
}

/** A connection_quality message: about our own link, or (hosts) about someone else's. */
export function onConnectionQuality(msg) {
  if (!msg || typeof msg.participant_id !== 'string') return;
  const level = levelOf(msg);
  if (urok.self && msg.participant_id === urok.self.id) {
    urok.connection = {
      quality: level === 'good' ? 'good' : 'weak',
      level,
      paused: Array.isArray(msg.paused) ? msg.paused : [],
      audioOnly: Boolean(msg.audio_only),
      saveData: typeof msg.save_data === 'string' ? msg.save_data : 'off',
    };
    renderSaveData(urok.connection.saveData);
    renderOwnLink();
    applyPaused();
    return;
  }
  urok.qualities[msg.participant_id] = msg.quality;
  urok.levels[msg.participant_id] = level;
  const tile = urok.tiles.get(msg.participant_id);
  if (tile) tile.setWeak(level !== 'good', level === 'bad');
}

/** Someone left: forget their link. */
export function forgetQuality(participantId) {
  delete urok.qualities[participantId];
  delete urok.levels[participantId];
}

/** Every tile (and screen share) shows whether its video is held back for us. */
export function applyPaused() {
  for (const [id, tile] of urok.tiles) {
    if (!tile.self) tile.setPaused(pausedReason(id, 'camera'));
  }
  renderScreens();
}

/** The notice in the header and the sign on our own tile. */
function renderOwnLink() {
  const own = urok.connection;
  const weak = own.quality === 'weak';
  const bad = own.level === 'bad';
  const notice = $('link-notice');
  notice.hidden = !(weak || own.audioOnly);
  notice.dataset.quality = own.level;
  notice.dataset.audioOnly = String(own.audioOnly);
  $('link-notice-text').textContent = own.audioOnly ? i18n.t('quality.audio_only_on') : i18n.t(bad ? 'quality.bad' : 'quality.weak');
  notice.title = weak && !own.audioOnly ? i18n.t(bad ? 'quality.bad_hint' : 'quality.weak_hint') : '';
  const button = $('link-audio-only');
  button.textContent = own.audioOnly ? i18n.t('quality.video_back') : i18n.t('quality.audio_only');
  button.title = own.audioOnly ? '' : i18n.t('quality.audio_only_title');
  button.setAttribute('aria-pressed', String(own.audioOnly));
  const selfTile = urok.self && urok.tiles.get(urok.self.id);
  if (selfTile) selfTile.setWeak(weak, bad);
}

/** Leaving: our next call starts with a good link and every video. */
export function resetQuality() {
  urok.connection = {
    quality: 'good', level: 'good', paused: [], audioOnly: false, saveData: 'off',
  };
  renderSaveData('off');
  urok.qualities = {};
  urok.levels = {};
  $('link-notice').hidden = true;
}

/** The "audio only" / "turn video back on" button. */
export function wireQuality() {
  $('link-audio-only').addEventListener('click', () => {
    sendAction({ type: 'audio_only', enabled: !urok.connection.audioOnly });
  });
}
