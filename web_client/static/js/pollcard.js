// A poll's result: the bars polls.js shows hosts (and everyone, once shared) while
// the poll is open, and the card the chat keeps once it is closed (kind "poll").

import * as i18n from './i18n.js';
import { formatTime } from './ui.js';

function el(tag, className = '', text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null) node.textContent = text;
  return node;
}

/** Bars of a result: counts (and, for a named poll's hosts, who chose what). */
export function resultBars(options, results) {
  const list = el('ol', 'poll-results');
  const total = Math.max(1, results.voters || 0);
  options.forEach((option, index) => {
    const count = (results.counts || [])[index] || 0;
    const row = el('li', 'poll-result');
    row.dataset.count = String(count);
    const bar = el('span', 'poll-bar');
    bar.style.setProperty('--share', `${Math.round((100 * count) / total)}%`);
    row.append(el('span', 'poll-result-label', option), el('span', 'poll-result-count', String(count)), bar);
    const names = results.names && results.names[index];
    if (names && names.length) row.append(el('span', 'poll-result-names', names.join(', ')));
    list.append(row);
  });
  const box = el('div', 'poll-results-box');
  box.append(list, el('p', 'poll-voters muted small', i18n.t('polls.voters', { n: results.voters || 0 })));
  return box;
}

/** The chat's card of a closed poll. */
export function pollCard(message) {
  const data = message.data || {};
  const li = el('li', 'chat-msg chat-poll');
  li.dataset.id = message.id || '';
  li.dataset.pollId = data.poll_id || '';
  const meta = el('div', 'chat-meta');
  meta.append(el('span', 'chat-room-label', i18n.t('polls.result_label')));
  meta.append(el('span', 'chat-author', message.author_name || ''));
  const time = el('time', 'chat-time', formatTime(message.at));
  time.dateTime = message.at || '';
  meta.append(time);
  li.append(meta, el('p', 'chat-text poll-question', data.question || message.text || ''));
  li.append(resultBars(Array.isArray(data.options) ? data.options : [], data));
  return li;
}
