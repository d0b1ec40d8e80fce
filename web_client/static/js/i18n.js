// UI strings from /static/i18n/<lang>.json; Russian is the default.

export const LANGUAGES = ['ru', 'en'];
export const DEFAULT_LANGUAGE = 'ru';

let catalog = {};
let fallback = {};
let current = DEFAULT_LANGUAGE;

async function fetchCatalog(lang) {
  const response = await fetch(`/static/i18n/${lang}.json`, { cache: 'no-cache' });
  if (!response.ok) throw new Error(`catalog ${lang}: HTTP ${response.status}`);
  return response.json();
}

export function language() {
  return current;
}

/** Load the catalog for `lang` (unknown languages fall back to Russian). */
export async function setLanguage(lang) {
  const wanted = LANGUAGES.includes(lang) ? lang : DEFAULT_LANGUAGE;
  if (!Object.keys(fallback).length) fallback = await fetchCatalog(DEFAULT_LANGUAGE);
  catalog = wanted === DEFAULT_LANGUAGE ? fallback : await fetchCatalog(wanted);
  current = wanted;
  document.documentElement.lang = wanted;
  return wanted;
}

export function has(key) {
  return key in catalog || key in fallback;
}

/** The string for `key` with {name} placeholders filled from `params`. */
export function t(key, params = {}) {
  const template = catalog[key] ?? fallback[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (match, name) =>
    name in params ? String(params[name]) : match);
}

/** Fill every [data-i18n], [data-i18n-title] and [data-i18n-aria-label] under `root`. */
export function apply(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll('[data-i18n-aria-label]')) {
    el.setAttribute('aria-label', t(el.dataset.i18nAriaLabel));
  }
  document.title = t('app.page_title');
}
