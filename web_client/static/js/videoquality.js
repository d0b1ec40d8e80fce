// Adaptive subscription (docs/protocol.md "Track views", as LiveKit's adaptive
// stream): for each remote video (a camera tile, a shared screen) whether it is
// shown at all — on screen (an IntersectionObserver), laid out (not on a hidden
// tile, nor behind the minimised view), the tab visible — and its size in device
// pixels (a ResizeObserver). What changed goes to the server as one `track_view`,
// SETTLE_MS after the last change: the server sends nothing of a hidden video and
// the smallest simulcast layer that covers a shown one. And "save data"
// (`save_data`): two toggles in the "⋯" menu.

import * as i18n from './i18n.js';
import { $, sendAction, urok } from './state.js';

const SETTLE_MS = 250;
const CHECK_EVERY_MS = 2000; // a safety net for changes no observer sees
const MAX_VIEWS = 128; // per message (the server's limit)
// What the server was last told, by `${participant id}|${source}` (cleared with each
// subscribe_offer: a new m-section or source).
const told = new Map();
const onScreen = new WeakMap(); // video element -> intersecting the viewport
const watched = new WeakSet();
let intersections = null;
let resizes = null;
let pending = 0;
const viewRefs = new Set(); // ids of the track_view messages sent lately

/** Was `ref` a track_view of ours? (its refusal needs no toast: see dispatch.js) */
export function takeViewRef(ref) {
  return viewRefs.delete(ref);
}

/** The remote videos on the page: {id, source, video}. A camera that is on but has no
 * track here yet counts too: in a large call the server sends a camera only once its
 * tile is shown (docs/protocol.md "Bounded video"); its tile's <video> is laid out
 * (hidden, not removed) all the same, so it is measured like the others. */
function remoteVideos() {
  const list = [];
  for (const tile of urok.tiles.values()) {
    if (tile.self || !(tile.videoTrack || tile.participant.video !== false)) continue;
    list.push({ id: tile.participant.id, source: 'camera', video: tile.video });
  }
  for (const el of document.querySelectorAll('#stage .tile-screen-share')) {
    const id = el.dataset.screenOf;
    if (id && !(urok.self && id === urok.self.id)) list.push({ id, source: 'screen', video: el.querySelector('video') });
  }
  return list;
}

function watch(video) {
  if (!video || watched.has(video) || !intersections) return;
  watched.add(video);
  intersections.observe(video);
  resizes.observe(video);
}

/** {visible, width, height} of one video as shown now. */
function viewOf(video) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.round((video ? video.clientWidth : 0) * ratio);
  const height = Math.round((video ? video.clientHeight : 0) * ratio);
  const visible = document.visibilityState !== 'hidden' && Boolean(video && video.isConnected)
    && width > 0 && height > 0 && onScreen.get(video) !== false;
  return visible ? { visible, width, height } : { visible };
}

/** A size change worth telling: over 10 % either way. */
function changed(before, now) {
  if (!before || before.visible !== now.visible) return true;
  if (!now.visible) return false;
  const far = (a, b) => Math.abs(a - b) > 0.1 * Math.max(a, b, 1);
  return far(before.width, now.width) || far(before.height, now.height);
}

/** Tell the server what changed since it was last told (one message, or a few). */
export function updateVideoQualities() {
  pending = 0;
  if (!urok.ws || urok.state !== 'in-call') return;
  const views = [];
  for (const { id, source, video } of remoteVideos()) {
    watch(video);
    const now = viewOf(video);
    const key = `${id}|${source}`;
    if (!changed(told.get(key), now)) continue;
    views.push({ participant_id: id, source, ...now });
    told.set(key, now);
  }
  urok.views = Object.fromEntries(told);
  for (let i = 0; i < views.length; i += MAX_VIEWS) {
    const ref = sendAction({ type: 'track_view', views: views.slice(i, i + MAX_VIEWS) });
    if (!ref) {
      for (const v of views.slice(i)) told.delete(`${v.participant_id}|${v.source}`);
      return;
    }
    viewRefs.add(ref);
    if (viewRefs.size > 32) viewRefs.delete(viewRefs.values().next().value);
  }
}

/** Soon, once the page has settled (a resize or a relayout fires many changes). */
export function scheduleViews() {
  if (pending) clearTimeout(pending);
  pending = setTimeout(updateVideoQualities, SETTLE_MS);
}

/** The server offered again: say every video's view afresh. */
export function forgetVideoQualities() {
  told.clear();
  scheduleViews();
}

// ---------------------------------------------------------------- save data

const SAVE_MODES = { 'save-audio-screen': 'audio_screen', 'save-one-video': 'one_video' };

/** The server's word (connection_quality.save_data): the toggles follow it. */
export function renderSaveData(mode) {
  urok.saveData = mode || 'off';
  for (const [id, value] of Object.entries(SAVE_MODES)) {
    const on = urok.saveData === value;
    const button = $(id);
    button.setAttribute('aria-pressed', String(on));
    button.classList.toggle('ctrl-active', on);
    button.querySelector('.ctrl-label').textContent = i18n.t(`save_data.${value}`);
    button.title = i18n.t(on ? 'save_data.off_title' : `save_data.${value}_title`);
  }
}

export function wireVideoQuality() {
  intersections = new IntersectionObserver((entries) => {
    for (const entry of entries) onScreen.set(entry.target, entry.isIntersecting);
    scheduleViews();
  });
  resizes = new ResizeObserver(scheduleViews);
  document.addEventListener('visibilitychange', updateVideoQualities); // at once: timers slow down
  setInterval(updateVideoQualities, CHECK_EVERY_MS);
  for (const [id, value] of Object.entries(SAVE_MODES)) {
    $(id).addEventListener('click', () => {
      sendAction({ type: 'save_data', mode: urok.saveData === value ? 'off' : value });
    });
  }
  renderSaveData('off');
}
