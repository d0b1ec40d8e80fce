// Participant tiles: video (or a name placeholder), name label, muted / host marks,
// the pin and spotlight buttons (spotlight.js gives them their labels and work).

import { icon } from './icons.js';
import { t } from './i18n.js';

function initials(name) {
  const words = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const letters = words.slice(0, 2).map((w) => w[0]);
  return (letters.join('') || '?').toUpperCase();
}

// A stable pleasant colour per participant for the placeholder.
function hue(text) {
  let h = 0;
  for (const ch of String(text)) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

/** What a tile says instead of a video the server holds back for us. */
function pausedText(reason) {
  if (reason === 'audio_only') return t('quality.paused_audio_only');
  if (reason === 'save_data') return t('quality.paused_save_data');
  return reason ? t('quality.paused_weak') : '';
}

export class Tile {
  constructor(participant, { self = false } = {}) {
    this.self = self;
    this.participant = { ...participant };
    this.audioTrack = null;
    this.videoTrack = null;
    this.pausedReason = null; // the server holds this video back for us: 'weak' | 'audio_only'
    this.el = document.createElement('div');
    this.el.className = 'tile' + (self ? ' tile-self' : '');
    this.el.dataset.participantId = participant.id;
    this.el.setAttribute('role', 'group'); // named by update(): the person's name
    this.el.innerHTML = `
      <video class="tile-video" autoplay playsinline muted></video>
      <div class="tile-placeholder"><span class="avatar"></span></div>
      <div class="tile-hand" hidden>${icon('hand')}<b class="tile-hand-order"></b></div>
      <div class="tile-weak" hidden>${icon('signal-weak')}<span class="tile-weak-text"></span></div>
      <p class="tile-paused" hidden></p>
      <div class="tile-actions">
        <button type="button" class="tile-action" data-action="pin">${icon('pin')}</button>
        <button type="button" class="tile-action" data-action="spotlight" hidden>${icon('spotlight')}</button>
      </div>
      <span class="tile-focus-badge" hidden></span>
      <div class="tile-label">
        <span class="tile-screen" hidden>${icon('screen')}</span>
        <span class="tile-muted" hidden>${icon('mic-off')}</span>
        <span class="tile-host" hidden>${icon('host')}</span>
        <span class="tile-name"></span>
        <span class="tile-speaking-note sr-only" hidden></span>
      </div>`;
    this.video = this.el.querySelector('video');
    if (self) {
      this.video.classList.add('mirrored');
      // Our own microphone's level (speakers.js watchOwnLevel), for the eye only.
      this.el.insertAdjacentHTML('beforeend', '<div class="tile-level" aria-hidden="true"><span class="tile-level-fill"></span></div>');
    }
    this.audio = null;
    if (!self) {
      this.audio = document.createElement('audio');
      this.audio.autoplay = true;
      this.el.append(this.audio);
    }
    this.el.querySelector('.avatar').style.setProperty('--avatar-hue', String(hue(participant.user_id || participant.id)));
    this.update(participant);
  }

  get id() {
    return this.participant.id;
  }

  update(participant) {
    Object.assign(this.participant, participant);
    const p = this.participant;
    const name = p.name || '…';
    const shown = this.self ? `${name} (${t('call.you')})` : name;
    this.el.querySelector('.tile-name').textContent = shown;
    this.el.querySelector('.tile-name').title = shown;
    this.el.setAttribute('aria-label', shown);
    this.el.querySelector('.avatar').textContent = initials(p.name);
    const muted = this.el.querySelector('.tile-muted');
    muted.hidden = p.audio !== false;
    muted.title = t('call.muted');
    const host = this.el.querySelector('.tile-host');
    host.hidden = !p.host;
    host.title = p.cohost ? t('people.cohost') : t('call.host');
    const screen = this.el.querySelector('.tile-screen');
    screen.hidden = !p.screen;
    screen.title = t('people.sharing');
    this.el.dataset.audio = String(p.audio !== false);
    this.el.dataset.video = String(p.video !== false);
    this.refresh();
  }

  /** Show the raised hand with its place in the queue (0-based), or hide it with -1. */
  setHand(index) {
    const hand = this.el.querySelector('.tile-hand');
    hand.hidden = index < 0;
    this.el.classList.toggle('tile-hand-raised', index >= 0);
    this.el.dataset.hand = index >= 0 ? String(index + 1) : '';
    if (index >= 0) {
      hand.querySelector('.tile-hand-order').textContent = String(index + 1);
      hand.title = t('people.hand_raised', { n: index + 1 });
    }
  }

  /** Show (or hide) that this person's connection is weak. */
  setWeak(weak, bad = false) {
    const badge = this.el.querySelector('.tile-weak');
    badge.hidden = !weak;
    badge.querySelector('.tile-weak-text').textContent = t(bad ? 'quality.tile_bad' : 'quality.tile_weak');
    this.el.dataset.weak = String(Boolean(weak));
    badge.dataset.level = bad ? 'bad' : 'weak';
  }

  /** The server holds this video back for us ('weak' link, 'audio_only' chosen) or not (null):
   * the tile says so instead of showing a frozen picture. */
  setPaused(reason) {
    this.pausedReason = reason || null;
    const note = this.el.querySelector('.tile-paused');
    note.hidden = !this.pausedReason;
    note.textContent = pausedText(this.pausedReason);
    this.el.dataset.paused = this.pausedReason || '';
    this.refresh();
  }

  /** Ring the tile while its person speaks; screen readers hear "speaking" after the name. */
  setSpeaking(speaking) {
    const on = Boolean(speaking);
    if (this.el.classList.contains('tile-speaking') === on) return;
    this.el.classList.toggle('tile-speaking', on);
    this.el.dataset.speaking = String(on);
    const note = this.el.querySelector('.tile-speaking-note');
    note.hidden = !on;
    note.textContent = on ? `, ${t('call.speaking')}` : '';
  }

  /** Our own tile: the microphone's level now, 0..1. */
  setLevel(level) {
    const meter = this.el.querySelector('.tile-level');
    if (!meter) return;
    const rounded = Math.round(level * 20) / 20;
    if (meter.dataset.level === String(rounded)) return;
    meter.dataset.level = String(rounded);
    meter.style.setProperty('--level', String(rounded));
  }

  /** Draw the eye to this tile for a few seconds (a nudge). */
  flash() {
    this.el.classList.remove('tile-flash');
    void this.el.offsetWidth; // restart the animation
    this.el.classList.add('tile-flash');
    clearTimeout(this.flashTimer);
    this.flashTimer = setTimeout(() => this.el.classList.remove('tile-flash'), 4000);
  }

  /** Attach (or detach with null) a media track of `kind` ('audio' | 'video'). */
  setTrack(kind, track) {
    if (kind === 'video') {
      if (this.videoTrack === track) return;
      if (this.videoTrack) this.videoTrack.removeEventListener('unmute', this.onVideoChange);
      if (this.videoTrack) this.videoTrack.removeEventListener('mute', this.onVideoChange);
      this.videoTrack = track;
      this.video.srcObject = track ? new MediaStream([track]) : null;
      if (track) {
        this.onVideoChange = this.onVideoChange || (() => this.refresh());
        track.addEventListener('unmute', this.onVideoChange);
        track.addEventListener('mute', this.onVideoChange);
        this.video.play().catch(() => {});
      }
    } else if (this.audio) {
      if (this.audioTrack === track) return;
      this.audioTrack = track;
      this.audio.srcObject = track ? new MediaStream([track]) : null;
      if (track) this.playAudio();
    }
    this.refresh();
  }

  playAudio() {
    if (!this.audio || !this.audio.srcObject) return;
    this.audio.play().catch((error) => {
      if (error && error.name === 'NotAllowedError') {
        document.dispatchEvent(new CustomEvent('urok:sound-blocked'));
      }
    });
  }

  refresh() {
    const showVideo = Boolean(this.videoTrack)
      && this.videoTrack.readyState === 'live'
      && (this.self ? this.videoTrack.enabled : !this.videoTrack.muted)
      && this.participant.video !== false
      && !this.pausedReason;
    this.el.classList.toggle('has-video', showVideo);
  }

  remove() {
    this.setTrack('video', null);
    this.setTrack('audio', null);
    this.el.remove();
  }
}

/** A shared screen: big on the stage, or small in the filmstrip. */
export class ScreenTile {
  constructor(participantId, name, { self = false } = {}) {
    this.id = participantId;
    this.self = self;
    this.track = null;
    this.el = document.createElement('div');
    this.el.className = 'tile tile-screen-share';
    this.el.dataset.screenOf = participantId;
    this.el.setAttribute('role', 'group');
    this.el.innerHTML = `
      <video class="tile-video" autoplay playsinline muted></video>
      <p class="tile-paused" hidden></p>
      <div class="tile-actions">
        <button type="button" class="tile-action" data-action="pin">${icon('pin')}</button>
        <button type="button" class="tile-action" data-action="spotlight" hidden>${icon('spotlight')}</button>
      </div>
      <span class="tile-focus-badge" hidden></span>
      <div class="tile-label"><span class="tile-screen">${icon('screen')}</span><span class="tile-name"></span></div>`;
    this.video = this.el.querySelector('video');
    this.pausedReason = null;
    this.setName(name);
  }

  /** As Tile.setPaused: the server holds this screen share back for us. */
  setPaused(reason) {
    if (this.pausedReason === (reason || null)) return;
    this.pausedReason = reason || null;
    const note = this.el.querySelector('.tile-paused');
    note.hidden = !this.pausedReason;
    note.textContent = pausedText(this.pausedReason);
    this.el.dataset.paused = this.pausedReason || '';
    this.el.classList.toggle('has-video', Boolean(this.track) && !this.pausedReason);
  }

  setName(name) {
    this.name = name;
    const shown = this.self ? t('screen.yours') : t('screen.of', { name: name || '…' });
    this.el.querySelector('.tile-name').textContent = shown;
    this.el.setAttribute('aria-label', shown);
  }

  setTrack(track) {
    if (this.track === track) return;
    this.track = track;
    this.video.srcObject = track ? new MediaStream([track]) : null;
    if (track) this.video.play().catch(() => {});
    this.el.classList.toggle('has-video', Boolean(track) && !this.pausedReason);
  }

  remove() {
    this.setTrack(null);
    this.el.remove();
  }
}

/** Lay tiles out as large as possible for the stage size (16:9 tiles); in
 * filmstrip mode (someone shares a screen) they are small, in one row. */
export function layoutGrid(grid, stage, { filmstrip = false } = {}) {
  // Tiles of people in other breakout rooms are hidden, of other grid pages off the
  // page (gridpages.js): neither takes a place.
  let n = 0;
  for (const child of grid.children) if (!child.hidden && !child.hasAttribute('data-off-page')) n += 1;
  if (!n) return;
  const gap = 10;
  if (filmstrip) {
    // One row under the shared screen: as many tiles as fit the stage's width (a side
    // panel open makes it narrower), smaller down to 128 px wide; more scroll.
    const h = Math.max(72, Math.min(140, Math.floor(stage.clientHeight * 0.2)));
    const fit = Math.floor((stage.clientWidth - 2 * gap - gap * (n - 1)) / n);
    const w = Math.max(128, Math.min(Math.floor((h * 16) / 9), fit));
    grid.style.setProperty('--tile-w', `${w}px`);
    grid.style.setProperty('--tile-h', `${Math.min(h, Math.floor((w * 9) / 16))}px`);
    return;
  }
  const width = stage.clientWidth - 2 * gap;
  const height = stage.clientHeight - 2 * gap;
  if (width <= 0 || height <= 0) return;
  let best = { w: 0, cols: 1 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const cellW = (width - gap * (cols - 1)) / cols;
    const cellH = (height - gap * (rows - 1)) / rows;
    const w = Math.min(cellW, (cellH * 16) / 9);
    if (w > best.w) best = { w, cols };
  }
  grid.style.setProperty('--tile-w', `${Math.floor(best.w)}px`);
  grid.style.setProperty('--tile-h', `${Math.floor((best.w * 9) / 16)}px`);
  grid.style.setProperty('--cols', String(best.cols));
}
