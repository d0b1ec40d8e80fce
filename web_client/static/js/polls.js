// Polls (docs/protocol.md "Polls"): the host asks from the chat panel ("Опрос"),
// the open polls of our room are cards in a dock over the call, pupils answer
// there; hosts see the results live, show them to everyone and close the poll,
// whose result then comes as a card into the chat (chat.js renders it).

import * as i18n from './i18n.js';
import { resultBars } from './pollcard.js';
import { $, urok } from './state.js';
import { toast } from './ui.js';

const MAX_OPTIONS = 10;
const MIN_OPTIONS = 2;

function el(tag, className = '', text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null) node.textContent = text;
  return node;
}

function send(message) {
  if (urok.ws) urok.ws.sendWithId(message);
}

// --------------------------------------------------------------------------- the dock

function kindText(poll) {
  const parts = [i18n.t(poll.multiple ? 'polls.multiple' : 'polls.single')];
  if (poll.anonymous) parts.push(i18n.t('polls.anonymous'));
  return parts.join(' · ');
}

function answerForm(poll) {
  const form = el('form', 'poll-form');
  const group = el('fieldset', 'poll-options');
  group.append(el('legend', 'sr-only', poll.question));
  poll.options.forEach((option, index) => {
    const label = el('label', 'check-row');
    const input = el('input');
    input.type = poll.multiple ? 'checkbox' : 'radio';
    input.name = `poll-${poll.id}`;
    input.value = String(index);
    label.append(input, el('span', '', option));
    group.append(label);
  });
  const submit = el('button', 'btn btn-primary btn-small', i18n.t('polls.answer'));
  submit.type = 'submit';
  submit.dataset.testid = 'poll-submit';
  form.append(group, submit);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const choices = [...form.querySelectorAll('input:checked')].map((i) => Number(i.value));
    if (!choices.length) {
      toast(i18n.t('polls.choose_first'), 'warning');
      return;
    }
    send({ type: 'poll_answer', poll_id: poll.id, choices });
  });
  return form;
}

function hostActions(poll) {
  const row = el('div', 'poll-actions');
  const share = el('button', 'btn btn-secondary btn-small', i18n.t(poll.shared ? 'polls.unshare' : 'polls.share'));
  share.type = 'button';
  share.setAttribute('aria-pressed', String(poll.shared));
  share.dataset.testid = 'poll-share';
  share.addEventListener('click', () => send({ type: 'poll_share', poll_id: poll.id, shared: !poll.shared }));
  const close = el('button', 'btn btn-danger btn-small', i18n.t('polls.close'));
  close.type = 'button';
  close.dataset.testid = 'poll-close';
  close.addEventListener('click', () => send({ type: 'poll_close', poll_id: poll.id }));
  row.append(share, close);
  return row;
}

function pollCard(poll) {
  const card = el('section', 'poll-card');
  card.dataset.pollId = poll.id;
  card.setAttribute('aria-label', i18n.t('polls.card_label', { question: poll.question }));
  card.append(el('p', 'eyebrow', i18n.t('polls.eyebrow', { name: poll.author.name })));
  card.append(el('h3', 'poll-question', poll.question));
  card.append(el('p', 'muted small', kindText(poll)));
  if (poll.answer) {
    const chosen = poll.answer.map((i) => poll.options[i]).join(', ');
    card.append(el('p', 'poll-answered', i18n.t('polls.answered', { answer: chosen })));
  } else if (!urok.isHost) {
    card.append(answerForm(poll));
  }
  if (poll.results) card.append(resultBars(poll.options, poll.results));
  if (urok.isHost) card.append(hostActions(poll));
  return card;
}

function renderDock() {
  const dock = $('polls-dock');
  if (!dock) return;
  const polls = urok.polls || [];
  dock.replaceChildren(...polls.map(pollCard));
  dock.hidden = polls.length === 0;
}

/** `polls`: the open polls of our room, as we may see them. */
export function onPolls(msg) {
  const before = new Set((urok.polls || []).map((p) => p.id));
  urok.polls = Array.isArray(msg.polls) ? msg.polls : [];
  renderDock();
  const fresh = urok.polls.filter((p) => !before.has(p.id) && !p.answer);
  if (fresh.length && !urok.isHost) toast(i18n.t('polls.new', { question: fresh[0].question }));
}

/** Out of the call (or another call): no polls. */
export function resetPolls() {
  urok.polls = [];
  renderDock();
}

// --------------------------------------------------------------------------- asking

function optionRow(list, value = '') {
  const row = el('div', 'poll-option-row');
  const input = el('input', 'text-input');
  input.type = 'text';
  input.maxLength = 100;
  input.required = true;
  input.value = value;
  input.setAttribute('aria-label', i18n.t('polls.option_n', { n: list.children.length + 1 }));
  const remove = el('button', 'icon-btn', '×');
  remove.type = 'button';
  remove.setAttribute('aria-label', i18n.t('polls.remove_option'));
  remove.addEventListener('click', () => {
    if (list.children.length > MIN_OPTIONS) row.remove();
  });
  row.append(input, remove);
  list.append(row);
  return input;
}

function buildDialog() {
  const dialog = el('dialog', 'dialog');
  dialog.id = 'poll-dialog';
  dialog.setAttribute('aria-labelledby', 'poll-dialog-title');
  const form = el('form', 'dialog-form');
  form.autocomplete = 'off';
  const title = el('h2', '', i18n.t('polls.new_title'));
  title.id = 'poll-dialog-title';
  const question = el('input', 'text-input');
  question.id = 'poll-question';
  question.type = 'text';
  question.maxLength = 300;
  question.required = true;
  const questionLabel = el('label', 'rec-field');
  questionLabel.append(el('span', 'field-label', i18n.t('polls.question')), question);
  const options = el('div', 'poll-option-list');
  options.id = 'poll-options';
  const add = el('button', 'btn btn-secondary btn-small', i18n.t('polls.add_option'));
  add.type = 'button';
  add.addEventListener('click', () => {
    if (options.children.length < MAX_OPTIONS) optionRow(options).focus();
  });
  const check = (id, key) => {
    const label = el('label', 'check-row');
    const input = el('input');
    input.type = 'checkbox';
    input.id = id;
    label.append(input, el('span', '', i18n.t(key)));
    return label;
  };
  const buttons = el('div', 'dialog-buttons');
  const cancel = el('button', 'btn btn-secondary', i18n.t('common.cancel'));
  cancel.type = 'button';
  cancel.addEventListener('click', () => dialog.close());
  const submit = el('button', 'btn btn-primary', i18n.t('polls.start'));
  submit.type = 'submit';
  submit.id = 'poll-start';
  buttons.append(cancel, submit);
  form.append(
    title, questionLabel, el('span', 'field-label', i18n.t('polls.options')), options, add,
    check('poll-multiple', 'polls.allow_multiple'), check('poll-anonymous', 'polls.make_anonymous'),
    buttons,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    send({
      type: 'poll_create',
      question: question.value,
      options: [...options.querySelectorAll('input')].map((i) => i.value),
      multiple: $('poll-multiple').checked,
      anonymous: $('poll-anonymous').checked,
    });
    dialog.close();
  });
  dialog.append(form);
  document.body.append(dialog);
  return dialog;
}

function openDialog() {
  const dialog = $('poll-dialog') || buildDialog();
  $('poll-question').value = '';
  const options = $('poll-options');
  options.replaceChildren();
  for (let i = 0; i < MIN_OPTIONS; i += 1) optionRow(options);
  $('poll-multiple').checked = false;
  $('poll-anonymous').checked = false;
  dialog.showModal();
  $('poll-question').focus();
}

/** Hosts get the "Опрос" button (chat panel header); everyone the dock. */
export function applyPollsHostUi() {
  const button = $('poll-new');
  if (button) button.hidden = !urok.isHost;
  renderDock();
}

export function wirePolls() {
  urok.polls = [];
  const dock = el('aside', 'polls-dock');
  dock.id = 'polls-dock';
  dock.hidden = true;
  dock.setAttribute('aria-label', i18n.t('polls.title'));
  dock.setAttribute('aria-live', 'polite');
  $('screen-call').append(dock);
  const button = el('button', 'btn btn-secondary btn-small poll-new', i18n.t('polls.new_button'));
  button.type = 'button';
  button.id = 'poll-new';
  button.dataset.i18n = 'polls.new_button';
  button.hidden = true;
  button.addEventListener('click', openDialog);
  const header = document.querySelector('#panel-chat .panel-header');
  header.insertBefore(button, header.querySelector('.panel-close'));
}
