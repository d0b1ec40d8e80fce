// The in-call screen's layout: participant tiles in the grid, the big screen
// share with a filmstrip, and the side panels (chat, breakout, people, rights).

import { roomName } from './breakout.js';
import { stageFocus } from './focus.js';
import { paginate, wireGridPages } from './gridpages.js';
import * as i18n from './i18n.js';
import {
  $, currentRoom, pausedReason, plannedRoomOf, roomOfParticipant, urok, views,
} from './state.js';
import { renderMini } from './minimise.js';
import { applySink } from './prejoinmedia.js';
import { resumeSlots } from './slotaudio.js';
import { ScreenTile, Tile, layoutGrid } from './tiles.js';
import { updateVideoQualities } from './videoquality.js';

// ---------------------------------------------------------------- tiles

/** Only the people in our room are in the grid (the server only sends us their media). */
export function placeTile(tile) {
  const visible = tile.self || roomOfParticipant(tile.participant) === currentRoom();
  if (tile.el.hidden === !visible) return false;
  tile.el.hidden = !visible;
  return true;
}

export function upsertParticipant(participant) {
  let tile = urok.tiles.get(participant.id);
  if (tile) {
    tile.update(participant);
    placeTile(tile);
  } else {
    tile = new Tile(participant);
    applySink(tile.audio); // the speakers chosen before joining
    urok.tiles.set(participant.id, tile);
    $('grid').append(tile.el);
    tile.setHand(urok.hands.indexOf(participant.id));
    tile.setWeak(urok.qualities[participant.id] === 'weak', urok.levels[participant.id] === 'bad');
    tile.setPaused(pausedReason(participant.id, 'camera'));
    placeTile(tile);
    relayout();
  }
  return tile;
}

export function relayout() {
  const count = urok.tiles.size;
  $('participant-count').textContent = i18n.t('call.participants', { count });
  let here = 0;
  for (const tile of urok.tiles.values()) if (!tile.el.hidden) here += 1;
  const alone = $('alone-hint');
  alone.hidden = here > 1 || urok.state !== 'in-call';
  const aloneKey = urok.breakout && urok.breakout.opened ? 'breakout.alone_in_room' : 'call.alone';
  if (alone.dataset.i18n !== aloneKey) {
    alone.dataset.i18n = aloneKey;
    alone.textContent = i18n.t(aloneKey);
  }
  // A shared screen or the speaker layout: everyone else small, in one row.
  const stage = $('stage').classList;
  const filmstrip = stage.contains('presenting') || stage.contains('speaker-view');
  paginate(filmstrip);
  layoutGrid($('grid'), $('stage'), { filmstrip });
  updateVideoQualities();
  renderMini();
}

// ---------------------------------------------------------------- screen shares

const screenTiles = new Map(); // participant id -> ScreenTile

/** Big screen + filmstrip while anyone (we included) shares; the grid otherwise. */
export function renderScreens() {
  if (urok.state !== 'in-call' || !urok.self) return;
  // Our own screen is not shown back to us (a mirror in a mirror): the presenting bar
  // says we share it (publisher.js updateControls).
  const sharing = new Map(); // id -> track
  for (const [id, track] of urok.remoteScreens) {
    const tile = urok.tiles.get(id);
    if (tile && tile.participant.screen && track) sharing.set(id, track);
  }
  urok.screenOrder = urok.screenOrder.filter((id) => sharing.has(id));
  for (const id of sharing.keys()) if (!urok.screenOrder.includes(id)) urok.screenOrder.push(id);
  for (const [id, tile] of screenTiles) {
    if (!sharing.has(id)) {
      tile.remove();
      screenTiles.delete(id);
    }
  }
  // A pinned or spotlighted tile (focus.js) is the big one: a screen, or a camera
  // taking the screen's place on the stage (the screens go to the filmstrip).
  const focus = stageFocus();
  const focusCamera = focus && focus.source === 'camera' && sharing.size ? urok.tiles.get(focus.id) : null;
  let main = urok.pinnedScreen && sharing.has(urok.pinnedScreen)
    ? urok.pinnedScreen
    : urok.screenOrder[urok.screenOrder.length - 1];
  if (focus && focus.source === 'screen' && sharing.has(focus.id)) main = focus.id;
  if (focusCamera) main = null;
  for (const el of [...$('screen-stage').children]) {
    if (!el.classList.contains('tile-screen-share') && (!focusCamera || el !== focusCamera.el)) $('grid').append(el);
  }
  if (focusCamera && focusCamera.el.parentElement !== $('screen-stage')) $('screen-stage').replaceChildren(focusCamera.el);
  for (const [id, track] of sharing) {
    let tile = screenTiles.get(id);
    const name = id === urok.self.id ? urok.self.name : urok.tiles.get(id).participant.name;
    if (!tile) {
      tile = new ScreenTile(id, name, { self: id === urok.self.id });
      tile.el.addEventListener('click', () => {
        urok.pinnedScreen = id;
        renderScreens();
      });
      screenTiles.set(id, tile);
    }
    tile.setName(name);
    tile.setTrack(track);
    tile.setPaused(id === urok.self.id ? null : pausedReason(id, 'screen'));
    if (id === main) {
      if (tile.el.parentElement !== $('screen-stage')) $('screen-stage').replaceChildren(tile.el);
    } else if (tile.el.parentElement !== $('grid')) {
      $('grid').prepend(tile.el);
    }
  }
  const presenting = sharing.size > 0;
  $('stage').classList.toggle('presenting', presenting);
  $('screen-stage').hidden = !presenting;
  if (!presenting) $('screen-stage').replaceChildren();
  relayout();
}

/** Leaving: every tile (ours and the screen shares) goes. */
export function clearTiles() {
  for (const tile of urok.tiles.values()) tile.remove();
  urok.tiles.clear();
  for (const tile of screenTiles.values()) tile.remove();
  screenTiles.clear();
  urok.speakers = []; // nobody speaks in a call we have left
  $('stage').classList.remove('presenting');
  $('screen-stage').hidden = true;
}

// ---------------------------------------------------------------- side panels

export function openPanel(name) {
  urok.panel = name;
  $('side-panel').hidden = !name;
  for (const panel of ['chat', 'breakout', 'people', 'rights']) {
    $(`panel-${panel}`).hidden = panel !== name;
    $(`toggle-${panel}`).setAttribute('aria-pressed', String(panel === name));
    $(`toggle-${panel}`).classList.toggle('ctrl-active', panel === name);
  }
  if (views.chat) views.chat.setOpen(name === 'chat');
  if (name === 'people') renderPeople();
  if (name === 'breakout') renderBreakoutPanel();
  relayout();
}

export function togglePanel(name) {
  openPanel(urok.panel === name ? null : name);
}

export function renderPeople() {
  const people = views.people;
  if (!people || urok.state !== 'in-call' || !urok.self) return;
  const selfTile = urok.tiles.get(urok.self.id);
  const self = { ...urok.self, ...(selfTile ? selfTile.participant : {}), screen: Boolean(urok.local.screen) };
  const participants = [];
  for (const [id, tile] of urok.tiles) if (id !== urok.self.id) participants.push({ ...tile.participant });
  const opened = Boolean(urok.breakout && urok.breakout.opened);
  people.render({
    self,
    participants,
    hands: urok.hands,
    waiting: urok.isHost ? urok.waiting : [],
    isHost: urok.isHost,
    breakout: opened
      ? {
        here: currentRoom(),
        roomOf: (p) => roomOfParticipant(p),
        roomName: (id) => roomName(urok.breakout, id),
      }
      : null,
  });
  renderBreakoutPanel();
}

export function renderBreakoutPanel() {
  const panel = views.breakoutPanel;
  if (!panel || !urok.self || urok.state !== 'in-call' || urok.panel !== 'breakout') return;
  const everyone = [];
  const selfTile = urok.tiles.get(urok.self.id);
  for (const [id, tile] of urok.tiles) {
    const p = id === urok.self.id ? { ...urok.self, ...(selfTile ? selfTile.participant : {}) } : tile.participant;
    everyone.push({
      id,
      user_id: p.user_id,
      name: p.name,
      role: p.role,
      host: Boolean(p.host),
      cohost: Boolean(p.cohost),
      self: id === urok.self.id,
      room: plannedRoomOf(p),
    });
  }
  panel.render({ state: urok.breakout, room: currentRoom(), people: everyone });
}

/** The panel buttons, the "enable sound" banner and re-layout on resize. */
export function wireLayout() {
  for (const name of ['chat', 'breakout', 'people', 'rights']) {
    $(`toggle-${name}`).addEventListener('click', () => togglePanel(name));
  }
  $('waiting-pill').addEventListener('click', () => openPanel('people'));
  for (const close of document.querySelectorAll('.panel-close')) {
    close.addEventListener('click', () => openPanel(null));
  }
  $('enable-sound').addEventListener('click', () => {
    $('sound-blocked').hidden = true;
    for (const tile of urok.tiles.values()) tile.playAudio();
    resumeSlots();
  });
  // tiles.js says so when the browser refused to play a participant's sound.
  document.addEventListener('urok:sound-blocked', () => {
    if (urok.state === 'in-call') $('sound-blocked').hidden = false;
  });
  new ResizeObserver(() => relayout()).observe($('stage'));
  wireGridPages(relayout);
}
