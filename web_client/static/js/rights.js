// The host's "access rights" panel: call settings (waiting room, guests, privacy
// mode, pupils joining muted / camera off) and
// what students, parents and guests may do.

import * as i18n from './i18n.js';

export const ROLES = ['student', 'parent', 'guest'];
export const RIGHTS = ['unmute', 'video', 'screen', 'chat'];
const SETTINGS = ['waiting_room', 'guests_allowed', 'privacy_mode', 'join_muted', 'join_camera_off'];

function el(tag, className = '', text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null) node.textContent = text;
  return node;
}

export class Rights {
  /** onPermission(role, right, value); onSetting(name, value). */
  constructor(root, { onPermission, onSetting }) {
    this.root = root;
    this.settings = null;
    root.addEventListener('change', (event) => {
      const input = event.target;
      if (!(input instanceof HTMLInputElement)) return;
      if (input.dataset.setting) onSetting(input.dataset.setting, input.checked);
      else if (input.dataset.role) onPermission(input.dataset.role, input.dataset.right, input.checked);
    });
    this.build();
  }

  build() {
    const out = document.createDocumentFragment();
    const call = el('section', 'people-section rights-section');
    call.append(el('h3', '', i18n.t('rights.call_settings')));
    for (const name of SETTINGS) {
      const label = el('label', 'switch-row');
      const text = el('span', 'switch-text');
      text.append(el('span', 'switch-title', i18n.t(`rights.${name}`)));
      text.append(el('span', 'switch-hint', i18n.t(`rights.${name}_hint`)));
      const input = el('input', 'switch');
      input.type = 'checkbox';
      input.setAttribute('role', 'switch');
      input.dataset.setting = name;
      input.id = `setting-${name}`;
      label.append(text, input);
      call.append(label);
    }
    out.append(call);

    const perms = el('section', 'people-section rights-section');
    perms.append(el('h3', '', i18n.t('rights.what_can')));
    const table = el('table', 'rights-table');
    const head = el('tr');
    head.append(el('th', '', ''));
    for (const role of ROLES) head.append(el('th', '', i18n.t(`rights.role_${role}`)));
    table.append(el('thead'));
    table.tHead.append(head);
    const body = el('tbody');
    for (const right of RIGHTS) {
      const row = el('tr');
      row.append(el('th', '', i18n.t(`rights.right_${right}`)));
      for (const role of ROLES) {
        const cell = el('td');
        const input = el('input');
        input.type = 'checkbox';
        input.dataset.role = role;
        input.dataset.right = right;
        input.id = `perm-${role}-${right}`;
        input.setAttribute('aria-label', `${i18n.t(`rights.role_${role}`)}: ${i18n.t(`rights.right_${right}`)}`);
        cell.append(input);
        row.append(cell);
      }
      body.append(row);
    }
    table.append(body);
    perms.append(table);
    perms.append(el('p', 'muted small', i18n.t('rights.hosts_note')));
    out.append(perms);
    this.root.replaceChildren(out);
  }

  /** Show `settings` (the call_settings / joined shape). */
  render(settings) {
    if (!settings) return;
    this.settings = settings;
    for (const name of SETTINGS) {
      const input = this.root.querySelector(`[data-setting="${name}"]`);
      if (input) input.checked = Boolean(settings[name]);
    }
    const permissions = settings.permissions || {};
    for (const role of ROLES) {
      for (const right of RIGHTS) {
        const input = this.root.querySelector(`[data-role="${role}"][data-right="${right}"]`);
        if (input) input.checked = Boolean(permissions[role] && permissions[role][right]);
      }
    }
  }
}
