// Which size of each person's camera we receive (simulcast, docs/protocol.md
// "Video quality"): the size its tile is shown at. A tile under 240 device
// pixels wide takes the smallest layer, under 480 the middle one, else the
// largest the publisher sends; the server switches at the next keyframe.

import { sendAction, urok } from './state.js';

const CHECK_EVERY_MS = 2000;
// What the server was last told, per participant id (cleared with each
// subscribe_offer: a new m-section or source starts from the server's default).
const told = new Map();

/** The quality for a video shown `cssWidth` CSS pixels wide. */
export function qualityFor(cssWidth) {
  const pixels = cssWidth * (window.devicePixelRatio || 1);
  if (pixels < 240) return 'low';
  return pixels < 480 ? 'medium' : 'high';
}

/** Tell the server the quality each visible camera tile needs, where it changed. */
export function updateVideoQualities() {
  if (!urok.ws || urok.state !== 'in-call') return;
  for (const tile of urok.tiles.values()) {
    if (tile.self || !tile.videoTrack) continue;
    const width = tile.el.hidden ? 0 : tile.video.clientWidth;
    const quality = qualityFor(width);
    const id = tile.participant.id;
    if (told.get(id) === quality) continue;
    if (sendAction({ type: 'video_quality', participant_id: id, source: 'camera', quality })) {
      told.set(id, quality);
    }
  }
}

/** The server offered again: say every tile's quality afresh. */
export function forgetVideoQualities() {
  told.clear();
}

export function wireVideoQuality() {
  setInterval(updateVideoQualities, CHECK_EVERY_MS);
}
