// The demo class journal. Its backend (/demo/api) calls Urok's journal API
// with the demo integration's secret; this page never sees the secret.

const $ = (id) => document.getElementById(id);

const STATUS = {
  none: ['не создан', 'badge-none'],
  created: ['создан, ещё не открыт', 'badge-created'],
  open: ['идёт', 'badge-open'],
  ended: ['завершён', 'badge-ended'],
};

const state = { classes: [], cls: null, lesson: null, links: null };

// The call in this page's frame, driven through Urok's /embed.js (docs/embedding.md),
// and what its events say of the lesson: people in the call, recording or not.
let call = null;
const live = { inCall: false, participants: 0, recording: false };

// While a lesson is open here, ask Urok every few seconds whether it still runs: the
// teacher may end it inside the call ("Завершить для всех"), or its time may run out.
const FOLLOW_MS = 3000;
let followTimer = null;

function followLesson() {
  clearTimeout(followTimer);
  const lesson = state.lesson;
  if (!lesson || lesson.state === 'ended' || !state.cls) return;
  const cls = state.cls;
  followTimer = setTimeout(async () => {
    let active = null;
    try {
      active = (await api('GET', `/classes/${encodeURIComponent(cls.id)}/lesson`)).lesson;
    } catch {
      followLesson(); // Urok unreachable for now: ask again later
      return;
    }
    if (state.lesson !== lesson || state.cls !== cls) return; // the page moved on meanwhile
    if (!active || active.id !== lesson.id) {
      state.lesson = { ...lesson, state: 'ended' };
      state.links = null;
      showMessage('Урок завершён.', 'ok');
    } else if (active.state !== lesson.state) {
      state.lesson = active;
    }
    render();
  }, FOLLOW_MS);
}

async function api(method, path, body) {
  let response;
  try {
    response = await fetch(`/demo/api${path}`, {
      method,
      headers: body ? { 'Content-Type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
      cache: 'no-store',
    });
  } catch {
    throw { code: 'network', message: '' };
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw { status: response.status, ...(data.error || { code: 'http_error' }) };
  return data;
}

function errorText(error) {
  const cls = state.cls ? state.cls.title : '';
  switch (error.code) {
    case 'lesson_conflict':
      return `В классе ${cls} уже есть незавершённый дистанционный урок. `
        + 'Завершите его, прежде чем создавать новый.';
    case 'invalid_time_range':
      return 'Время окончания урока должно быть позже времени начала.';
    case 'lesson_too_long':
      return 'Урок не может длиться дольше 12 часов.';
    case 'invalid_datetime':
    case 'naive_datetime':
      return 'Укажите дату и время урока.';
    case 'lesson_ended':
      return 'Этот урок уже завершён. Создайте новый.';
    case 'lesson_not_found':
      return 'Урок не найден: возможно, сервер перезапускался. Создайте урок заново.';
    case 'unauthorized':
      return 'Сервер Урока не принял ключ журнала (проверьте настройки интеграции).';
    case 'api_unreachable':
    case 'network':
      return 'Сервер Урока недоступен. Проверьте подключение и попробуйте ещё раз.';
    default:
      return `Ошибка API Урока (${error.code}${error.status ? `, HTTP ${error.status}` : ''})`
        + `${error.message ? `: ${error.message}` : ''}`;
  }
}

function showMessage(text, kind = 'error') {
  const el = $('message');
  el.textContent = text;
  el.className = `message message-${kind}`;
  el.hidden = !text;
}

function pad(n) {
  return String(n).padStart(2, '0');
}

function setDefaultTimes() {
  const now = new Date();
  const end = new Date(now.getTime() + 45 * 60 * 1000);
  $('lesson-date').value = `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
  $('lesson-start').value = `${pad(now.getHours())}:${pad(now.getMinutes())}`;
  $('lesson-end').value = `${pad(end.getHours())}:${pad(end.getMinutes())}`;
}

function isoFromInputs(date, time) {
  const local = new Date(`${date}T${time}`);
  if (Number.isNaN(local.getTime())) return '';
  return local.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// The end on the same date, or the next day when it is not after the start (a lesson
// created at 23:40 ends at 00:25).
function endIsoFromInputs(date, start, end) {
  const starts = isoFromInputs(date, start);
  const ends = isoFromInputs(date, end);
  if (!starts || !ends || ends > starts) return ends;
  const next = new Date(`${date}T${end}`);
  next.setDate(next.getDate() + 1);
  return next.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function formatRange(lesson) {
  const time = new Intl.DateTimeFormat('ru', { hour: '2-digit', minute: '2-digit' });
  const date = new Intl.DateTimeFormat('ru', { day: 'numeric', month: 'long' });
  const start = new Date(lesson.starts_at);
  return `${lesson.title}: ${date.format(start)}, ${time.format(start)}–${time.format(new Date(lesson.ends_at))}`;
}

function plural(n, one, few, many) {
  const rem10 = n % 10;
  const rem100 = n % 100;
  if (rem10 === 1 && rem100 !== 11) return one;
  if (rem10 >= 2 && rem10 <= 4 && (rem100 < 10 || rem100 >= 20)) return few;
  return many;
}

/** "идёт · 12 участников · запись" while the frame's call tells us so. */
function statusLabel(status, label) {
  if (status !== 'open' || !live.inCall) return label;
  const n = live.participants;
  const parts = [label, `${n} ${plural(n, 'участник', 'участника', 'участников')}`];
  if (live.recording) parts.push('запись');
  return parts.join(' · ');
}

function render() {
  const lesson = state.lesson;
  const status = lesson ? lesson.state : 'none';
  const [label, cls] = STATUS[status] || STATUS.none;
  $('lesson-status').textContent = statusLabel(status, label);
  $('lesson-status').className = `badge ${cls}`;
  const active = lesson && lesson.state !== 'ended';
  $('create').hidden = Boolean(active);
  $('open-here').hidden = !active;
  $('open-tab').hidden = !active;
  $('end').hidden = !active;
  $('lesson-info').hidden = !lesson;
  $('lesson-info').textContent = lesson ? formatRange(lesson) : '';
  $('teacher-name').textContent = state.cls ? state.cls.teacher.name : '';
  renderRoster();
  followLesson();
}

function renderRoster() {
  const body = $('roster-body');
  body.replaceChildren();
  if (!state.cls) return;
  const links = new Map();
  if (state.links && state.lesson && state.lesson.state !== 'ended') {
    for (const person of state.links.roster) links.set(person.id, person.url);
  }
  state.cls.students.forEach((student, index) => {
    const row = document.createElement('tr');
    const num = document.createElement('td');
    num.className = 'num';
    num.textContent = String(index + 1);
    const name = document.createElement('td');
    name.textContent = student.name;
    const action = document.createElement('td');
    const url = links.get(student.id);
    if (url) {
      const link = document.createElement('a');
      link.href = url;
      link.target = '_blank';
      link.rel = 'noopener noreferrer';
      link.className = 'join-link';
      link.dataset.studentId = student.id;
      link.textContent = `Войти как ${student.name}`;
      action.append(link);
    } else {
      action.className = 'muted';
      action.textContent = 'нет активного урока';
    }
    row.append(num, name, action);
    body.append(row);
  });
}

async function loadLinks() {
  state.links = null;
  if (state.lesson && state.lesson.state !== 'ended') {
    try {
      state.links = await api('GET', `/lessons/${encodeURIComponent(state.lesson.id)}/links`);
    } catch (error) {
      showMessage(errorText(error));
    }
  }
  render();
}

async function loadActiveLesson() {
  state.lesson = null;
  state.links = null;
  render();
  try {
    const data = await api('GET', `/classes/${encodeURIComponent(state.cls.id)}/lesson`);
    state.lesson = data.lesson;
  } catch (error) {
    showMessage(errorText(error));
  }
  await loadLinks();
}

function selectClass(id) {
  state.cls = state.classes.find((c) => c.id === id) || state.classes[0];
  const subjects = $('subject-select');
  subjects.replaceChildren(...state.cls.subjects.map((s) => new Option(s, s)));
  closeFrame();
  showMessage('');
  loadActiveLesson();
}

async function withBusy(button, fn) {
  button.disabled = true;
  try {
    await fn();
  } finally {
    button.disabled = false;
  }
}

async function createLesson() {
  showMessage('');
  const date = $('lesson-date').value;
  const body = {
    class_id: state.cls.id,
    subject: $('subject-select').value,
    starts_at: isoFromInputs(date, $('lesson-start').value),
    ends_at: endIsoFromInputs(date, $('lesson-start').value, $('lesson-end').value),
  };
  try {
    const data = await api('POST', '/lessons', body);
    state.lesson = data.lesson;
    showMessage('Дистанционный урок создан. Нажмите «Открыть», чтобы начать его: ученики смогут войти.', 'ok');
  } catch (error) {
    showMessage(errorText(error));
    if (error.code === 'lesson_conflict') {
      // Show the lesson that is in the way, so it can be opened or ended.
      await loadActiveLesson();
      showMessage(errorText(error));
      return;
    }
  }
  await loadLinks();
}

async function openLesson() {
  const data = await api('POST', `/lessons/${encodeURIComponent(state.lesson.id)}/open`);
  state.lesson = data.lesson;
  render();
  return data.teacher_url;
}

async function openHere() {
  showMessage('');
  try {
    const url = await openLesson();
    showFrame(url);
  } catch (error) {
    showMessage(errorText(error));
  }
}

async function openInTab() {
  showMessage('');
  // Open the tab while the click still counts as a user action, then point it at the call.
  const tab = window.open('about:blank', '_blank');
  try {
    const url = await openLesson();
    if (tab) {
      tab.opener = null;
      tab.location.href = url;
    } else {
      showMessage('Браузер заблокировал новую вкладку. Разрешите всплывающие окна для этого сайта.');
    }
  } catch (error) {
    if (tab) tab.close();
    showMessage(errorText(error));
  }
}

async function endLesson() {
  showMessage('');
  try {
    const data = await api('DELETE', `/lessons/${encodeURIComponent(state.lesson.id)}`);
    state.lesson = data.lesson;
    state.links = null;
    showMessage('Дистанционный урок завершён для всех участников.', 'ok');
  } catch (error) {
    showMessage(errorText(error));
  }
  render();
}

/** What the call in our frame tells us (docs/embedding.md "Events"). */
function onCallEvent(name, data) {
  switch (name) {
    case 'joined':
      live.inCall = true;
      live.participants = data.participants || 1;
      live.recording = Boolean(data.recording);
      break;
    case 'participantJoined':
    case 'participantLeft':
      live.participants = data.participants;
      break;
    case 'recordingStarted': live.recording = true; break;
    case 'recordingStopped': live.recording = false; break;
    case 'left':
      live.inCall = false;
      break;
    case 'lessonEnded':
      live.inCall = false;
      if (state.lesson && state.lesson.state !== 'ended') {
        state.lesson = { ...state.lesson, state: 'ended' };
        state.links = null;
        showMessage('Урок завершён.', 'ok');
      }
      break;
    default:
      return;
  }
  render();
}

function showFrame(url) {
  closeFrame();
  call = new window.UrokCall({
    container: $('frame-slot'), url, title: 'Дистанционный урок', onEvent: onCallEvent,
  });
  call.iframe.id = 'call-frame';
  $('call-panel').hidden = false;
  $('call-panel').scrollIntoView({ behavior: 'smooth', block: 'start' });
}

function closeFrame() {
  if (call) call.dispose();
  call = null;
  Object.assign(live, { inCall: false, participants: 0, recording: false });
  $('frame-slot').replaceChildren();
  $('call-panel').hidden = true;
}

async function main() {
  setDefaultTimes();
  try {
    const data = await api('GET', '/classes');
    state.classes = data.classes;
  } catch (error) {
    showMessage(errorText(error));
    return;
  }
  $('class-select').replaceChildren(...state.classes.map((c) => new Option(`${c.title} класс`, c.id)));
  $('class-select').addEventListener('change', (e) => selectClass(e.target.value));
  $('create').addEventListener('click', (e) => withBusy(e.currentTarget, createLesson));
  $('open-here').addEventListener('click', (e) => withBusy(e.currentTarget, openHere));
  $('open-tab').addEventListener('click', (e) => withBusy(e.currentTarget, openInTab));
  $('end').addEventListener('click', (e) => withBusy(e.currentTarget, endLesson));
  $('close-frame').addEventListener('click', closeFrame);
  selectClass(state.classes[0].id);
}

main();
