// Who is speaking (docs/protocol.md "active_speakers"): the speaking tiles are
// ringed, and the "speaker" layout shows the current speaker large and
// everyone else small. The server never lists a muted person; a tile whose
// person we know to be muted is not ringed either, even before the next update.

import { stageFocus } from './focus.js';
import * as i18n from './i18n.js';
import { relayout } from './layout.js';
import { levelMeter } from './media.js';
import { $, urok } from './state.js';

let featured = null; // the participant id shown large in the speaker layout
let stopOwnLevel = () => {};

/**
 * The level of our own microphone on our tile (an AnalyserNode on the local track:
 * no round trip to the server), 0 while muted. Again whenever the track changes.
 */
export function watchOwnLevel() {
  stopOwnLevel();
  stopOwnLevel = () => {};
  urok.ownLevel = 0;
  const track = urok.local.audio;
  const tile = urok.self && urok.tiles.get(urok.self.id);
  if (!tile) return;
  tile.setLevel(0);
  if (!track) return;
  stopOwnLevel = levelMeter(new MediaStream([track]), (level) => {
    const shown = track.enabled && track.readyState === 'live' ? level : 0;
    urok.ownLevel = shown;
    tile.setLevel(shown);
  });
}

/** Leaving: the meter stops with the call. */
export function stopWatchingOwnLevel() {
  stopOwnLevel();
  stopOwnLevel = () => {};
  urok.ownLevel = 0;
}

/** An active_speakers message: the people speaking now, loudest first. */
export function onActiveSpeakers(msg) {
  const speakers = Array.isArray(msg.speakers) ? msg.speakers : [];
  urok.speakers = speakers
    .filter((s) => s && typeof s.participant_id === 'string')
    .map((s) => ({ id: s.participant_id, level: Number(s.level) || 0 }));
  renderSpeaking();
}

/** Ring the tiles of who speaks now, and re-pick the large tile (the speaker layout's,
 * or a pinned or spotlighted camera's). */
export function renderSpeaking() {
  const speaking = new Set(urok.speakers.map((s) => s.id));
  for (const [id, tile] of urok.tiles) {
    tile.setSpeaking(speaking.has(id) && tile.participant.audio !== false);
  }
  feature();
}

/** Someone left or the call ended: they speak no more. */
export function forgetSpeaker(participantId) {
  urok.speakers = urok.speakers.filter((s) => s.id !== participantId);
  if (featured === participantId) featured = null;
}

/** Who is large: the loudest speaker who is visible here; else whoever was; else a host;
 * else the first other person; ourselves only when alone. */
function pickFeatured() {
  const visible = (id) => {
    const tile = urok.tiles.get(id);
    return Boolean(tile && !tile.el.hidden);
  };
  const others = [...urok.tiles.values()].filter((t) => !t.self && !t.el.hidden);
  const loudest = urok.speakers.find((s) => visible(s.id) && !urok.tiles.get(s.id).self);
  if (loudest) return loudest.id;
  if (featured && visible(featured) && !urok.tiles.get(featured).self) return featured;
  const host = others.find((t) => t.participant.host);
  if (host) return host.id;
  if (others.length) return others[0].id;
  return urok.self ? urok.self.id : null;
}

function feature() {
  // A pinned or spotlighted camera (focus.js) is large in any layout, in the speaker's place.
  const focus = stageFocus();
  const focused = focus && focus.source === 'camera' ? focus.id : null;
  const speakerView = urok.layout === 'speaker' || Boolean(focused);
  const chosen = focused || (speakerView ? pickFeatured() : null);
  if (!focused) featured = chosen;
  for (const [id, tile] of urok.tiles) tile.el.classList.toggle('tile-featured', id === chosen);
  $('stage').classList.toggle('speaker-view', speakerView && Boolean(chosen));
  relayout();
}

function setLayout(layout) {
  urok.layout = layout;
  const button = $('toggle-layout');
  const on = layout === 'speaker';
  button.setAttribute('aria-pressed', String(on));
  button.title = i18n.t(on ? 'call.layout_grid_title' : 'call.layout_speaker_title');
  feature();
}

/** The layout button ("speaker" large, others small, or the grid). */
export function wireSpeakers() {
  $('toggle-layout').addEventListener('click', () => {
    setLayout(urok.layout === 'speaker' ? 'grid' : 'speaker');
  });
  setLayout(urok.layout);
}
