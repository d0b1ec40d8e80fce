// Keyboard shortcuts in the call, listed in the "?" dialog. Single keys with
// no modifier, read by their place on the keyboard (event.code: the same key
// with a Russian layout), ignored while typing in a field or while a dialog is
// open. Screen readers keep their own keys: in browse mode they take letters
// before the page does, and nothing here uses Insert, Caps Lock or modifiers.

import * as i18n from './i18n.js';
import { toggleFullscreen } from './controls.js';
import { $, urok } from './state.js';

/** key shown, event.code, what it does (the catalog's shortcuts.<name>), the button pressed. */
const SHORTCUTS = [
  ['M', 'KeyM', 'mic', 'toggle-mic'],
  ['V', 'KeyV', 'camera', 'toggle-camera'],
  ['S', 'KeyS', 'screen', 'toggle-screen'],
  ['H', 'KeyH', 'hand', 'toggle-hand'],
  ['C', 'KeyC', 'chat', 'toggle-chat'],
  ['P', 'KeyP', 'people', 'toggle-people'],
  ['F', 'KeyF', 'fullscreen', null],
  ['?', 'Slash', 'help', null],
];

function typing(target) {
  if (!(target instanceof Element)) return false;
  return Boolean(target.closest('input, textarea, select, [contenteditable=""], [contenteditable="true"]'));
}

export function openShortcuts() {
  const list = $('shortcuts-list');
  list.replaceChildren();
  for (const [key, , name] of SHORTCUTS) {
    if (name === 'fullscreen' && !document.fullscreenEnabled) continue;
    const term = document.createElement('dt');
    const kbd = document.createElement('kbd');
    kbd.textContent = key;
    term.append(kbd);
    const what = document.createElement('dd');
    what.textContent = i18n.t(`shortcuts.${name}`);
    list.append(term, what);
  }
  const dialog = $('shortcuts-dialog');
  if (!dialog.open) dialog.showModal();
}

function onKey(event) {
  if (urok.state !== 'in-call' || event.defaultPrevented || event.repeat) return;
  if (event.ctrlKey || event.altKey || event.metaKey) return;
  if (typing(event.target) || document.querySelector('dialog[open]')) return;
  const help = event.key === '?' || (event.code === 'Slash' && event.shiftKey);
  const entry = help ? SHORTCUTS.at(-1) : SHORTCUTS.find(([, code]) => code === event.code);
  if (!entry || (!help && event.shiftKey)) return;
  const [, , name, buttonId] = entry;
  event.preventDefault();
  if (name === 'help') openShortcuts();
  else if (name === 'fullscreen') toggleFullscreen();
  else $(buttonId).click(); // the button's own path: a disabled (locked) one does nothing
}

export function wireShortcuts() {
  document.addEventListener('keydown', onKey);
  $('toggle-shortcuts').addEventListener('click', openShortcuts);
}
