// Raised hands as hosts see them: a toast and a soft sound when a pupil raises a
// hand (the sound can be turned off: the people panel's switch, kept in this
// browser's storage), and the number of raised hands on "Участники". The queue
// with "дать слово" / "опустить" is the people panel's (people.js).

import * as i18n from './i18n.js';
import { openPanel } from './layout.js';
import { $, urok } from './state.js';
import { toast, tones } from './ui.js';

const SOUND_KEY = 'urok.handSound';
let known = new Set(); // hands already announced
let chosen = null; // the switch as set on this page, should storage refuse to keep it

function soundOn() {
  if (chosen !== null) return chosen;
  try {
    return localStorage.getItem(SOUND_KEY) !== 'off';
  } catch {
    return true; // storage refused (a sandboxed frame): the default
  }
}

/** A soft two-note chime, quieter than a nudge's. Returns false when no sound could play. */
function chime() {
  return tones([[0, 660], [0.16, 880]], { volume: 0.08, length: 0.3 });
}

/** The hands queue changed (hands message, join): hosts hear of each newly raised hand. */
export function announceHands() {
  const now = new Set(urok.hands);
  const fresh = urok.hands.filter((id) => !known.has(id) && (!urok.self || id !== urok.self.id));
  known = now;
  if (!urok.isHost || urok.state !== 'in-call' || !fresh.length) return;
  for (const id of fresh) {
    const tile = urok.tiles.get(id);
    const name = tile ? tile.participant.name : '';
    const entry = { id, name, at: Date.now(), sound: false };
    toast(i18n.t('hands.raised_toast', { name }), 'info', {
      timeoutMs: 8000,
      action: { label: i18n.t('hands.show'), run: () => openPanel('people') },
    });
    if (soundOn()) entry.sound = chime();
    urok.handAlerts.push(entry);
  }
}

/** Joined or left: the hands already up are not news. */
export function resetHands() {
  known = new Set(urok.hands);
}

/** The count on "Участники" (hosts), and the sound switch shown to hosts. */
export function renderHostHands() {
  const count = urok.isHost ? urok.hands.length : 0;
  const badge = $('hands-badge');
  badge.hidden = !count;
  badge.textContent = String(count);
  badge.title = i18n.t('hands.count', { count });
  $('hand-sound-row').hidden = !urok.isHost;
  // The count is part of the button's name for screen readers: "Участники, 2 руки".
  const people = $('toggle-people');
  people.setAttribute('aria-label', count
    ? `${i18n.t('call.people')}, ${i18n.t('hands.count', { count })}`
    : i18n.t('call.people'));
}

export function wireHands() {
  const box = $('hand-sound');
  box.checked = soundOn();
  box.addEventListener('change', () => {
    chosen = box.checked;
    try {
      localStorage.setItem(SOUND_KEY, box.checked ? 'on' : 'off');
    } catch {
      // storage refused: the switch holds for this page only
    }
  });
}
