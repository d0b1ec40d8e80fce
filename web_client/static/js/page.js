// Which screen the page shows (loading, pre-join, waiting, call, message)
// and the full-page messages: errors, "you left", "the call ended".

import * as i18n from './i18n.js';
import { setIcon } from './icons.js';
import { $, urok } from './state.js';
import { forgetToken } from './token.js';
import { closeDialog } from './ui.js';

// What "retry" on an error message does (back to the pre-join screen). Set by
// call.js: the session module that does it needs this module, not the reverse.
let restart = () => {};
// What a lesson_ended refusal shows (ended.js: the end screen, not an error).
let lessonEnded = null;

export function onRestart(fn) {
  restart = fn;
}

export function onLessonEnded(fn) {
  lessonEnded = fn;
}

/** The page's state, also as data-state on #app (the stylesheet and tests look at it). */
export function setState(state) {
  urok.state = state;
  $('app').dataset.state = state;
}

export function show(screen) {
  for (const name of ['loading', 'prejoin', 'waiting', 'call', 'message']) {
    $(`screen-${name}`).hidden = name !== screen;
  }
}

/** The text for a server error code (errors.<code> in the catalog), or the generic one. */
export function errorText(code, message = '') {
  const key = `errors.${code}`;
  return i18n.has(key) ? i18n.t(key) : i18n.t('errors.generic', { message: message || code });
}

export function showMessage({ title, text, details = '', iconName = 'info', action = null }) {
  closeDialog();
  $('ended-extra').hidden = true; // the end screen's own part (ended.js)
  $('message-title').textContent = title;
  $('message-text').textContent = text;
  $('message-details').textContent = details;
  setIcon($('message-icon'), iconName);
  const button = $('message-action');
  button.hidden = !action;
  button.onclick = null;
  if (action) {
    button.textContent = action.label;
    button.onclick = action.run;
  }
  show('message');
}

export function showFatal(code, message) {
  if (code === 'lesson_ended' && lessonEnded) {
    lessonEnded();
    return;
  }
  setState('error');
  if (code === 'token_invalid') forgetToken();
  urok.errors.push({ code, message });
  const retryable = ['connection_failed', 'timeout', 'lesson_not_open'].includes(code);
  showMessage({
    title: i18n.t('errors.title'),
    text: errorText(code, message),
    details: i18n.t('errors.details', { code }),
    iconName: 'warning',
    action: retryable ? { label: i18n.t('common.retry'), run: () => restart() } : null,
  });
}

/** "Monday, 3 March, 10:00–10:45" in the page's language ('' without both times). */
export function formatWhen(startsAt, endsAt) {
  if (!startsAt || !endsAt) return '';
  const start = new Date(startsAt);
  const end = new Date(endsAt);
  if (Number.isNaN(start.getTime()) || Number.isNaN(end.getTime())) return '';
  const lang = i18n.language();
  const time = new Intl.DateTimeFormat(lang, { hour: '2-digit', minute: '2-digit' });
  const date = new Intl.DateTimeFormat(lang, { day: 'numeric', month: 'long', weekday: 'long' });
  return i18n.t('prejoin.when', {
    date: date.format(start), start: time.format(start), end: time.format(end),
  });
}
