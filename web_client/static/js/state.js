// The call page's state: one object every module reads and writes (so no
// module keeps its own copy of who is in the call), the page's components,
// and the small questions every module asks of the state.

import { roomName } from './breakout.js';

export const $ = (id) => document.getElementById(id);

const params = new URLSearchParams(location.search);
/** ?lang= in the address: the language the embedding page chose wins over the server's. */
export const langOverride = params.get('lang');
export const lessonId = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] || '');
export const DEFAULT_PERMISSIONS = { unmute: true, video: true, screen: false, chat: true };

/**
 * The components of the page, made once by call.js (wire* functions): the
 * chat panel (Chat), the recording control (RecordingControl), the people
 * panel (People), the rights panel (Rights) and the breakout panel
 * (BreakoutPanel). null until then.
 */
export const views = { chat: null, recording: null, people: null, rights: null, breakoutPanel: null };

/**
 * The state of the call as this page sees it. call.js also exposes this very
 * object as window.urok: the browser tests (tests/browser) and people
 * debugging read it there, e.g. window.urok.pcs.subscriber.getStats().
 */
export const urok = {
  state: 'loading', // loading | prejoin | joining | waiting | in-call | left | ended | ...
  lessonId,
  claims: {}, // the join token's claims (name, role), before the server says more
  info: null, // GET /call/{id}/info: the lesson and whether it can be joined
  canJoin: false,
  joining: false,
  previewReady: false, // the pre-join preview has its devices (tests wait for it)
  ws: null, // the Signalling of this call, or null
  // Coming back after a dropped connection (reconnect.js, docs/protocol.md "resume"):
  // joined.resume ({session, grace_s, retry_s}), whether we are trying now, the tries
  // and the resumes so far, and the last chat sequence number seen.
  resume: null,
  reconnecting: false,
  serverRestarting: false, // told `restarting`: the node is stopping, we come back
  reconnectAttempts: 0,
  resumes: 0,
  lastChatSeq: 0,
  republish: false, // a publish the drop cut short: offered again once resumed
  // A broken media path (icerestart.js, docs/protocol.md "ice_restart"): peer
  // connections replaced so far, and whether offers for the old subscriber are dropped.
  iceRestarts: 0,
  subscriberRestarting: false,
  self: null,
  call: null,
  iceServers: [],
  pcs: { publisher: null, subscriber: null },
  published: [], // [{transceiver, source}]
  // How many simulcast layers the server asked each source to send (publish_layers).
  publishLayers: {},
  tracks: {}, // the latest subscribe_offer's mid -> {participant_id, kind, source}
  tiles: new Map(), // participant id -> Tile (self included)
  local: { stream: null, audio: null, video: null, screen: null, problems: {} },
  prefs: { audioId: '', videoId: '' },
  // The pre-join screen's choices (prejoinmedia.js): microphone and camera on, the
  // meter's level, what the host has pupils join without, the speakers, test sounds.
  prejoin: {
    mic: true, camera: true, level: 0, forcedMuted: false, forcedCameraOff: false, speakerId: '', tested: 0,
  },
  polls: [], // the open polls of our room, as the server shows them to us (polls.js)
  errors: [],
  hands: [], // participant ids with a raised hand, in the order raised
  handAlerts: [], // hosts: the raised hands announced ({id, name, at, sound: whether it chimed})
  waiting: [], // hosts: who is in the waiting room
  settings: null, // the call's settings (waiting room, guests, permissions per role)
  permissions: { ...DEFAULT_PERMISSIONS }, // what this person may do now
  remoteScreens: new Map(), // participant id -> screen-share receiver track
  screenOrder: [], // who shares a screen, in the order they started
  pinnedScreen: null, // the screen share clicked to be the big one
  panel: null, // the open side panel: chat | breakout | people | rights | null
  breakout: null, // the latest breakout state (docs/protocol.md "Breakout rooms")
  room: null, // the breakout room we are in now (null: the main room)
  nudges: [], // nudged messages received
  beeped: false, // whether the last nudge could play its sound
  notices: [], // muted-by-host and permission notices shown
  // Our own link (docs/protocol.md "connection_quality"): its quality, the videos the
  // server holds back for us ([{participant_id, source}]) and whether we chose audio only.
  connection: {
    quality: 'good', level: 'good', paused: [], audioOnly: false, saveData: 'off',
  },
  saveData: 'off', // "save data" as the server last said (off, audio_screen, one_video)
  views: {}, // what the server was told of each remote video, by `${id}|${source}` (videoquality.js)
  qualities: {}, // hosts: participant id -> the quality of their link, when told
  levels: {}, // hosts: participant id -> good, weak or bad (protocol 1.4), when told
  // Who speaks now, loudest first (docs/protocol.md "active_speakers"): [{id, level}].
  speakers: [],
  ownLevel: 0, // our own microphone's level on our tile (speakers.js), 0 while muted
  layout: 'grid', // grid | speaker (the speaker large, everyone else small)
  // The large tile by choice (spotlight.js, focus.js): our own pin, the host's spotlight for
  // the room ({participant_id, source, by}), the one shown for them now ({id, source}).
  pin: null,
  spotlight: null,
  focus: null,
  minimised: false, // the call as a small floating view (minimise.js)
  get participants() {
    const out = {};
    for (const [id, tile] of this.tiles) out[id] = { ...tile.participant };
    return out;
  },
  get chat() {
    return views.chat ? views.chat.messages : [];
  },
  get unread() {
    return views.chat ? views.chat.unread : 0;
  },
  get isHost() {
    return Boolean(this.self && this.self.host);
  },
  /** The running recording (docs/protocol.md "recording"), or null. */
  get recording() {
    return views.recording ? views.recording.state : null;
  },
  /** Seconds it has been recording, by this page's clock (null: not recording). */
  get recordingSeconds() {
    return views.recording ? views.recording.seconds : null;
  },
  get roomName() {
    return this.room ? roomName(this.breakout, this.room) : null;
  },
  /** Where a participant (by connection id) is now: a room id, or null for the main room. */
  roomOf(id) {
    const tile = this.tiles.get(id);
    return tile ? roomOfParticipant(tile.participant) : null;
  },
  /** Who is in which room now: {room id or "": [participant ids]}. */
  get whereabouts() {
    const out = {};
    for (const [id, tile] of this.tiles) {
      const room = roomOfParticipant(tile.participant) || '';
      (out[room] = out[room] || []).push(id);
    }
    return out;
  },
};

/** Send `message` over the call's connection: its id, or null when offline. */
export function sendAction(message) {
  if (!urok.ws) return null;
  return urok.ws.sendWithId(message);
}

/** Is our microphone ('audio') or camera ('video') sending now? */
export function isOn(kind) {
  const track = urok.local[kind];
  return Boolean(track && track.enabled && track.readyState === 'live');
}

/** May we turn `kind` (audio | video | screen) on? Hosts always may. */
export function allowed(kind) {
  if (urok.isHost) return true;
  return Boolean(urok.permissions[kind === 'audio' ? 'unmute' : kind]);
}

/** Why the server holds back `participantId`'s `source` video for us: 'audio_only', 'weak' or null. */
export function pausedReason(participantId, source) {
  const own = urok.connection;
  const held = own.paused.some((p) => p.participant_id === participantId && p.source === source);
  if (!held) return null;
  if (own.audioOnly) return 'audio_only';
  return own.saveData && own.saveData !== 'off' ? 'save_data' : 'weak';
}

// ---------------------------------------------------------------- who is in which breakout room

/** The room we are in now (null: the main room, or rooms are closed). */
export function currentRoom() {
  return urok.breakout && urok.breakout.opened ? urok.room || null : null;
}

/**
 * Where someone is now. Ourselves: the `room` of the latest breakout message;
 * everyone else: the assignments (by user id), where the server also puts
 * hosts who visit a room.
 */
export function roomOfParticipant(p) {
  const state = urok.breakout;
  if (!state || !state.opened || !p) return null;
  if (urok.self && p.id === urok.self.id) return urok.room || null;
  const assignments = state.assignments || {};
  return (p.user_id && assignments[p.user_id]) || null;
}

/** Where someone is meant to go (the plan while the rooms are closed; where they are while open). */
export function plannedRoomOf(p) {
  const state = urok.breakout;
  if (!state) return null;
  if (state.opened) return roomOfParticipant(p);
  const assignments = state.assignments || {};
  return (p.user_id && assignments[p.user_id]) || null;
}
