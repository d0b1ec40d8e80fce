// Camera/microphone capture, device lists and WebRTC helpers.

export const mediaSupported = () =>
  Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);

export const screenShareSupported = () =>
  Boolean(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);

const VIDEO_CONSTRAINTS = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } };
const AUDIO_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

/**
 * Ask for the microphone and camera. Never throws: returns the stream (maybe
 * with only one kind of track, maybe null) and, per kind, why it is missing.
 */
export async function capture({ audio = true, video = true, audioId = '', videoId = '' } = {}) {
  const result = { stream: null, audioProblem: null, videoProblem: null };
  if (!mediaSupported()) {
    result.audioProblem = result.videoProblem = 'unsupported';
    return result;
  }
  const audioC = audio ? { ...AUDIO_CONSTRAINTS, ...(audioId ? { deviceId: { exact: audioId } } : {}) } : false;
  const videoC = video ? { ...VIDEO_CONSTRAINTS, ...(videoId ? { deviceId: { exact: videoId } } : {}) } : false;
  if (!audioC && !videoC) return result;
  try {
    result.stream = await navigator.mediaDevices.getUserMedia({ audio: audioC, video: videoC });
    return result;
  } catch (error) {
    if (!(audioC && videoC)) {
      const problem = classify(error);
      if (audioC) result.audioProblem = problem;
      else result.videoProblem = problem;
      return result;
    }
  }
  // Both at once failed: try each on its own to learn which one is the problem.
  const tracks = [];
  for (const [kind, constraints] of [['audio', audioC], ['video', videoC]]) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ [kind]: constraints });
      tracks.push(...stream.getTracks());
    } catch (error) {
      result[`${kind}Problem`] = classify(error);
    }
  }
  result.stream = tracks.length ? new MediaStream(tracks) : null;
  return result;
}

function classify(error) {
  switch (error && error.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'denied';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'missing';
    case 'NotReadableError':
    case 'AbortError':
      return 'busy';
    default:
      return 'missing';
  }
}

/** {audio: [...MediaDeviceInfo], video: [...]} (labels are empty before permission). */
export async function listDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) {
    return { audio: [], video: [] };
  }
  const devices = await navigator.mediaDevices.enumerateDevices();
  return {
    audio: devices.filter((d) => d.kind === 'audioinput' && d.deviceId),
    video: devices.filter((d) => d.kind === 'videoinput' && d.deviceId),
  };
}

export function stopStream(stream) {
  if (stream) for (const track of stream.getTracks()) track.stop();
}

/**
 * Resolve when the connection has gathered all its ICE candidates (the server does not
 * trickle), or `relayGraceMs` after its first TURN relay candidate: behind a firewall
 * that drops UDP, the TURN-over-UDP allocation never answers and the browser would wait
 * for it for tens of seconds, while the TCP/TLS relay that works is already there.
 */
export function iceGatheringComplete(pc, timeoutMs = 10000, relayGraceMs = 1000) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    let graceTimer = null;
    const done = () => {
      clearTimeout(timer);
      clearTimeout(graceTimer);
      pc.removeEventListener('icegatheringstatechange', check);
      pc.removeEventListener('icecandidate', onCandidate);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const onCandidate = (event) => {
      if (!event.candidate) done();
      else if (event.candidate.type === 'relay' && graceTimer === null) {
        graceTimer = setTimeout(done, relayGraceMs);
      }
    };
    // With nothing to gather on (no network at all) give up waiting and send what we have.
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener('icegatheringstatechange', check);
    pc.addEventListener('icecandidate', onCandidate);
  });
}

/** A small microphone level meter; returns a stop function. */
export function levelMeter(stream, onLevel) {
  const track = stream && stream.getAudioTracks()[0];
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!track || !Ctx) return () => {};
  const ctx = new Ctx();
  const source = ctx.createMediaStreamSource(new MediaStream([track]));
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const data = new Uint8Array(analyser.fftSize);
  let running = true;
  const tick = () => {
    if (!running) return;
    analyser.getByteTimeDomainData(data);
    let peak = 0;
    for (const v of data) peak = Math.max(peak, Math.abs(v - 128));
    onLevel(Math.min(1, peak / 64));
    setTimeout(tick, 100);
  };
  tick();
  return () => {
    running = false;
    source.disconnect();
    ctx.close().catch(() => {});
  };
}
