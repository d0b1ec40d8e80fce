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
