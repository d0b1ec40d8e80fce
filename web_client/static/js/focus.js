// Which tile is the large one by a choice rather than by the automatic speaker: the
// tile this person pinned for themselves, else the host's spotlight for everyone
// (docs/protocol.md "Spotlight"). A leaf of the state, read by layout.js (the
// screen stage) and speakers.js (the speaker layout).

import { urok } from './state.js';

function shown(id) {
  const tile = urok.tiles.get(id);
  return Boolean(tile && !tile.el.hidden);
}

/** Whether `id`'s shared screen is on this page now (our own is never shown back to us). */
export function screenShown(id) {
  const tile = urok.tiles.get(id);
  return Boolean(urok.remoteScreens.get(id) && tile && !tile.self && tile.participant.screen);
}

/** A target ({participant_id, source}) as it can be shown now, or null. A screen that is
 * not shared falls back to the camera when `cameraInstead` (the spotlight names a person). */
function resolve(target, cameraInstead) {
  if (!target || !shown(target.participant_id)) return null;
  const id = target.participant_id;
  if (target.source === 'screen') {
    if (screenShown(id)) return { id, source: 'screen' };
    return cameraInstead ? { id, source: 'camera' } : null;
  }
  return { id, source: 'camera' };
}

/** The large tile chosen by a person: the own pin wins over the host's spotlight. */
export function stageFocus() {
  return resolve(urok.pin, false) || resolve(urok.spotlight, true);
}
