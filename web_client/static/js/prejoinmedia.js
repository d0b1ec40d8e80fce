// The pre-join screen's choices: microphone and camera on or off before entering
// (the level meter follows the microphone: a switched-off track is silent), the
// speakers where the browser lets a page choose them (setSinkId), with a test
// sound, and the host's rules for pupils (GET /call/{id}/info `join`): what the
// host has pupils join without is off here too, and the page says so.

import * as i18n from './i18n.js';
import { setIcon } from './icons.js';
import { $, urok } from './state.js';

export const sinkSupported = () => typeof HTMLMediaElement !== 'undefined'
  && 'setSinkId' in HTMLMediaElement.prototype;

const TOGGLES = [
  // [choice, local track, button, label on, label off, icon on, icon off, forced off by]
  ['mic', 'audio', 'pj-mic', 'prejoin.mic_on', 'prejoin.mic_off', 'mic', 'mic-off', 'forcedMuted'],
  ['camera', 'video', 'pj-camera', 'prejoin.camera_on', 'prejoin.camera_off', 'camera', 'camera-off',
    'forcedCameraOff'],
];

function render() {
  const choices = urok.prejoin;
  for (const [choice, kind, id, onKey, offKey, iconOn, iconOff, forcedBy] of TOGGLES) {
    const present = Boolean(urok.local[kind]);
    const on = choices[choice] && present;
    const button = $(id);
    button.setAttribute('aria-pressed', String(on));
    button.disabled = choices[forcedBy] || !present;
    button.classList.toggle('pj-off', !on);
    const label = button.querySelector('.pj-label');
    label.dataset.i18n = on ? onKey : offKey;
    label.textContent = i18n.t(label.dataset.i18n);
    setIcon(button.querySelector('.icon-slot'), on ? iconOn : iconOff);
  }
  $('preview-off').hidden = Boolean(urok.local.video && choices.camera);
}

/** The preview's tracks follow the choices (joining keeps them: switched off, not gone). */
export function applyChoices() {
  const { audio, video } = urok.local;
  if (audio) audio.enabled = urok.prejoin.mic;
  if (video) video.enabled = urok.prejoin.camera;
  render();
}

/** The host's rules for how pupils enter (the server applies them too, on entry). */
export function applyJoinRules(info) {
  const join = (info && info.join) || {};
  const choices = urok.prejoin;
  choices.forcedMuted = join.audio === false;
  choices.forcedCameraOff = join.video === false;
  if (choices.forcedMuted) choices.mic = false;
  if (choices.forcedCameraOff) choices.camera = false;
  let key = '';
  if (choices.forcedMuted && choices.forcedCameraOff) key = 'prejoin.join_both_note';
  else if (choices.forcedMuted) key = 'prejoin.join_muted_note';
  else if (choices.forcedCameraOff) key = 'prejoin.join_camera_off_note';
  const note = $('pj-join-rule');
  note.hidden = !key;
  note.textContent = key ? `${i18n.t(key)} ${i18n.t('prejoin.join_rule_hint')}` : '';
  applyChoices();
}

/** The speakers to choose from (only where the browser can play through another one). */
export async function fillSpeakers() {
  const row = $('speaker-row');
  row.hidden = !sinkSupported();
  if (row.hidden) return;
  const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
  const outputs = devices.filter((d) => d.kind === 'audiooutput' && d.deviceId && d.deviceId !== 'default');
  const select = $('speaker-select');
  select.replaceChildren(new Option(i18n.t('prejoin.speaker_default'), ''));
  outputs.forEach((device, index) => {
    const label = device.label || i18n.t('prejoin.device_default', { n: index + 1 });
    const chosen = device.deviceId === urok.prejoin.speakerId;
    select.append(new Option(label, device.deviceId, false, chosen));
  });
}

/** Play `element` through the chosen speakers (the call's audio elements, the test sound). */
export function applySink(element) {
  const id = urok.prejoin.speakerId;
  if (id && element && typeof element.setSinkId === 'function') element.setSinkId(id).catch(() => {});
}

/** A short tone through the chosen speakers. */
async function testSound() {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return;
  const ctx = new Ctx();
  const tone = ctx.createOscillator();
  const gain = ctx.createGain();
  const out = ctx.createMediaStreamDestination();
  tone.frequency.value = 660;
  gain.gain.value = 0.2;
  tone.connect(gain).connect(out);
  const audio = new Audio();
  audio.srcObject = out.stream;
  applySink(audio);
  tone.start();
  await audio.play().catch(() => {});
  urok.prejoin.tested += 1;
  setTimeout(() => {
    tone.stop();
    audio.srcObject = null;
    ctx.close().catch(() => {});
  }, 700);
}

export function wirePrejoinMedia() {
  $('pj-mic').addEventListener('click', () => {
    urok.prejoin.mic = !urok.prejoin.mic;
    applyChoices();
  });
  $('pj-camera').addEventListener('click', () => {
    urok.prejoin.camera = !urok.prejoin.camera;
    applyChoices();
  });
  $('speaker-select').addEventListener('change', (event) => {
    urok.prejoin.speakerId = event.target.value;
  });
  $('speaker-test').addEventListener('click', testSound);
}
