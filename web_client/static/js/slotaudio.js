// Bounded audio (docs/architecture.md "Bounded audio slots"): in a large call the
// server sends the loudest few microphones on a few audio m-sections, "slots",
// whose speaker changes with no renegotiation. A slot belongs to no tile (its
// speaker's tile may go while the slot plays on): each plays in an <audio>
// element of its own for as long as the offers have it.

import { applySink } from './prejoinmedia.js';

const players = new Map(); // mid -> HTMLAudioElement
let box = null;

function play(element) {
  element.play().catch((error) => {
    if (error && error.name === 'NotAllowedError') {
      document.dispatchEvent(new CustomEvent('urok:sound-blocked'));
    }
  });
}

/** Play exactly these slot tracks (Map mid -> MediaStreamTrack). */
export function playSlots(tracks) {
  if (!box) {
    box = document.createElement('div');
    box.id = 'slot-audio';
    box.hidden = true;
    document.body.append(box);
  }
  for (const [mid, element] of players) {
    if (tracks.has(mid)) continue;
    element.srcObject = null;
    element.remove();
    players.delete(mid);
  }
  for (const [mid, track] of tracks) {
    let element = players.get(mid);
    if (!element) {
      element = document.createElement('audio');
      element.autoplay = true;
      element.dataset.mid = mid;
      applySink(element); // the speakers chosen before joining
      box.append(element);
      players.set(mid, element);
    }
    const current = element.srcObject ? element.srcObject.getAudioTracks()[0] : null;
    if (current !== track) {
      element.srcObject = new MediaStream([track]);
      play(element);
    }
  }
}

/** After the user allowed sound (autoplay was blocked). */
export function resumeSlots() {
  for (const element of players.values()) play(element);
}

/** Leaving the call. */
export function stopSlots() {
  playSlots(new Map());
}
