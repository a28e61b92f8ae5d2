// "My cloud": the folder browser (breadcrumbs, list and grid, sort, search), uploads by
// picker and drag and drop, file actions (rename, move, copy, delete, versions, share),
// media playback, and the trash.

import { get, post, del, qs, csrf, fileUrl, thumbUrl, zipUrl, join, parent, basename, loadThumb } from './api.js';
import { h, replace, field, fail, say, formDialog, infoDialog, confirmDialog, fmtSize, fmtDate, iconFor } from './ui.js';
import { TusUpload } from './tus.js';
import { UploadPanel, dropTarget, filesFromInput, foldersOf, runLimited } from './uploads.js';
import { openGallery } from './gallery.js';
import { createShareDialog } from './shares.js';

const SORTS = { name: 'Name', mtime: 'Date', size: 'Size' };
const view = {
  ctx: null,
  cwd: '/',
  query: null,
  entries: [],
  sort: localStorage.getItem('percloud.sort') || 'name',
  desc: localStorage.getItem('percloud.desc') === '1',
  mode: localStorage.getItem('percloud.view') || 'list',
  body: null,
  usage: null,
};
let panel = null;
let refreshTimer = 0;

/** Shows the folder `path` (or search results for `query`). */
export async function showFiles(ctx, path, query) {
  view.ctx = ctx;
  view.cwd = path;
  view.query = query;
  setupDrop();
  document.title = `${query ? `Search: ${query}` : path === '/' ? 'My cloud' : basename(path)} · percloud`;

  const filesInput = h('input', { type: 'file', multiple: true, id: 'upload-files', class: 'sr-only', tabindex: '-1', 'aria-hidden': 'true', onchange: (ev) => pickerChosen(ev.target) });
  const folderInput = h('input', { type: 'file', multiple: true, webkitdirectory: true, id: 'upload-folder', class: 'sr-only', tabindex: '-1', 'aria-hidden': 'true', onchange: (ev) => pickerChosen(ev.target) });
  const search = h('input', { type: 'search', name: 'q', value: query || '', placeholder: 'Search by name', 'aria-label': 'Search by name' });
  const sortSelect = h('select', { 'aria-label': 'Sort by', onchange: (ev) => { view.sort = ev.target.value; saveSort(); render(); } },
    Object.entries(SORTS).map(([k, label]) => h('option', { value: k, selected: view.sort === k }, `Sort: ${label}`)));
  const dirButton = h('button', { type: 'button', 'aria-label': 'Sort direction', title: 'Sort direction',
    onclick: () => { view.desc = !view.desc; saveSort(); dirButton.textContent = view.desc ? '↓' : '↑'; render(); } }, view.desc ? '↓' : '↑');
  const modeButton = h('button', { type: 'button', 'aria-pressed': String(view.mode === 'grid'),
    onclick: () => { view.mode = view.mode === 'grid' ? 'list' : 'grid'; localStorage.setItem('percloud.view', view.mode); modeButton.setAttribute('aria-pressed', String(view.mode === 'grid')); render(); } }, 'Grid view');

  view.usage = h('div', { class: 'usage' });
  view.body = h('div', { id: 'listing', 'aria-live': 'polite', 'aria-busy': 'true' });
  replace(ctx.main,
    h('div', { class: 'row' }, h('h1', { class: 'grow' }, 'My cloud'), view.usage),
    crumbs(path, query),
    h('div', { class: 'toolbar' },
      h('button', { type: 'button', class: 'primary', onclick: () => filesInput.click() }, 'Upload files'), filesInput,
      h('button', { type: 'button', onclick: () => folderInput.click() }, 'Upload folder'), folderInput,
      h('button', { type: 'button', onclick: newFolder }, 'New folder'),
      path !== '/' && !query ? h('a', { class: 'button', href: zipUrl(path) }, 'Download as zip') : null,
      path !== '/' && !query ? h('button', { type: 'button', onclick: () => createShareDialog({ path, name: basename(path), kind: 'dir' }) }, 'Share folder') : null,
      modeButton, sortSelect, dirButton,
      h('form', { role: 'search', onsubmit: (ev) => { ev.preventDefault(); const q = search.value.trim(); ctx.go(q ? `/?${qs({ q })}` : `/?${qs({ path: view.cwd })}`); } },
        search, h('button', { type: 'submit' }, 'Search'))),
    view.body);
  loadUsage();
  await load();
}

function saveSort() {
  localStorage.setItem('percloud.sort', view.sort);
  localStorage.setItem('percloud.desc', view.desc ? '1' : '0');
}

function crumbs(path, query) {
  if (path === '/' && !query) return null;
  const items = [['/', 'My cloud']];
  if (!query) {
    let acc = '';
    for (const part of path.split('/').filter(Boolean)) { acc += `/${part}`; items.push([acc, part]); }
  }
  const list = items.map(([p, label], i) => {
    const last = i === items.length - 1 && !query;
    return h('li', {}, last ? h('span', { 'aria-current': 'page' }, label)
      : h('a', { href: `/?${qs({ path: p })}`, onclick: (ev) => { ev.preventDefault(); view.ctx.go(`/?${qs({ path: p })}`); } }, label));
  });
  if (query) list.push(h('li', {}, h('span', { 'aria-current': 'page' }, `Search results for “${query}”`)));
  return h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumbs' }, h('ol', {}, list));
}

async function loadUsage() {
  try {
    const u = await get('/api/usage');
    const bar = u.quota ? h('progress', { max: u.quota, value: Math.min(u.used, u.quota), 'aria-label': 'Space used' }) : null;
    replace(view.usage, bar, u.quota ? `${fmtSize(u.used)} of ${fmtSize(u.quota)} used` : `${fmtSize(u.used)} used`);
  } catch { /* usage is informative only */ }
}

async function load() {
  view.body.setAttribute('aria-busy', 'true');
  try {
    if (view.query) {
      view.entries = (await get(`/api/search?${qs({ q: view.query })}`)).results;
    } else {
      view.entries = (await get(`/api/list?${qs({ path: view.cwd })}`)).children;
    }
    render();
  } catch (err) {
    replace(view.body, h('p', { class: 'error' }, err.message));
  } finally {
    view.body.setAttribute('aria-busy', 'false');
  }
}

function sorted() {
  const key = view.sort;
  const sign = view.desc ? -1 : 1;
  return [...view.entries].sort((a, b) => {
    if (a.kind !== b.kind) return a.kind === 'dir' ? -1 : 1;
    let c = 0;
    if (key === 'size') c = (a.size || 0) - (b.size || 0);
    else if (key === 'mtime') c = (a.mtime || 0) - (b.mtime || 0);
    if (!c) c = a.name.localeCompare(b.name, undefined, { numeric: true, sensitivity: 'base' });
    return c * sign;
  });
}

function render() {
  if (!view.body) return;
  const entries = sorted();
  if (!entries.length) {
    replace(view.body, h('p', { class: 'empty' }, view.query ? 'Nothing matches.' : 'This folder is empty. Drop files here or use “Upload files”.'));
    return;
  }
  replace(view.body, view.mode === 'grid' ? grid(entries) : table(entries));
}

function table(entries) {
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col', class: 'num' }, 'Size'),
      h('th', { scope: 'col', class: 'hide-narrow' }, 'Modified'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
    h('tbody', {}, entries.map((e) => h('tr', { dataset: { path: e.path } },
      h('td', { class: 'name' }, h('span', { class: 'entry-name' }, e.thumb ? thumbImg(e, 'small') : iconFor(e), openControl(e, entries)),
        view.query ? h('div', { class: 'muted' }, parent(e.path)) : null),
      h('td', { class: 'num' }, e.kind === 'dir' ? '' : fmtSize(e.size)),
      h('td', { class: 'hide-narrow' }, fmtDate(e.mtime)),
      h('td', { class: 'num' }, moreButton(e)))))));
}

function grid(entries) {
  return h('ul', { class: 'grid' }, entries.map((e) => {
    const pic = h('div', { class: 'thumb' }, e.thumb ? thumbImg(e, 'large') : iconFor(e));
    return h('li', { class: 'tile', dataset: { path: e.path } },
      h('button', { type: 'button', class: 'open', 'aria-label': `Open ${e.name}`, onclick: () => open(e, entries) }, pic, h('div', { class: 'label' }, e.name)),
      moreButton(e));
  }));
}

function thumbImg(entry, cls) {
  const img = h('img', { alt: '', class: `thumb-img ${cls}`, loading: 'lazy', width: cls === 'small' ? 32 : 256, height: cls === 'small' ? 32 : 256 });
  loadThumb(thumbUrl(entry.path, 256)).then((url) => { img.src = url; img.dataset.loaded = '1'; }, () => { img.replaceWith(iconFor(entry)); });
  return img;
}

function openControl(entry, entries) {
  if (entry.kind === 'dir') {
    const href = `/?${qs({ path: entry.path })}`;
    return h('a', { href, onclick: (ev) => { if (!ev.ctrlKey && !ev.metaKey) { ev.preventDefault(); view.ctx.go(href); } } }, entry.name);
  }
  if (isImage(entry) || isMedia(entry)) return h('button', { type: 'button', class: 'link', onclick: () => open(entry, entries) }, entry.name);
  return h('a', { href: fileUrl(entry.path), target: '_blank', rel: 'noopener' }, entry.name);
}

const isImage = (e) => e.kind === 'file' && (e.thumb || (e.mime || '').startsWith('image/'));
const isMedia = (e) => e.kind === 'file' && /^(video|audio)\//.test(e.mime || '');

function open(entry, entries) {
  if (entry.kind === 'dir') return view.ctx.go(`/?${qs({ path: entry.path })}`);
  if (isImage(entry)) {
    const images = entries.filter(isImage);
    return openGallery(images, images.indexOf(entry), {
      preview: (e) => (e.thumb ? thumbUrl(e.path, 1024) : null),
      original: (e) => fileUrl(e.path),
      download: (e) => fileUrl(e.path, true),
    });
  }
  if (isMedia(entry)) return playMedia(entry);
  window.open(fileUrl(entry.path), '_blank', 'noopener');
}

/** Plays a video or audio file in a dialog (the box answers Range requests, so seeking works). */
export function playMedia(entry, url = fileUrl(entry.path)) {
  const tag = (entry.mime || '').startsWith('audio/') ? 'audio' : 'video';
  const media = h(tag, { controls: true, autoplay: true, src: url, preload: 'metadata', 'aria-label': entry.name });
  const dlg = infoDialog(entry.name, h('div', { class: 'player' }, media));
  dlg.addEventListener('close', () => { media.pause(); media.removeAttribute('src'); media.load(); });
}

function moreButton(entry) {
  return h('button', { type: 'button', class: 'more', 'aria-label': `Actions for ${entry.name}`, 'aria-haspopup': 'dialog', onclick: () => actions(entry) }, '⋯');
}

function actions(entry) {
  const run = (fn) => async () => { dlg.close(); try { await fn(entry); } catch (err) { fail(err); } };
  const isFile = entry.kind === 'file';
  const dlg = infoDialog(entry.name, h('div', { class: 'menu' },
    isFile ? h('a', { class: 'button', href: fileUrl(entry.path, true), onclick: () => dlg.close() }, 'Download')
      : h('a', { class: 'button', href: zipUrl(entry.path), onclick: () => dlg.close() }, 'Download as zip'),
    h('button', { type: 'button', onclick: run(rename) }, 'Rename'),
    h('button', { type: 'button', onclick: run((e) => moveOrCopy(e, 'move')) }, 'Move'),
    h('button', { type: 'button', onclick: run((e) => moveOrCopy(e, 'copy')) }, 'Copy'),
    h('button', { type: 'button', onclick: run(createShareDialog) }, 'Share link'),
    isFile ? h('button', { type: 'button', onclick: run(versions) }, 'Versions') : null,
    h('button', { type: 'button', class: 'danger', onclick: run(remove) }, 'Delete')));
}

async function newFolder() {
  const [label, input] = field('Folder name', { name: 'name', required: true, autocomplete: 'off' });
  const form = await formDialog({ title: 'New folder', fields: [label, input], submit: 'Create', check: validName });
  if (!form) return;
  try {
    await post('/api/mkdir', { path: join(view.cwd, form.get('name').trim()) });
    say(`Folder ${form.get('name').trim()} created`);
    await load();
  } catch (err) { fail(err); }
}

function validName(form) {
  const name = form.elements.name.value.trim();
  if (!name || name === '.' || name === '..' || name.includes('/')) return 'Names cannot be empty, “.”, “..” or contain “/”.';
  return '';
}

async function rename(entry) {
  const [label, input] = field('New name', { name: 'name', value: entry.name, required: true, autocomplete: 'off' });
  const form = await formDialog({ title: `Rename ${entry.name}`, fields: [label, input], submit: 'Rename', check: validName });
  if (!form) return;
  await post('/api/move', { from: entry.path, to: join(parent(entry.path), form.get('name').trim()) });
  say('Renamed');
  await load();
}

async function moveOrCopy(entry, op) {
  const [label, input] = field('Destination folder', { name: 'dest', value: parent(entry.path), required: true, autocomplete: 'off' });
  const verb = op === 'move' ? 'Move' : 'Copy';
  const form = await formDialog({ title: `${verb} ${entry.name}`, fields: [label, input, h('p', { class: 'muted' }, 'A folder path such as /Photos/2024.')], submit: verb });
  if (!form) return;
  let dest = form.get('dest').trim() || '/';
  if (!dest.startsWith('/')) dest = `/${dest}`;
  await post(`/api/${op}`, { from: entry.path, to: join(dest, entry.name) });
  say(op === 'move' ? `Moved to ${dest}` : `Copied to ${dest}`);
  await load();
}

async function remove(entry) {
  if (!(await confirmDialog(`Delete ${entry.name}?`, 'It goes to the trash, where you can restore it.', 'Delete'))) return;
  await post('/api/delete', { paths: [entry.path] });
  say(`${entry.name} moved to the trash`);
  await load();
  loadUsage();
}

async function versions(entry) {
  const { versions: list } = await get(`/api/versions?${qs({ path: entry.path })}`);
  const dlg = infoDialog(`Versions of ${entry.name}`, h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Saved'), h('th', { scope: 'col', class: 'num' }, 'Size'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
    h('tbody', {}, list.map((v) => h('tr', { dataset: { version: v.version } },
      h('td', {}, fmtDate(v.mtime || v.created), v.current ? h('strong', {}, ' (current)') : null),
      h('td', { class: 'num' }, fmtSize(v.size)),
      h('td', { class: 'row' },
        h('a', { class: 'button', href: `/api/versions/file?${qs({ path: entry.path, version: v.version })}`, 'aria-label': `Download version from ${fmtDate(v.mtime || v.created)}` }, 'Download'),
        v.current ? null : h('button', { type: 'button', 'aria-label': `Restore version from ${fmtDate(v.mtime || v.created)}`, onclick: async () => {
          try {
            await post('/api/versions/restore', { path: entry.path, version: v.version });
            dlg.close();
            say('Version restored');
            await load();
          } catch (err) { fail(err); }
        } }, 'Restore'))))))));
}

// --- uploads -----------------------------------------------------------------------------

function pickerChosen(input) {
  const items = filesFromInput(input);
  input.value = '';
  uploadItems(items, view.cwd);
}

let dropReady = false;
function setupDrop() {
  if (dropReady) return;
  dropReady = true;
  dropTarget(document.body, (items) => {
    if (inFiles()) uploadItems(items, view.cwd);
    else say('Open a folder in My cloud to upload there', true);
  });
}

/** Uploads picked or dropped items (files and folders) into `base`. */
export async function uploadItems(items, base) {
  if (!items.length) return;
  if (!panel) panel = new UploadPanel(document.getElementById('uploads'));
  for (const dir of foldersOf(items)) {
    try { await post('/api/mkdir', { path: join(base, dir) }); } catch (err) {
      if (err.status !== 409) { fail(err); return; }
    }
  }
  if (items.some((i) => i.dir)) scheduleRefresh(base);
  const tasks = items.filter((i) => i.file).map((item) => async () => {
    const row = panel.add(item.rel, item.file.size);
    const up = new TusUpload(item.file, join(base, item.rel), { csrf: csrf(), onProgress: row.progress });
    row.onCancel(() => { up.cancel(); row.failed('Cancelled'); });
    try {
      await up.start();
      row.done();
    } catch (err) {
      row.failed(err.message);
    }
    scheduleRefresh(base);
  });
  await runLimited(tasks, 3);
  say(`Uploads finished: ${panel.list.querySelectorAll('[data-state="done"]').length} done`);
}

/** True while a folder (not search results) of My cloud is on screen. */
function inFiles() {
  return !view.query && view.body !== null && document.getElementById('listing') === view.body;
}

function scheduleRefresh(base) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    if (inFiles() && view.cwd === base) {
      load();
      loadUsage();
    }
  }, 300);
}

// --- trash -------------------------------------------------------------------------------

/** The trash: restore, delete forever, empty. */
export async function showTrash(ctx) {
  view.ctx = ctx;
  document.title = 'Trash · percloud';
  const body = h('div', { 'aria-live': 'polite' }, h('p', { class: 'loading' }, 'Loading…'));
  const empty = h('button', { type: 'button', class: 'danger', onclick: async () => {
    if (!(await confirmDialog('Empty the trash?', 'Everything in the trash is deleted for good.', 'Empty trash'))) return;
    try { await post('/api/trash/empty'); say('Trash emptied'); await refresh(); } catch (err) { fail(err); }
  } }, 'Empty trash');
  replace(ctx.main, h('div', { class: 'row' }, h('h1', { class: 'grow' }, 'Trash'), empty),
    h('p', { class: 'muted' }, 'Deleted files stay here until the trash is emptied or they get too old.'), body);

  async function refresh() {
    const { items } = await get('/api/trash');
    empty.disabled = !items.length;
    if (!items.length) { replace(body, h('p', { class: 'empty' }, 'The trash is empty.')); return; }
    items.sort((a, b) => b.deleted - a.deleted);
    replace(body, h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col', class: 'hide-narrow' }, 'Deleted'),
        h('th', { scope: 'col', class: 'num hide-narrow' }, 'Size'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
      h('tbody', {}, items.map((item) => h('tr', { dataset: { path: item.original_path } },
        h('td', { class: 'name' }, h('span', { class: 'entry-name' }, iconFor(item.entry), basename(item.original_path)),
          h('div', { class: 'muted' }, parent(item.original_path))),
        h('td', { class: 'hide-narrow' }, fmtDate(item.deleted)),
        h('td', { class: 'num hide-narrow' }, item.entry.kind === 'dir' ? '' : fmtSize(item.entry.size)),
        h('td', {}, h('div', { class: 'row' },
          h('button', { type: 'button', 'aria-label': `Restore ${basename(item.original_path)}`, onclick: async () => {
            try { const e = await post(`/api/trash/${item.id}/restore`); say(`Restored to ${e ? e.path : item.original_path}`); await refresh(); } catch (err) { fail(err); }
          } }, 'Restore'),
          h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${basename(item.original_path)} forever`, onclick: async () => {
            if (!(await confirmDialog('Delete forever?', `${basename(item.original_path)} cannot be recovered afterwards.`, 'Delete forever'))) return;
            try { await del(`/api/trash/${item.id}`); say('Deleted forever'); await refresh(); } catch (err) { fail(err); }
          } }, 'Delete forever')))))))));
  }
  await refresh();
}
