// The invite page of an ad-hoc call (/invite/{code}): ask for a name, get a
// guest join token from POST /invite/{code} and go to the call page. The
// server renders the page in its language; the messages are data-* attributes
// of the form (data-errors-<code>), so this script needs no catalog.

const form = document.getElementById('invite-form');
const when = document.getElementById('invite-when');

function showWhen() {
  if (!when || !when.dataset.starts) return;
  const lang = document.documentElement.lang || 'ru';
  const starts = new Date(when.dataset.starts);
  const ends = new Date(when.dataset.ends);
  if (Number.isNaN(starts.getTime()) || Number.isNaN(ends.getTime())) return;
  const day = new Intl.DateTimeFormat(lang, { day: 'numeric', month: 'long', year: 'numeric' });
  const time = new Intl.DateTimeFormat(lang, { hour: '2-digit', minute: '2-digit' });
  when.textContent = `${day.format(starts)}, ${time.format(starts)}–${time.format(ends)}`;
}

function message(code) {
  const key = 'errors' + String(code || 'generic')
    .split('_')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
  return form.dataset[key] || form.dataset.errorsGeneric;
}

function setup() {
  const input = document.getElementById('invite-name');
  const button = document.getElementById('invite-join');
  const error = document.getElementById('invite-error');
  const label = button.textContent;

  const fail = (text) => {
    error.textContent = text;
    error.hidden = false;
    button.disabled = false;
    button.textContent = label;
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const name = input.value.trim();
    if (!name) {
      fail(form.dataset.errorsName);
      input.focus();
      return;
    }
    error.hidden = true;
    button.disabled = true;
    button.textContent = form.dataset.joining || label;
    let response;
    let body = null;
    try {
      // The page's own path: POST /invite/{code}, wherever the server is mounted.
      response = await fetch(window.location.pathname, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ name }),
        credentials: 'omit',
        cache: 'no-store',
      });
      body = await response.json().catch(() => null);
    } catch {
      fail(form.dataset.errorsNetwork);
      return;
    }
    if (response.status === 201 && body && typeof body.url === 'string') {
      window.location.assign(body.url);
      return;
    }
    fail(message(body && body.error && body.error.code));
  });
}

showWhen();
if (form) setup();
