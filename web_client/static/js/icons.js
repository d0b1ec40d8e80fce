// Inline SVG icons (no external files, no inline styles: fine under the page's CSP).

const PATHS = {
  mic: '<path d="M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3z"/><path d="M19 11a7 7 0 0 1-14 0" fill="none"/><path d="M12 18v3M8 21h8" fill="none"/>',
  'mic-off': '<path d="M15 9.3V5a3 3 0 0 0-5.8-1.1"/><path d="M9 9v2a3 3 0 0 0 4.5 2.6"/><path d="M19 11a7 7 0 0 1-1.2 3.9M5 11a7 7 0 0 0 10.7 5.9" fill="none"/><path d="M12 18v3M8 21h8M3 3l18 18" fill="none"/>',
  camera: '<rect x="2" y="6" width="13" height="12" rx="2"/><path d="M15 10l6-3.5v11L15 14z"/>',
  'camera-off': '<path d="M10.5 6H13a2 2 0 0 1 2 2v2.5l6-4v11" fill="none"/><path d="M15 14.5V16a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2h1" fill="none"/><path d="M3 3l18 18" fill="none"/>',
  leave: '<path d="M3.5 13.5c5-4.7 12-4.7 17 0l-2.3 2.6-3.4-1.6v-2.6a12 12 0 0 0-5.6 0v2.6l-3.4 1.6z"/>',
  info: '<circle cx="12" cy="12" r="9" fill="none"/><path d="M12 11v6M12 7.5v.5" fill="none"/>',
  check: '<circle cx="12" cy="12" r="9" fill="none"/><path d="M8 12.5l3 3 5-6" fill="none"/>',
  warning: '<path d="M12 3l10 18H2z" fill="none"/><path d="M12 10v5M12 18v.5" fill="none"/>',
  host: '<path d="M3 8l4.5 4L12 5l4.5 7L21 8l-2 11H5z"/>',
  hand: '<path d="M8 13V5.5a1.5 1.5 0 0 1 3 0V11M11 10.5V4a1.5 1.5 0 0 1 3 0v7M14 10.5V5.5a1.5 1.5 0 0 1 3 0v8c0 4.2-2.8 7.5-6.5 7.5-2.5 0-4.1-1.2-5.5-3.3L2.8 14.2a1.5 1.5 0 0 1 2.4-1.8L8 15.5" fill="none"/>',
  screen: '<rect x="2" y="4" width="20" height="13" rx="2" fill="none"/><path d="M8 21h8M12 17v4M12 13.5V8M9.3 10.5L12 7.8l2.7 2.7" fill="none"/>',
  'screen-off': '<rect x="2" y="4" width="20" height="13" rx="2" fill="none"/><path d="M8 21h8M12 17v4M9 8l6 6M15 8l-6 6" fill="none"/>',
  chat: '<path d="M5 4h14a2 2 0 0 1 2 2v9a2 2 0 0 1-2 2H10l-5 4v-4H5a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z" fill="none"/>',
  people: '<circle cx="9" cy="8" r="3.5" fill="none"/><path d="M2.5 20a6.5 6.5 0 0 1 13 0" fill="none"/><path d="M16 4.6a3.5 3.5 0 0 1 0 6.8M18 14a6.5 6.5 0 0 1 3.5 6" fill="none"/>',
  shield: '<path d="M12 3l8 3v6c0 4.5-3.4 8.3-8 9-4.6-.7-8-4.5-8-9V6z" fill="none"/><path d="M9 12l2 2 4-4" fill="none"/>',
  more: '<circle cx="12" cy="5" r="1.2"/><circle cx="12" cy="12" r="1.2"/><circle cx="12" cy="19" r="1.2"/>',
  speaker: '<rect x="3" y="3" width="18" height="12" rx="2" fill="none"/><rect x="3" y="17" width="5" height="4" rx="1"/><rect x="9.5" y="17" width="5" height="4" rx="1"/><rect x="16" y="17" width="5" height="4" rx="1"/>',
  close: '<path d="M6 6l12 12M18 6L6 18" fill="none"/>',
  send: '<path d="M4 12L20 4l-6 16-2.6-6.4z" fill="none"/><path d="M11.4 13.6L20 4" fill="none"/>',
  bell: '<path d="M6 16v-5a6 6 0 0 1 12 0v5l2 2H4z" fill="none"/><path d="M10 21h4" fill="none"/>',
  hourglass: '<path d="M7 3h10M7 21h10M8 3v3.5l4 5.5-4 5.5V21M16 3v3.5L12 12l4 5.5V21" fill="none"/>',
  'user-remove': '<circle cx="9" cy="8" r="3.5" fill="none"/><path d="M2.5 20a6.5 6.5 0 0 1 13 0" fill="none"/><path d="M16 11h6" fill="none"/>',
  rooms: '<rect x="3" y="3" width="7.5" height="7.5" rx="1.5" fill="none"/><rect x="13.5" y="3" width="7.5" height="7.5" rx="1.5" fill="none"/><rect x="3" y="13.5" width="7.5" height="7.5" rx="1.5" fill="none"/><rect x="13.5" y="13.5" width="7.5" height="7.5" rx="1.5" fill="none"/>',
  shuffle: '<path d="M3 7h3.5c4.5 0 6.5 10 11 10H21M3 17h3.5c1.6 0 2.8-1.3 3.9-3M14.1 10c1-1.7 2.1-3 3.4-3H21" fill="none"/><path d="M18.5 4.5L21 7l-2.5 2.5M18.5 14.5L21 17l-2.5 2.5" fill="none"/>',
  record: '<circle cx="12" cy="12" r="9" fill="none"/><circle cx="12" cy="12" r="4.5"/>',
  'record-stop': '<circle cx="12" cy="12" r="9" fill="none"/><rect x="8.5" y="8.5" width="7" height="7" rx="1"/>',
  video: '<rect x="2.5" y="5" width="19" height="14" rx="2" fill="none"/><path d="M10 9.2v5.6l4.6-2.8z"/>',
  play: '<path d="M8 5.5v13l10.5-6.5z"/>',
  // Two bars of four: a weak signal.
  'signal-weak': '<path d="M4 20v-3M9 20v-7" fill="none"/><path d="M14 20v-11M19 20V5" fill="none" opacity="0.3"/>',
  fullscreen: '<path d="M4 9V4h5M15 4h5v5M20 15v5h-5M9 20H4v-5" fill="none"/>',
  'fullscreen-exit': '<path d="M9 4v5H4M20 9h-5V4M15 20v-5h5M4 15h5v5" fill="none"/>',
  keyboard: '<rect x="2" y="6" width="20" height="12" rx="2" fill="none"/><path d="M6 10h.5M10 10h.5M14 10h.5M18 10h.5M7 14h10" fill="none"/>',
  pin: '<path d="M9 3h6l-1 6 3 3v2H7v-2l3-3z" fill="none"/><path d="M12 14v7" fill="none"/>',
  spotlight: '<path d="M12 3l2.6 5.5 6 .8-4.4 4.1 1.1 5.9L12 16.4l-5.3 2.9 1.1-5.9L3.4 9.3l6-.8z" fill="none"/>',
  minimise: '<rect x="3" y="4" width="18" height="16" rx="2" fill="none"/><rect x="12" y="12" width="7" height="6" rx="1"/>',
  expand: '<path d="M14 4h6v6M20 4l-7 7M10 20H4v-6M4 20l7-7" fill="none"/>',
  lock: '<rect x="5" y="11" width="14" height="10" rx="2" fill="none"/><path d="M8 11V7a4 4 0 0 1 8 0v4" fill="none"/>',
};

export function icon(name, extraClass = '') {
  const paths = PATHS[name] || PATHS.info;
  return `<svg class="icon ${extraClass}" viewBox="0 0 24 24" aria-hidden="true" focusable="false" `
    + 'stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" '
    + `fill="currentColor">${paths}</svg>`;
}

/** Put the icon named by data-icon into every .icon-slot under `root`. */
export function fillIcons(root = document) {
  for (const slot of root.querySelectorAll('.icon-slot[data-icon]')) {
    if (slot.dataset.filled === slot.dataset.icon) continue;
    slot.innerHTML = icon(slot.dataset.icon);
    slot.dataset.filled = slot.dataset.icon;
  }
}

export function setIcon(slot, name) {
  slot.dataset.icon = name;
  fillIcons(slot.parentElement || slot);
}
