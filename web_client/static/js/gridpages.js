// Grid pages: past a page's worth of tiles (16 on a laptop, 9 on a tablet, 6 on a
// phone) the grid shows one page at a time. The first page holds oneself, the pinned or
// spotlighted person, who spoke lately and the hosts. Tiles of other pages are not laid
// out, so their videos are not shown: videoquality.js tells the server, which then sends
// nothing of them (a class of 30 in the grid costs a pupil a page of cameras, not 29).

import { stageFocus } from './focus.js';
import * as i18n from './i18n.js';
import { $, urok } from './state.js';

const RECENT_SPEAKERS = 4;
let page = 0;
let recent = []; // the latest speakers to be the loudest, newest first

/** Tiles a page holds at this window's width. */
export function pageSize() {
  const width = window.innerWidth;
  if (width < 600) return 6;
  return width < 1000 ? 9 : 16;
}

function noteSpeaker() {
  const top = urok.speakers.length ? urok.speakers[0].id : null;
  if (top && recent[0] !== top) recent = [top, ...recent.filter((id) => id !== top)].slice(0, RECENT_SPEAKERS);
}

function rank(tile) {
  const id = tile.participant.id;
  const focus = stageFocus();
  if (tile.self) return 0;
  if (focus && focus.id === id) return 1;
  if (recent.includes(id)) return 2 + recent.indexOf(id) / 10;
  if (tile.participant.host) return 3;
  return 4;
}

/** Mark the tiles of other pages (`data-off-page`) and show the pager; in the filmstrip
 * (a shared screen, the speaker layout) every tile stays, the row scrolls. */
export function paginate(filmstrip) {
  noteSpeaker();
  const tiles = [...urok.tiles.values()].filter((t) => !t.el.hidden);
  const size = pageSize();
  const pager = $('grid-pager');
  if (filmstrip || tiles.length <= size) {
    for (const tile of urok.tiles.values()) tile.el.removeAttribute('data-off-page');
    pager.hidden = true;
    page = 0;
    return;
  }
  const ordered = tiles
    .map((tile, index) => ({ tile, key: rank(tile), index }))
    .sort((a, b) => a.key - b.key || a.index - b.index);
  const pages = Math.ceil(ordered.length / size);
  page = Math.max(0, Math.min(page, pages - 1));
  ordered.forEach(({ tile }, i) => tile.el.toggleAttribute('data-off-page', Math.floor(i / size) !== page));
  for (const tile of urok.tiles.values()) if (tile.el.hidden) tile.el.removeAttribute('data-off-page');
  pager.hidden = false;
  $('grid-page-label').textContent = i18n.t('call.grid_page', { page: page + 1, pages });
  $('grid-prev').disabled = page === 0;
  $('grid-next').disabled = page === pages - 1;
}

/** The pager's buttons; `relayout` lays the grid out again for the new page. */
export function wireGridPages(relayout) {
  $('grid-prev').addEventListener('click', () => { page -= 1; relayout(); });
  $('grid-next').addEventListener('click', () => { page += 1; relayout(); });
}
