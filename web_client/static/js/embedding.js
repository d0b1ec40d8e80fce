// The call page's side of the journal's embedding API (docs/embedding.md; the
// journal's side is /embed.js). Commands come in by postMessage, events go out.
//
// Who may drive the page: its parent window only, and only when the parent's
// origin is one of the lesson's integration's `origins` (GET /call/{id}/info,
// `embed.origins`) or the page's own origin (the demo journal). Events are
// posted to that exact origin, never '*'. Anything else is ignored and counted
// (urok.embed.ignored), with one console warning per origin.

import * as i18n from './i18n.js';
import { openPanel } from './layout.js';
import { defaultTitle } from './recording.js';
import { endForEveryone, leave } from './session.js';
import { tapMessages } from './signalling.js';
import {
  $, isOn, lessonId, sendAction, urok,
} from './state.js';
import { joinToken } from './token.js';

const VERSION = 1;
const MAX_QUEUED = 20; // commands that came before the allowed origins were known
const MAX_REFS = 50; // commands whose server errors we still wait for

/** What the page knows of its embedder (also window.urok.embed, for tests). */
const embed = {
  allowed: null, // the origins that may drive this page; null until known
  parentOrigin: null, // the parent's origin, once it is known and allowed
  ready: false,
  handled: 0, // commands carried out
  ignored: 0, // messages refused (wrong window or origin)
  ignoredOrigins: {}, // origin -> how many
  events: 0, // events posted
};
// Also a test hook: window.urok.embed (tests/browser/test_embedding.py reads it).
urok.embed = embed;

let queued = [];
const refs = new Map(); // ref of a message we sent -> the command that sent it
let present = new Set(); // participants announced to the parent (not us)
let hands = [];
let recordingId = null;
let endReason = '';

function framed() {
  return window.parent !== window;
}

// ---------------------------------------------------------------- events out

let early = []; // events before the parent's origin was known (e.g. a lesson found ended)
let parentRefused = false; // the browser named a parent origin that is not allowed

function post(name, data = {}) {
  if (!framed()) return;
  if (!embed.parentOrigin) {
    if (!parentRefused && early.length < MAX_QUEUED) early.push([name, data]);
    return;
  }
  embed.events += 1;
  window.parent.postMessage({ urok: 'event', version: VERSION, name, data }, embed.parentOrigin);
}

function count() {
  return urok.tiles.size;
}

function nameOf(id) {
  const tile = urok.tiles.get(id);
  return tile ? tile.participant.name : '';
}

function announceReady() {
  if (embed.ready || !embed.parentOrigin) return;
  embed.ready = true;
  post('ready', {
    lesson_id: lessonId,
    state: urok.state,
    you: { name: urok.claims.name || '', role: urok.claims.role || '' },
  });
  const before = early;
  early = [];
  for (const [name, data] of before) post(name, data);
}

const LEFT_REASONS = {
  left: 'hangup', removed: 'removed', denied: 'denied', lost: 'connection_lost', replaced: 'replaced',
};

/** The page moved from `before` to `after` (page.js setState, seen on #app's data-state). */
function onState(before, after) {
  if (after === 'in-call' && before !== 'in-call') {
    present = new Set([...urok.tiles.keys()].filter((id) => !urok.self || id !== urok.self.id));
    hands = [...urok.hands];
    recordingId = urok.recording ? urok.recording.id : null;
    const self = urok.self || {};
    post('joined', {
      you: { id: self.id, name: self.name, role: self.role, host: urok.isHost },
      participants: count(),
      recording: urok.recording ? { id: urok.recording.id, title: urok.recording.title } : null,
    });
  } else if (after === 'waiting' && before !== 'waiting') {
    post('waiting');
  } else if (LEFT_REASONS[after] && (before === 'in-call' || before === 'waiting')) {
    post('left', { reason: LEFT_REASONS[after] });
    post('readyToClose');
  } else if (after === 'ended' && before !== 'ended') {
    if (before === 'in-call') post('left', { reason: 'lesson_ended' });
    post('lessonEnded', { reason: endReason || 'already' });
    post('readyToClose');
  } else if (after === 'error') {
    const last = urok.errors[urok.errors.length - 1] || {};
    post('error', { code: last.code || 'generic', message: last.message || '' });
  }
}

function watchState() {
  const app = $('app');
  let current = app.dataset.state || urok.state;
  new MutationObserver(() => {
    const next = app.dataset.state;
    if (next === current) return;
    const before = current;
    current = next;
    onState(before, next);
  }).observe(app, { attributes: true, attributeFilter: ['data-state'] });
}

function onHands(queue) {
  const before = new Set(hands);
  hands = Array.isArray(queue) ? [...queue] : [];
  for (const id of hands) {
    if (!before.has(id)) post('handRaised', { id, name: nameOf(id), queue: hands });
  }
  for (const id of before) {
    if (!hands.includes(id)) post('handLowered', { id, name: nameOf(id), queue: hands });
  }
}

function onRecording(recording, reason) {
  const id = recording ? recording.id : null;
  if (id === recordingId) return;
  recordingId = id;
  if (recording) post('recordingStarted', { id: recording.id, title: recording.title || '' });
  else post('recordingStopped', { reason: reason || null });
}

function onChat(message) {
  const data = message && message.data;
  if (!data || message.kind !== 'system') return;
  if (data.event === 'recording_ready') {
    post('recordingReady', {
      id: data.recording_id,
      title: data.title || '',
      url: data.url ? new URL(data.url, location.origin).href : null,
    });
  } else if (data.event === 'recording_failed') {
    post('error', { code: 'recording_failed', message: data.title || '' });
  }
}

/** Every server message, after the page handled it: what the parent hears of it. */
function onServerMessage(msg, sig) {
  if (msg.type === 'call_ended') endReason = msg.reason || '';
  if (sig !== urok.ws || urok.state !== 'in-call') return;
  switch (msg.type) {
    case 'participant_joined': {
      const p = msg.participant;
      if (!p || (urok.self && p.id === urok.self.id) || present.has(p.id)) return;
      present.add(p.id);
      post('participantJoined', {
        id: p.id, name: p.name, role: p.role, participants: count(),
      });
      break;
    }
    case 'participant_left':
      if (!present.delete(msg.participant_id)) return;
      post('participantLeft', { id: msg.participant_id, participants: count() });
      break;
    case 'hands': onHands(msg.queue); break;
    case 'recording': onRecording(msg.recording || null, msg.reason); break;
    case 'chat_message': onChat(msg.message); break;
    case 'error':
      if (refs.has(msg.ref)) {
        post('error', { command: refs.get(msg.ref), code: msg.code, message: msg.message || '' });
        refs.delete(msg.ref);
      }
      break;
    default:
  }
}

// ---------------------------------------------------------------- commands in

function send(command, message) {
  const ref = sendAction(message);
  if (!ref) return 'not_connected';
  refs.set(ref, command);
  if (refs.size > MAX_REFS) refs.delete(refs.keys().next().value);
  return null;
}

function press(id) {
  const button = $(id);
  if (button.disabled) return 'not_permitted';
  button.click();
  return null;
}

function startRecording(args) {
  const message = { type: 'recording_start' };
  const title = typeof args.title === 'string' ? args.title.trim() : '';
  message.title = title || defaultTitle(urok.call || (urok.info && urok.info.lesson) || null);
  if (Array.isArray(args.visibility)) message.visibility = args.visibility;
  return send('startRecording', message);
}

/** Each command: whether only hosts may, and what it does (an error code, or null when done). */
const COMMANDS = {
  hangUp: [false, () => { leave(); return null; }],
  endLesson: [true, () => (endForEveryone() ? null : 'not_connected')],
  muteAll: [true, () => send('muteAll', { type: 'mute_all' })],
  toggleMic: [false, () => press('toggle-mic')],
  toggleCamera: [false, () => press('toggle-camera')],
  openChat: [false, () => { openPanel('chat'); return null; }],
  closeChat: [false, () => { if (urok.panel === 'chat') openPanel(null); return null; }],
  startRecording: [true, startRecording],
  stopRecording: [true, () => send('stopRecording', { type: 'recording_stop' })],
  // The name is the journal's, signed into the join token: no renaming in the call.
  setDisplayName: [false, () => 'not_supported'],
};

function run(name, args) {
  if (name === 'hello') return; // embed.js's greeting: its origin is known now (accept)
  const entry = Object.prototype.hasOwnProperty.call(COMMANDS, name) ? COMMANDS[name] : null;
  let error = null;
  if (!entry) error = 'unknown_command';
  else if (urok.state !== 'in-call' && !(name === 'hangUp' && urok.state === 'waiting')) error = 'not_in_call';
  else if (entry[0] && !urok.isHost) error = 'not_host';
  else error = entry[1](args && typeof args === 'object' ? args : {});
  if (error) {
    post('error', { command: name, code: error, message: i18n.has(`errors.${error}`) ? i18n.t(`errors.${error}`) : '' });
    return;
  }
  embed.handled += 1;
  post('commandDone', {
    command: name, audio: isOn('audio'), video: isOn('video'), panel: urok.panel,
  });
}

function ignore(origin, why) {
  embed.ignored += 1;
  const key = origin || 'null';
  embed.ignoredOrigins[key] = (embed.ignoredOrigins[key] || 0) + 1;
  if (embed.ignoredOrigins[key] === 1) {
    console.warn(`urok: embedding: ignored a command from ${key} (${why})`);
  }
}

/** A command from the parent at an allowed origin (the first fixes the parent's origin). */
function accept(event) {
  if (!embed.allowed.includes(event.origin)) {
    ignore(event.origin, 'origin not allowed');
    return;
  }
  if (embed.parentOrigin && event.origin !== embed.parentOrigin) {
    ignore(event.origin, 'not the parent origin');
    return;
  }
  if (!embed.parentOrigin) {
    embed.parentOrigin = event.origin;
    announceReady();
  }
  run(event.data.name, event.data.args);
}

function onMessage(event) {
  const data = event.data;
  if (!data || typeof data !== 'object' || data.urok !== 'command' || typeof data.name !== 'string') return;
  if (!framed() || event.source !== window.parent) {
    ignore(event.origin, 'not the parent window');
    return;
  }
  if (!embed.allowed) {
    if (queued.length < MAX_QUEUED) queued.push(event);
    return;
  }
  accept(event);
}

async function learnAllowedOrigins() {
  let origins = [];
  try {
    const response = await fetch(`/call/${encodeURIComponent(lessonId)}/info`, {
      headers: { Authorization: `Bearer ${joinToken()}` },
      cache: 'no-store',
    });
    const body = response.ok ? await response.json() : {};
    if (body.embed && Array.isArray(body.embed.origins)) {
      origins = body.embed.origins.filter((o) => typeof o === 'string' && o !== '*');
    }
  } catch {
    // Unreachable now: only our own origin may drive the page.
  }
  embed.allowed = [location.origin, ...origins];
  // Where the browser names the parent's origin, trust that over any message.
  const ancestors = location.ancestorOrigins;
  const parent = ancestors && ancestors.length ? ancestors[0] : null;
  if (parent && embed.allowed.includes(parent)) {
    embed.parentOrigin = parent;
    announceReady();
  } else if (parent) {
    embed.allowed = []; // a parent not allowed: nothing it says is taken, nothing told
    parentRefused = true;
    early = [];
  }
  const waiting = queued;
  queued = [];
  for (const event of waiting) accept(event);
}

/** Listen for commands at once; learn who may send them (needs the join token). */
export function wireEmbedding() {
  window.addEventListener('message', onMessage);
  tapMessages(onServerMessage);
  watchState();
}

export function startEmbedding() {
  if (!framed() || embed.allowed) return;
  learnAllowedOrigins();
}
