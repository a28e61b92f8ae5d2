// Small DOM helpers shared by every page: element builder, status line, dialogs, formatting.

/** Builds an element: h('button', {class: 'primary', onclick}, 'Save'). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key in el && typeof value !== 'string') el[key] = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.textContent = '';
  append(el, children);
  return el;
}

let statusTimer = 0;
/** Announces a short message in the aria-live status line. */
export function say(message, bad = false) {
  const el = document.getElementById('status');
  if (!el) return;
  clearTimeout(statusTimer);
  el.textContent = message;
  el.classList.toggle('bad', bad);
  statusTimer = setTimeout(() => { el.textContent = ''; }, bad ? 8000 : 4000);
}

/** Reports an error from an API call or anything else. */
export function fail(err) {
  console.warn(err);
  say(err && err.message ? err.message : String(err), true);
}

/**
 * Opens a modal form dialog. `fields` are nodes placed in the form; resolves with the
 * FormData on submit or null on cancel. `check(form)` may return an error message.
 */
export function formDialog({ title, fields, submit = 'OK', danger = false, check }) {
  return new Promise((resolve) => {
    const error = h('p', { class: 'error', role: 'alert' });
    const form = h('form', { method: 'dialog' },
      h('h2', { id: 'dlg-title' }, title),
      fields, error,
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: danger ? 'danger primary' : 'primary', value: 'ok' }, submit),
        h('button', { type: 'button', onclick: () => dlg.close('') }, 'Cancel')));
    const dlg = h('dialog', { 'aria-labelledby': 'dlg-title' }, form);
    let result = null;
    form.addEventListener('submit', (ev) => {
      const message = check ? check(form) : '';
      if (message) { ev.preventDefault(); error.textContent = message; return; }
      result = new FormData(form);
    });
    dlg.addEventListener('close', () => { dlg.remove(); resolve(result); });
    document.body.append(dlg);
    dlg.showModal();
  });
}

/** Shows a dialog with arbitrary content and a Close button; returns the dialog. */
export function infoDialog(title, ...content) {
  const dlg = h('dialog', { 'aria-labelledby': 'info-title' },
    h('h2', { id: 'info-title' }, title), content,
    h('div', { class: 'actions' }, h('button', { type: 'button', onclick: () => dlg.close() }, 'Close')));
  dlg.addEventListener('close', () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}

/** Asks a yes/no question; resolves true on yes. */
export async function confirmDialog(title, text, yes = 'OK', danger = true) {
  return (await formDialog({ title, fields: h('p', {}, text), submit: yes, danger })) !== null;
}

/** A labelled input: returns [label, input] so forms stay short. */
export function field(label, attrs) {
  const id = attrs.id || `f-${attrs.name}-${Math.random().toString(36).slice(2, 7)}`;
  const input = h(attrs.tag || 'input', { type: 'text', ...attrs, tag: null, id });
  return [h('label', { for: id }, label), input];
}

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB'];
/** 1536 → "1.5 KB". */
export function fmtSize(bytes) {
  if (bytes === null || bytes === undefined) return '';
  let n = Number(bytes);
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 1 : 0).replace(/\.0$/, '')} ${UNITS[i]}`;
}

/** Unix seconds → local date and time. */
export function fmtDate(secs) {
  if (!secs) return '';
  return new Date(secs * 1000).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** Seconds → "3 d 4 h", "5 min". */
export function fmtDuration(secs) {
  const s = Math.floor(secs);
  const d = Math.floor(s / 86400), hr = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return `${d} d ${hr} h`;
  if (hr) return `${hr} h ${m} min`;
  if (m) return `${m} min`;
  return `${s} s`;
}

const ICONS = {
  dir: 'M3 6a2 2 0 0 1 2-2h4l2 2h8a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2z',
  file: 'M6 2h8l5 5v13a2 2 0 0 1-2 2H6a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2zm7 1.5V8h4.5',
  image: 'M4 4h16a1 1 0 0 1 1 1v14a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1zm1 13h14l-4.5-6-3.5 4.5-2.5-3z',
  video: 'M3 5h13a1 1 0 0 1 1 1v3l4-3v12l-4-3v3a1 1 0 0 1-1 1H3a1 1 0 0 1-1-1V6a1 1 0 0 1 1-1z',
  audio: 'M9 17V5l11-2v12M9 17a3 3 0 1 1-3-3 3 3 0 0 1 3 3zm11-2a3 3 0 1 1-3-3 3 3 0 0 1 3 3z',
};
const SVG_NS = 'http://www.w3.org/2000/svg';

/** A small icon for an entry (folder, picture, video, audio, file), hidden from screen readers. */
export function iconFor(entry) {
  const mime = entry.mime || '';
  const kind = entry.kind === 'dir' ? 'dir' : ['image', 'video', 'audio'].find((k) => mime.startsWith(`${k}/`)) || 'file';
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', `icon icon-${kind}`);
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute('d', ICONS[kind]);
  svg.append(path);
  return svg;
}

/** Copies text to the clipboard, falling back to selecting an input. */
export async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    if (input) { input.select(); document.execCommand('copy'); }
  }
  say('Link copied');
}
