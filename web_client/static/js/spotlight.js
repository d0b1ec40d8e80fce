// Pin and spotlight (docs/protocol.md "Spotlight"). Anyone pins a tile (a camera or a
// shared screen) for themselves: it is the large one on this page only. A host
// spotlights one for everyone in the room (the server keeps it and tells the room).
// The own pin wins over the spotlight, which wins over the automatic speaker and the
// newest screen (focus.js). Each tile has a pin button and, for hosts, a spotlight
// button, shown on hover and on keyboard focus (the buttons are in the tab order).

import { stageFocus } from './focus.js';
import * as i18n from './i18n.js';
import { renderScreens } from './layout.js';
import { renderSpeaking } from './speakers.js';
import { $, sendAction, urok } from './state.js';
import { toast } from './ui.js';

let pending = 0;

/** The pin / spotlight target a tile element stands for: {participant_id, source}. */
function targetOf(el) {
  if (el.dataset.screenOf) return { participant_id: el.dataset.screenOf, source: 'screen' };
  if (el.dataset.participantId) return { participant_id: el.dataset.participantId, source: 'camera' };
  return null;
}

function same(a, b) {
  return Boolean(a && b && a.participant_id === b.participant_id && a.source === b.source);
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function setAttr(el, name, value) {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

/** The buttons' labels and pressed states, and the "pinned" / "for everyone" marks. */
function renderActions() {
  pending = 0;
  for (const el of document.querySelectorAll('#stage .tile')) {
    const target = targetOf(el);
    const pin = el.querySelector('.tile-action[data-action="pin"]');
    const spot = el.querySelector('.tile-action[data-action="spotlight"]');
    if (!target || !pin || !spot) continue;
    const name = el.getAttribute('aria-label') || '';
    const pinned = same(urok.pin, target);
    const spotlit = same(urok.spotlight, target);
    const pinLabel = i18n.t(pinned ? 'tile.unpin' : 'tile.pin', { name });
    setAttr(pin, 'aria-pressed', String(pinned));
    setAttr(pin, 'aria-label', pinLabel);
    setAttr(pin, 'title', pinLabel);
    const spotLabel = i18n.t(spotlit ? 'tile.unspotlight' : 'tile.spotlight', { name });
    if (spot.hidden !== !urok.isHost) spot.hidden = !urok.isHost;
    setAttr(spot, 'aria-pressed', String(spotlit));
    setAttr(spot, 'aria-label', spotLabel);
    setAttr(spot, 'title', spotLabel);
    el.classList.toggle('tile-pinned', pinned);
    el.classList.toggle('tile-spotlit', spotlit);
    const badge = el.querySelector('.tile-focus-badge');
    if (badge.hidden !== !(pinned || spotlit)) badge.hidden = !(pinned || spotlit);
    setText(badge, pinned ? i18n.t('tile.pinned') : spotlit ? i18n.t('tile.spotlit') : '');
  }
}

function scheduleActions() {
  if (!pending) pending = requestAnimationFrame(renderActions);
}

/** The large tile and the buttons again, after a pin or the spotlight changed. */
function render() {
  if (urok.pin && !urok.tiles.has(urok.pin.participant_id)) urok.pin = null; // they left
  urok.focus = stageFocus();
  renderScreens();
  renderSpeaking();
  renderActions();
}

/** Pin `target` ({participant_id, source}) for ourselves, or unpin (null). */
export function setPin(target) {
  urok.pin = target ? { participant_id: target.participant_id, source: target.source } : null;
  render();
}

/** Hosts: spotlight `target` for everyone in the room, or nobody (null). */
function requestSpotlight(target) {
  sendAction({
    type: 'spotlight',
    participant_id: target ? target.participant_id : null,
    source: target ? target.source : 'camera',
  });
}

/** The room's spotlight from `joined`, `resumed` or a `spotlight` message. */
export function applySpotlight(spot, { announce = false } = {}) {
  const valid = spot && typeof spot.participant_id === 'string';
  const next = valid
    ? { participant_id: spot.participant_id, source: spot.source === 'screen' ? 'screen' : 'camera', by: spot.by || null }
    : null;
  const changed = !same(next, urok.spotlight) && (next || urok.spotlight);
  urok.spotlight = next;
  if (announce && changed && urok.state === 'in-call' && !(next && next.by && urok.self && next.by.id === urok.self.id)) {
    const tile = next ? urok.tiles.get(next.participant_id) : null;
    if (next) toast(i18n.t('spotlight.on', { name: tile ? tile.participant.name : '' }));
    else toast(i18n.t('spotlight.off'));
  }
  render();
}

export function onSpotlight(msg) {
  applySpotlight(msg.spotlight || null, { announce: true });
}

/** Leaving the call: no pin, no spotlight. */
export function resetSpotlight() {
  urok.pin = null;
  urok.spotlight = null;
  urok.focus = null;
}

export function wireSpotlight() {
  const stage = $('stage');
  // In the capture phase: the buttons' work, not the tile's own click (a screen tile's).
  stage.addEventListener('click', (event) => {
    const tileEl = event.target.closest('.tile');
    if (!tileEl) return;
    const target = targetOf(tileEl);
    const button = event.target.closest('.tile-action');
    if (!button) {
      // A shared screen clicked in the row is pinned: the large one for us, whatever the spotlight.
      if (target && target.source === 'screen' && tileEl.parentElement === $('grid')) {
        event.stopPropagation();
        setPin(target);
      }
      return;
    }
    event.stopPropagation();
    if (button.dataset.action === 'pin') setPin(same(urok.pin, target) ? null : target);
    else if (urok.isHost) requestSpotlight(same(urok.spotlight, target) ? null : target);
  }, true);
  // New tiles, names, host marks: the buttons' labels follow (our own writes are no news).
  new MutationObserver((records) => {
    const news = records.some((r) => {
      const el = r.target.nodeType === 1 ? r.target : r.target.parentElement;
      return !(el && el.closest('.tile-actions, .tile-focus-badge'));
    });
    if (news) scheduleActions();
  }).observe(stage, {
    childList: true, subtree: true, attributes: true, attributeFilter: ['aria-label', 'hidden'],
  });
}
