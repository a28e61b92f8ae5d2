// The public page of a share link (/s/{token}): asks for the password when the link has
// one, then shows the shared file or folder (read links) or only an upload box (upload links).

import { qs, basename, loadThumb, ApiError } from './api.js';
import { h, replace, field, fail, say, fmtSize, fmtDate, iconFor } from './ui.js';
import { openGallery } from './gallery.js';
import { UploadPanel, dropTarget, filesFromInput, runLimited } from './uploads.js';

const main = document.getElementById('main');
const token = decodeURIComponent(location.pathname.split('/')[2] || '');
const base = `/api/public/${encodeURIComponent(token)}`;
let meta = null;

async function getJson(url, init) {
  const res = await fetch(url, { credentials: 'same-origin', ...init });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) throw new ApiError(res.status, (data && data.error) || `failed (${res.status})`);
  return data;
}

const fileUrl = (path, download = false) => `${base}/file?${qs({ path, download: download ? 1 : null })}`;
const thumbUrl = (path, size) => `${base}/thumb?${qs({ path, size })}`;

async function boot() {
  try {
    meta = await getJson(base);
  } catch (err) {
    document.title = 'Link not available · percloud';
    replace(main, h('div', { class: 'card narrow' }, h('h1', {}, 'This link does not work'),
      h('p', {}, err.status === 404 ? 'It does not exist, was revoked, or has expired. Ask the person who sent it for a new one.' : err.message)));
    return;
  }
  document.title = `${meta.name} · percloud`;
  if (meta.needs_password && !(await unlocked())) return askPassword();
  show();
}

/** Whether this browser already holds the link's unlock cookie. */
async function unlocked() {
  if (meta.mode === 'upload') return sessionStorage.getItem(`unlocked:${token}`) === '1';
  const url = meta.kind === 'dir' ? `${base}/list?${qs({ path: '/' })}` : fileUrl('/');
  const res = await fetch(url, { method: meta.kind === 'dir' ? 'GET' : 'HEAD', credentials: 'same-origin' }).catch(() => null);
  return Boolean(res && res.ok);
}

function askPassword() {
  const [label, input] = field('Password', { name: 'password', type: 'password', autocomplete: 'off', required: true });
  const error = h('p', { class: 'error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Open');
  replace(main, h('div', { class: 'card narrow' },
    h('h1', {}, meta.name),
    h('p', {}, 'This link is protected by a password.'),
    h('form', { onsubmit: async (ev) => {
      ev.preventDefault();
      submit.disabled = true;
      error.textContent = '';
      try {
        await getJson(`${base}/unlock`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ password: input.value }) });
        sessionStorage.setItem(`unlocked:${token}`, '1');
        show();
      } catch (err) {
        error.textContent = err.status === 401 ? 'Wrong password.' : err.status === 429 ? 'Too many attempts; wait a little and try again.' : err.message;
        input.select();
      } finally { submit.disabled = false; }
    } }, label, input, error, h('div', { class: 'actions' }, submit))));
  input.focus();
}

function show() {
  if (meta.mode === 'upload') return showUpload();
  if (meta.kind === 'dir') return showFolder('/');
  return showFile();
}

const EXT = {
  image: ['jpg', 'jpeg', 'png', 'gif', 'webp', 'avif', 'bmp', 'svg'],
  video: ['mp4', 'webm', 'mov', 'm4v', 'ogv', 'mkv'],
  audio: ['mp3', 'ogg', 'oga', 'opus', 'wav', 'flac', 'm4a', 'aac'],
};
function kindOf(name, mime) {
  if (mime) for (const k of Object.keys(EXT)) if (mime.startsWith(`${k}/`)) return k;
  const ext = name.split('.').pop().toLowerCase();
  return Object.keys(EXT).find((k) => EXT[k].includes(ext)) || 'other';
}

async function showFile() {
  const head = await fetch(fileUrl('/'), { method: 'HEAD', credentials: 'same-origin' }).catch(() => null);
  if (head && head.status === 401) return askPassword();
  const size = head && head.ok ? head.headers.get('Content-Length') : null;
  const kind = kindOf(meta.name, head && head.ok ? head.headers.get('Content-Type') : '');
  let preview = null;
  if (kind === 'image') preview = h('img', { src: fileUrl('/'), alt: meta.name, style: 'max-width:100%;max-height:70vh;display:block;margin:0 auto' });
  else if (kind === 'video') preview = h('video', { src: fileUrl('/'), controls: true, preload: 'metadata', 'aria-label': meta.name });
  else if (kind === 'audio') preview = h('audio', { src: fileUrl('/'), controls: true, preload: 'metadata', 'aria-label': meta.name });
  replace(main, h('div', { class: 'card' },
    h('h1', {}, meta.name),
    size !== null ? h('p', { class: 'muted' }, fmtSize(Number(size))) : null,
    preview,
    h('div', { class: 'actions' }, h('a', { class: 'button primary', href: fileUrl('/', true), id: 'download' }, 'Download'))));
}

async function showFolder(path) {
  replace(main, h('p', { class: 'loading' }, 'Loading…'));
  let listing;
  try {
    listing = await getJson(`${base}/list?${qs({ path })}`);
  } catch (err) {
    if (err.status === 401) return askPassword();
    return fail(err);
  }
  const children = [...listing.children].sort((a, b) => (a.kind !== b.kind ? (a.kind === 'dir' ? -1 : 1)
    : a.name.localeCompare(b.name, undefined, { numeric: true })));
  const images = children.filter((e) => e.kind === 'file' && e.thumb);
  const parts = path.split('/').filter(Boolean);
  const crumbs = [h('li', {}, path === '/' ? h('span', { 'aria-current': 'page' }, meta.name)
    : h('button', { type: 'button', class: 'link', onclick: () => showFolder('/') }, meta.name))];
  parts.forEach((part, i) => {
    const p = `/${parts.slice(0, i + 1).join('/')}`;
    crumbs.push(h('li', {}, i === parts.length - 1 ? h('span', { 'aria-current': 'page' }, part)
      : h('button', { type: 'button', class: 'link', onclick: () => showFolder(p) }, part)));
  });
  const rows = children.map((e) => {
    const icon = e.thumb ? h('img', { alt: '', width: 32, height: 32 }) : iconFor(e);
    if (e.thumb) loadThumb(thumbUrl(e.path, 256)).then((u) => { icon.src = u; }, () => icon.replaceWith(iconFor(e)));
    const open = e.kind === 'dir'
      ? h('button', { type: 'button', class: 'link', onclick: () => showFolder(e.path) }, e.name)
      : e.thumb ? h('button', { type: 'button', class: 'link', onclick: () => gallery(images, e) }, e.name)
        : h('a', { href: fileUrl(e.path), target: '_blank', rel: 'noopener' }, e.name);
    return h('tr', { dataset: { path: e.path } },
      h('td', { class: 'name' }, h('span', { class: 'entry-name' }, icon, open)),
      h('td', { class: 'num' }, e.kind === 'dir' ? '' : fmtSize(e.size)),
      h('td', { class: 'hide-narrow' }, fmtDate(e.mtime)),
      h('td', {}, e.kind === 'dir' ? null : h('a', { class: 'button', href: fileUrl(e.path, true), 'aria-label': `Download ${e.name}` }, 'Download')));
  });
  replace(main,
    h('div', { class: 'row' }, h('h1', { class: 'grow' }, meta.name),
      h('a', { class: 'button primary', href: `${base}/zip` }, 'Download all (zip)')),
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumbs' }, h('ol', {}, crumbs)),
    children.length ? h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col', class: 'num' }, 'Size'),
        h('th', { scope: 'col', class: 'hide-narrow' }, 'Modified'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Download')))),
      h('tbody', {}, rows))) : h('p', { class: 'empty' }, 'This folder is empty.'));
}

function gallery(images, entry) {
  openGallery(images, images.indexOf(entry), {
    preview: (e) => thumbUrl(e.path, 1024),
    original: (e) => fileUrl(e.path),
    download: (e) => fileUrl(e.path, true),
  });
}

function showUpload() {
  const input = h('input', { type: 'file', multiple: true, id: 'drop-files', class: 'sr-only', tabindex: '-1', 'aria-hidden': 'true',
    onchange: () => { const items = filesFromInput(input); input.value = ''; upload(items); } });
  const zone = h('div', { class: 'dropzone', id: 'dropzone' },
    h('p', {}, 'Drop files here, or'),
    h('button', { type: 'button', class: 'primary', onclick: () => input.click() }, 'Choose files'), input);
  replace(main, h('div', { class: 'card' },
    h('h1', {}, `Send files to “${meta.name}”`),
    h('p', { class: 'muted' }, 'What you upload goes to the owner of this link. You cannot see what is already there.'),
    zone));
  dropTarget(zone, upload, 'dropping-here');
}

let panel = null;
async function upload(items) {
  const files = items.filter((i) => i.file);
  if (!files.length) return;
  if (!panel) panel = new UploadPanel(document.getElementById('uploads'));
  await runLimited(files.map((item) => async () => {
    const name = basename(item.rel);
    const row = panel.add(name, item.file.size);
    try {
      const stored = await putFile(item.file, name, row);
      row.done(stored && stored.name && stored.name !== name ? `Saved as ${stored.name}` : 'Done');
    } catch (err) {
      row.failed(err.message);
    }
  }), 2);
  say('Uploads finished');
}

function putFile(file, name, row) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', `${base}/upload?${qs({ name })}`);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.upload.onprogress = (ev) => row.progress(ev.loaded, file.size);
    row.onCancel(() => xhr.abort());
    xhr.onerror = () => reject(new Error('The connection broke; try again.'));
    xhr.onabort = () => reject(new Error('Cancelled'));
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try { return resolve(JSON.parse(xhr.responseText)); } catch { return resolve(null); }
      }
      let message = `Upload failed (${xhr.status})`;
      try { message = JSON.parse(xhr.responseText).error || message; } catch { /* not JSON */ }
      reject(new Error(message));
    };
    xhr.send(file);
  });
}

boot();
