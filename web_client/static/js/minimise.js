// Minimise: the call as a small floating view (a page-level layout mode, handy in the
// journal's iframe): one tile — the pinned or spotlighted one, else the shared screen,
// else the speaker — with the microphone toggle and "expand". The call goes on as it
// was (media, chat, hands); expanding brings the full page back.

import { stageFocus } from './focus.js';
import { setIcon } from './icons.js';
import * as i18n from './i18n.js';
import { $, urok } from './state.js';
import { scheduleViews } from './videoquality.js';

/** The tile element the small view shows. */
function miniTile() {
  const focus = stageFocus();
  if (focus && focus.source === 'screen') {
    const screen = document.querySelector(`#stage .tile-screen-share[data-screen-of="${CSS.escape(focus.id)}"]`);
    if (screen) return screen;
  }
  if (focus && urok.tiles.has(focus.id)) return urok.tiles.get(focus.id).el;
  const onStage = $('screen-stage').firstElementChild;
  if (onStage) return onStage;
  const featured = document.querySelector('#stage .tile-featured');
  if (featured) return featured;
  const visible = [...urok.tiles.values()].filter((t) => !t.el.hidden);
  const speaker = urok.speakers.map((s) => urok.tiles.get(s.id)).find((t) => t && !t.self && !t.el.hidden);
  const chosen = speaker || visible.find((t) => !t.self) || visible[0];
  return chosen ? chosen.el : null;
}

/** Mark the one tile the small view shows (called on every relayout). */
export function renderMini() {
  const chosen = urok.minimised ? miniTile() : null;
  for (const el of document.querySelectorAll('#stage .tile')) el.classList.toggle('tile-mini', el === chosen);
}

export function setMinimised(on) {
  urok.minimised = Boolean(on);
  $('screen-call').classList.toggle('minimised', urok.minimised);
  $('mini-bar').hidden = !urok.minimised;
  renderMini();
  scheduleViews(); // the tiles the small view leaves out are not shown: not sent either
  const focusTo = urok.minimised ? $('mini-expand') : $('toggle-minimise');
  if (focusTo && document.activeElement && document.activeElement !== document.body) focusTo.focus();
}

/** Leaving the call: the full page again next time. */
export function resetMinimise() {
  if (urok.minimised) setMinimised(false);
}

/** The small view's microphone button follows the bar's (its state, label and rights). */
function mirrorMic() {
  const bar = $('toggle-mic');
  const mini = $('mini-mic');
  const on = bar.getAttribute('aria-pressed') === 'true';
  mini.setAttribute('aria-pressed', String(on));
  mini.disabled = bar.disabled;
  const label = i18n.t(on ? 'mini.mic_off' : 'mini.mic_on');
  mini.setAttribute('aria-label', label);
  mini.title = label;
  mini.classList.toggle('ctrl-off', !on);
  setIcon(mini.querySelector('.icon-slot'), on ? 'mic' : 'mic-off');
}

export function wireMinimise() {
  $('toggle-minimise').addEventListener('click', () => setMinimised(true));
  $('mini-expand').addEventListener('click', () => setMinimised(false));
  $('mini-mic').addEventListener('click', () => $('toggle-mic').click());
  new MutationObserver(mirrorMic).observe($('toggle-mic'), {
    attributes: true, attributeFilter: ['aria-pressed', 'disabled'],
  });
  mirrorMic();
}
