// The end of the lesson, one calm screen for everyone: "Урок завершён", no
// toast or banner left over, the call's chat history (GET /call/{id}/chat) and
// the recordings this person may watch (GET /call/{id}/recordings), both asked
// with the join token, which the server accepts for them after the lesson
// (chat_history_days). The same screen for whoever opens the link afterwards.
// Inside the journal's frame it says nothing about closing tabs.

import * as i18n from './i18n.js';
import { onLessonEnded, setState, showMessage } from './page.js';
import { withToken } from './recording.js';
import { $, lessonId, urok, views } from './state.js';
import { joinToken } from './token.js';
import { clearBanners } from './ui.js';

const TEXTS = {
  ended_by_host: 'ended.text_by_host',
  ended_by_you: 'ended.text_by_you',
  time_over: 'ended.text_time_over',
  already: 'ended.text_already',
};

function embedded() {
  try {
    return window.top !== window.self;
  } catch {
    return true; // a foreign parent: embedded
  }
}

async function fetchJson(path) {
  const response = await fetch(path, {
    headers: { Authorization: `Bearer ${joinToken()}` },
    cache: 'no-store',
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

/** The recordings we may watch, as links (a guest's or a refused list: the section stays hidden). */
async function showRecordings() {
  const section = $('ended-recordings');
  const list = $('ended-recordings-list');
  list.replaceChildren();
  let recordings = [];
  try {
    const body = await fetchJson(`/call/${encodeURIComponent(lessonId)}/recordings`);
    recordings = Array.isArray(body.recordings) ? body.recordings : [];
  } catch {
    section.hidden = true;
    return;
  }
  const ready = recordings.filter((r) => r.status === 'ready' && r.url);
  for (const recording of ready) {
    const item = document.createElement('li');
    const link = document.createElement('a');
    link.href = withToken(recording.url, joinToken());
    link.target = '_blank';
    link.rel = 'noopener';
    link.className = 'ended-recording-link';
    link.textContent = recording.title || i18n.t('recording.untitled');
    item.append(link);
    list.append(item);
  }
  $('ended-recordings-none').hidden = ready.length > 0;
  section.hidden = false;
  urok.endedRecordings = ready.length;
}

/** The chat of the lesson, read-only, under the button that shows it. */
async function toggleChatHistory() {
  const button = $('ended-chat');
  const list = $('ended-chat-list');
  const open = button.getAttribute('aria-expanded') !== 'true';
  button.setAttribute('aria-expanded', String(open));
  list.hidden = !open;
  if (!open) return;
  list.replaceChildren();
  let messages = [];
  try {
    const body = await fetchJson(`/call/${encodeURIComponent(lessonId)}/chat`);
    messages = Array.isArray(body.messages) ? body.messages : [];
  } catch {
    list.append(Object.assign(document.createElement('li'), { textContent: i18n.t('ended.chat_failed') }));
    return;
  }
  if (!messages.length) {
    list.append(Object.assign(document.createElement('li'), { className: 'muted', textContent: i18n.t('ended.chat_empty') }));
  }
  for (const message of messages) list.append(views.chat.render(message, false));
  urok.endedChat = messages.length;
}

/**
 * The lesson is over (`reason`: the call_ended reason, 'ended_by_you' for the host who
 * ended it, or 'already' when it had ended before we came). The session is torn down.
 */
export function showEnded(reason = '') {
  $('toasts').replaceChildren();
  clearBanners();
  setState('ended');
  let text = i18n.t(TEXTS[reason] || 'ended.text');
  if (!embedded()) text += ` ${i18n.t('ended.close_tab')}`;
  showMessage({ title: i18n.t('ended.title'), text, iconName: 'check' });
  $('ended-extra').hidden = false;
  $('ended-chat').setAttribute('aria-expanded', 'false');
  $('ended-chat-list').hidden = true;
  $('ended-recordings').hidden = true;
  $('ended-recordings-none').hidden = true;
  if (joinToken() && urok.claims.role !== 'guest') showRecordings();
  $('ended-chat').hidden = !joinToken();
}

export function wireEnded() {
  $('ended-chat').addEventListener('click', () => toggleChatHistory());
  onLessonEnded(() => showEnded('already'));
}
