// Small UI pieces shared by the call page: toasts, banners, the confirmation dialog, a beep.

import { icon } from './icons.js';
import { t } from './i18n.js';

const $ = (id) => document.getElementById(id);

/** A message in the corner that goes away by itself; `action` adds a button. */
export function toast(text, kind = 'info', { action = null, timeoutMs = 5000 } = {}) {
  const el = document.createElement('div');
  el.className = `toast toast-${kind}`;
  const span = document.createElement('span');
  span.textContent = text;
  el.append(span);
  if (action) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'btn btn-small btn-primary';
    button.textContent = action.label;
    button.addEventListener('click', () => {
      el.remove();
      action.run();
    });
    el.append(button);
  }
  $('toasts').append(el);
  setTimeout(() => el.classList.add('toast-out'), timeoutMs - 500);
  setTimeout(() => el.remove(), timeoutMs);
  return el;
}

/**
 * A banner under the call header (a nudge, "the host turned your microphone
 * off"). A banner with the same `key` replaces the older one.
 */
export function banner(text, { kind = 'info', key = '', iconName = 'info', timeoutMs = 10000 } = {}) {
  const box = $('banners');
  if (key) {
    for (const old of box.querySelectorAll(`[data-key="${key}"]`)) old.remove();
  }
  const el = document.createElement('div');
  el.className = `banner banner-${kind}`;
  el.setAttribute('role', kind === 'nudge' ? 'alert' : 'status');
  if (key) el.dataset.key = key;
  el.innerHTML = `<span class="banner-icon">${icon(iconName)}</span><span class="banner-text"></span>`
    + `<button type="button" class="icon-btn banner-close">${icon('close')}</button>`;
  el.querySelector('.banner-text').textContent = text;
  const close = el.querySelector('.banner-close');
  close.title = t('common.close');
  close.setAttribute('aria-label', t('common.close'));
  close.addEventListener('click', () => el.remove());
  box.append(el);
  if (timeoutMs) setTimeout(() => el.remove(), timeoutMs);
  return el;
}

export function clearBanners() {
  $('banners').replaceChildren();
}

let dialogDone = null;

/**
 * A modal question. `buttons` is [{value, label, kind}] (kind: primary,
 * secondary, danger); resolves with the value of the button pressed, or
 * null when it is dismissed (Esc, or closeDialog()).
 */
export function ask({ title, text = '', buttons }) {
  const dialog = $('dialog');
  if (dialog.open) closeDialog();
  $('dialog-title').textContent = title;
  $('dialog-text').textContent = text;
  $('dialog-text').hidden = !text;
  const box = $('dialog-buttons');
  box.replaceChildren();
  for (const { value, label, kind = 'secondary' } of buttons) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = `btn btn-${kind}`;
    button.dataset.value = value;
    button.textContent = label;
    button.addEventListener('click', () => finish(value));
    box.append(button);
  }
  return new Promise((resolve) => {
    dialogDone = resolve;
    dialog.onclose = () => finish(null);
    dialog.showModal();
    const cancel = box.querySelector('[data-value="cancel"]');
    if (cancel) cancel.focus();
  });
}

function finish(value) {
  const resolve = dialogDone;
  dialogDone = null;
  const dialog = $('dialog');
  dialog.onclose = null;
  if (dialog.open) dialog.close();
  if (resolve) resolve(value === 'cancel' ? null : value);
}

export function closeDialog() {
  finish(null);
}

/** Ask a yes/no question; resolves true when `confirmLabel` was pressed. */
export async function confirmAction({ title, text = '', confirmLabel, danger = false }) {
  const value = await ask({
    title,
    text,
    buttons: [
      { value: 'cancel', label: t('common.cancel'), kind: 'secondary' },
      { value: 'ok', label: confirmLabel, kind: danger ? 'danger' : 'primary' },
    ],
  });
  return value === 'ok';
}

let audioContext = null;

/**
 * Short sine tones, [offset s, frequency Hz] each, at `volume` for `length` s.
 * Returns false when the browser gives no sound.
 */
export function tones(notes, { volume, length }) {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return false;
  try {
    if (!audioContext) audioContext = new Ctx();
    const ctx = audioContext;
    if (ctx.state === 'suspended') ctx.resume().catch(() => {});
    const start = ctx.currentTime + 0.02;
    for (const [offset, freq] of notes) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = 'sine';
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, start + offset);
      gain.gain.exponentialRampToValueAtTime(volume, start + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + length);
      osc.connect(gain).connect(ctx.destination);
      osc.start(start + offset);
      osc.stop(start + offset + length + 0.02);
    }
    return true;
  } catch {
    return false;
  }
}

/** Two short tones (a nudge). Returns false when the browser gives no sound. */
export function beep() {
  return tones([[0, 880], [0.22, 1175]], { volume: 0.25, length: 0.18 });
}

/** "09:41" in the page's language. */
export function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  return new Intl.DateTimeFormat(document.documentElement.lang || 'ru', {
    hour: '2-digit', minute: '2-digit',
  }).format(date);
}
