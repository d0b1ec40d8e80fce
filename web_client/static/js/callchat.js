// The chat and recordings in the call: makes the chat panel (chat.js) and
// the recording control (recording.js), keeps the chat button's unread
// badge, and asks the server which finished recordings this person may open.

import { Chat, isRecordingReady } from './chat.js';
import * as i18n from './i18n.js';
import { openPanel } from './layout.js';
import { RecordingControl, withToken } from './recording.js';
import {
  $, currentRoom, lessonId, sendAction, urok, views,
} from './state.js';
import { joinToken } from './token.js';
import { toast } from './ui.js';

/** Guests may never open recordings; everybody else with a school profile may (by role). */
function canWatchRecordings() {
  const role = (urok.self && urok.self.role) || urok.claims.role || '';
  return role !== 'guest';
}

let accessQuery = Promise.resolve();

/**
 * Ask the server which of the chat's recordings this person may watch
 * (GET /call/{id}/recordings lists exactly those), so a card for a recording
 * not open to one's role says so instead of linking to a 403.
 */
export function refreshRecordingAccess() {
  accessQuery = accessQuery.then(async () => {
    const token = joinToken();
    if (!views.chat || !token || !canWatchRecordings()) return;
    const ids = views.chat.recordingIds();
    if (!ids.length) return;
    let response;
    try {
      response = await fetch(`/call/${encodeURIComponent(lessonId)}/recordings`, {
        headers: { Authorization: `Bearer ${token}` },
        cache: 'no-store',
      });
    } catch {
      return; // Offline: the links stay; the server still checks.
    }
    let mine = null;
    if (response.ok) {
      const body = await response.json().catch(() => ({}));
      if (body && Array.isArray(body.recordings)) mine = new Set(body.recordings.map((r) => r.id));
    } else if (response.status === 403) {
      mine = new Set();
    }
    if (!mine || !views.chat) return;
    views.chat.setRecordingAccess(Object.fromEntries(ids.map((id) => [id, mine.has(id)])));
  }).catch((error) => console.warn('urok: recordings list failed', error));
  return accessQuery;
}

/** A chat_message from the server (a finished recording's card among them). */
export function onChatMessage(msg) {
  if (!views.chat || !msg.message) return;
  const message = msg.message;
  if (typeof message.room !== 'string' && typeof msg.room === 'string') message.room = msg.room;
  // What a resume names as the last message seen (docs/protocol.md "resume").
  if (Number.isInteger(message.seq)) urok.lastChatSeq = Math.max(urok.lastChatSeq, message.seq);
  views.chat.add(message);
  if (isRecordingReady(message)) onRecordingReady(message);
}

/** A recording is finished: its card is in the chat; say so when the chat is closed. */
function onRecordingReady(message) {
  refreshRecordingAccess();
  if (views.recording) views.recording.finished();
  if (urok.state !== 'in-call' || urok.panel === 'chat') return;
  const title = (message.data && message.data.title) || '';
  toast(i18n.t('recording.toast_ready', { title }), 'info', {
    timeoutMs: 10000,
    action: { label: i18n.t('recording.open_chat'), run: () => openPanel('chat') },
  });
}

function renderChatBadge() {
  const badge = $('chat-badge');
  const unread = views.chat ? views.chat.unread : 0;
  badge.hidden = !unread;
  badge.textContent = unread > 99 ? '99+' : String(unread);
  badge.title = i18n.t('chat.unread', { count: unread });
}

export function wireChat() {
  views.chat = new Chat({
    send: (text) => sendAction({ type: 'chat_send', text }),
    selfId: () => (urok.self ? urok.self.id : ''),
    onChange: renderChatBadge,
    recordings: {
      url: (path) => withToken(path, joinToken()),
      canWatch: () => canWatchRecordings(),
    },
  });
  views.recording = new RecordingControl({
    send: (message) => sendAction(message),
    isHost: () => urok.state === 'in-call' && urok.isHost,
    selfId: () => (urok.self ? urok.self.id : ''),
    call: () => urok.call || (urok.info && urok.info.lesson) || null,
    inBreakoutRoom: () => Boolean(currentRoom()),
  });
}
