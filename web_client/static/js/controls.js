// The control bar at any width (Jitsi's and Meet's pattern): the primary
// controls (microphone, camera, screen, hand, chat, participants, leave) stay
// in the bar; when the width runs out the labels go first (icons only, the
// label kept for screen readers), then the other controls move, last first,
// into the "⋯" menu. Measured with a ResizeObserver on the bar, again when a
// control appears or disappears. Also the fullscreen button.

import * as i18n from './i18n.js';
import { setIcon } from './icons.js';
import { $ } from './state.js';

const PRIMARY = new Set([
  'toggle-mic', 'toggle-camera', 'toggle-screen', 'toggle-hand', 'toggle-chat', 'toggle-people', 'leave',
]);

let order = []; // the ids of the bar's controls, in their place in the bar
let pending = 0;
let watch = null; // the MutationObserver that refits when a control is shown or hidden

const bar = () => $('controls');
const menu = () => $('more-menu');
const overflows = (el) => el.scrollWidth > el.clientWidth + 1;

/** The controls that may go into the menu, as they stand in the bar. */
function secondary() {
  return order.filter((id) => !PRIMARY.has(id) && id !== 'controls-more');
}

/** Put `id` back into the bar, before the next control of `order` that is there. */
function restore(id) {
  const el = $(id);
  if (el.parentElement === bar()) return;
  const after = order.slice(order.indexOf(id) + 1).map((next) => $(next))
    .find((next) => next.parentElement === bar());
  bar().insertBefore(el, after || null);
}

/** Lay the bar out for its width now. */
export function fitControls() {
  pending = 0;
  const box = bar();
  if (!box || box.offsetParent === null) return; // not shown: nothing to measure
  const more = $('controls-more');
  const hadFocus = menu().contains(document.activeElement) ? document.activeElement : null;
  for (const id of secondary()) restore(id);
  // The menu's own items ("save data") keep "⋯" in the bar whatever the width.
  more.hidden = ![...menu().children].some((el) => el.dataset.permanent !== undefined && !el.hidden);
  box.classList.remove('controls-compact', 'controls-tight');
  if (overflows(box)) box.classList.add('controls-compact');
  if (overflows(box)) {
    more.hidden = false;
    const movable = secondary().filter((id) => !$(id).hidden).reverse();
    for (const id of movable) {
      if (!overflows(box)) break;
      menu().prepend($(id));
    }
    // Below about 360 px even the primary controls share what is left.
    if (overflows(box)) box.classList.add('controls-tight');
  }
  const inMenu = [...menu().children].filter((el) => !el.hidden);
  more.hidden = inMenu.length === 0;
  if (more.hidden) closeMenu();
  $('more-badge').hidden = !inMenu.some((el) => {
    const badge = el.querySelector('.ctrl-badge');
    return badge && !badge.hidden;
  });
  if (hadFocus && !menu().contains(hadFocus)) hadFocus.focus();
  if (watch) watch.takeRecords(); // our own moves and switches are no news
}

function scheduleFit() {
  if (!pending) pending = requestAnimationFrame(fitControls);
}

// ---------------------------------------------------------------- the "⋯" menu

function openMenu() {
  const button = $('controls-more');
  const rect = button.getBoundingClientRect();
  const box = menu();
  box.style.setProperty('--menu-bottom', `${Math.max(8, window.innerHeight - rect.top + 8)}px`);
  box.style.setProperty('--menu-right', `${Math.max(8, window.innerWidth - rect.right)}px`);
  box.hidden = false;
  button.setAttribute('aria-expanded', 'true');
  const first = [...box.children].find((el) => !el.hidden && !el.disabled);
  if (first) first.focus();
}

export function closeMenu({ focusButton = false } = {}) {
  const box = menu();
  if (!box || box.hidden) return;
  box.hidden = true;
  $('controls-more').setAttribute('aria-expanded', 'false');
  if (focusButton) $('controls-more').focus();
}

// ---------------------------------------------------------------- fullscreen

function renderFullscreen() {
  const button = $('toggle-fullscreen');
  const on = Boolean(document.fullscreenElement);
  button.hidden = !document.fullscreenEnabled;
  button.setAttribute('aria-pressed', String(on));
  button.classList.toggle('ctrl-active', on);
  button.title = `${i18n.t(on ? 'call.fullscreen_exit' : 'call.fullscreen_enter')} (F)`;
  setIcon(button.querySelector('.icon-slot'), on ? 'fullscreen-exit' : 'fullscreen');
}

export function toggleFullscreen() {
  if (!document.fullscreenEnabled) return;
  const done = document.fullscreenElement
    ? document.exitFullscreen()
    : document.documentElement.requestFullscreen();
  done.catch((error) => console.warn('urok: fullscreen refused', error));
}

export function wireControls() {
  order = [...bar().querySelectorAll(':scope > .ctrl')].map((el) => el.id);
  $('controls-more').addEventListener('click', (event) => {
    event.stopPropagation();
    if (menu().hidden) openMenu();
    else closeMenu();
  });
  // A control chosen in the menu does its work (its own listener) and the menu closes.
  menu().addEventListener('click', (event) => {
    if (event.target.closest('.ctrl')) closeMenu();
  });
  document.addEventListener('click', (event) => {
    if (!menu().hidden && !menu().contains(event.target)) closeMenu();
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !menu().hidden) closeMenu({ focusButton: true });
  });
  $('toggle-fullscreen').addEventListener('click', toggleFullscreen);
  document.addEventListener('fullscreenchange', renderFullscreen);
  renderFullscreen();
  new ResizeObserver(scheduleFit).observe(bar());
  // A control shown or hidden (host-only ones, the fullscreen button), a badge, a
  // label that changed its length ("Записать звонок" / "Завершить запись").
  watch = new MutationObserver((records) => {
    if (records.some((record) => record.target !== menu())) scheduleFit();
  });
  for (const root of [bar(), menu()]) {
    watch.observe(root, {
      attributes: true, attributeFilter: ['hidden'], subtree: true, childList: true, characterData: true,
    });
  }
}
