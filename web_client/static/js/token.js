// The join token: taken from the address (#token=…), kept in this tab's
// sessionStorage so that a reload still works, forgotten once the server
// rejects it or removes us.

import { lessonId } from './state.js';

let token = null;
const storageKey = () => `urok.token.${lessonId}`;

/** The join token read by readToken(), or null. */
export function joinToken() {
  return token;
}

/** Read the token (address first, then this tab's storage) and remember it. */
export function readToken() {
  token = findToken();
  return token;
}

function findToken() {
  const key = storageKey();
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) {
    // Keep the token out of the address bar (screenshots, copied links) but
    // survive a reload of this tab.
    try {
      sessionStorage.setItem(key, fromHash);
      history.replaceState(null, '', location.pathname + location.search);
    } catch {
      // Storage blocked (some embedded contexts): leave the URL as it is.
    }
    return fromHash;
  }
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

export function forgetToken() {
  try {
    sessionStorage.removeItem(storageKey());
  } catch {
    // Storage blocked: nothing was kept.
  }
}

/** The token's claims (not verified: only to greet the person before the server answers). */
export function decodeClaims(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const binary = atob(part.padEnd(Math.ceil(part.length / 4) * 4, '='));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}
