// Collecting files from pickers and drops (folders included), the uploads panel with one
// progress bar per file, and a small queue that runs a few uploads at once.

import { h, replace, fmtSize } from './ui.js';

/**
 * Files in a drop, with their paths relative to the drop ("Holiday/day1/a.jpg").
 * Folders are walked with webkitGetAsEntry; entries must be taken during the event.
 */
export async function filesFromDrop(dataTransfer) {
  const entries = [];
  const loose = [];
  for (const item of dataTransfer.items || []) {
    if (item.kind !== 'file') continue;
    const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
    if (entry) entries.push(entry);
    else { const f = item.getAsFile(); if (f) loose.push({ file: f, rel: f.name }); }
  }
  if (!entries.length && !loose.length) {
    for (const f of dataTransfer.files || []) loose.push({ file: f, rel: f.name });
  }
  const out = [...loose];
  for (const entry of entries) await walk(entry, '', out);
  return out;
}

async function walk(entry, prefix, out) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    out.push({ file, rel: prefix + file.name });
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    const dir = `${prefix}${entry.name}/`;
    out.push({ dir: dir.slice(0, -1) });
    for (;;) {
      // readEntries returns at most ~100 entries per call: read until it returns none.
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) await walk(child, dir, out);
    }
  }
}

/** Files chosen with an <input type=file>, folder pickers included. */
export function filesFromInput(input) {
  return [...input.files].map((file) => ({ file, rel: file.webkitRelativePath || file.name }));
}

/** Folders a list of relative paths needs, parents first ("a", "a/b"). */
export function foldersOf(items) {
  const dirs = new Set();
  for (const item of items) {
    const rel = item.dir ? `${item.dir}/x` : item.rel;
    const parts = rel.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  return [...dirs].sort((a, b) => a.split('/').length - b.split('/').length);
}

/** Makes a drop target of `el`; `onFiles(items)` gets what filesFromDrop returns. */
export function dropTarget(el, onFiles, cls = 'dropping') {
  let depth = 0;
  const hasFiles = (ev) => [...(ev.dataTransfer?.types || [])].includes('Files');
  el.addEventListener('dragenter', (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    depth++;
    el.classList.add(cls);
  });
  el.addEventListener('dragover', (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = 'copy';
  });
  el.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) el.classList.remove(cls);
  });
  el.addEventListener('drop', (ev) => {
    ev.preventDefault();
    depth = 0;
    el.classList.remove(cls);
    filesFromDrop(ev.dataTransfer).then(onFiles);
  });
}

/** The panel listing uploads, each with a progress bar and a cancel button. */
export class UploadPanel {
  constructor(el) {
    this.el = el;
    this.list = h('ul');
    this.summary = h('span', { 'aria-live': 'polite' });
    this.count = 0;
    this.active = 0;
    replace(el,
      h('h2', {}, this.summary,
        h('button', { type: 'button', 'aria-label': 'Hide finished uploads', onclick: () => this.clearDone() }, 'Clear')),
      this.list);
  }

  /** Adds a row; returns callbacks to report progress and the outcome. */
  add(name, size) {
    this.el.hidden = false;
    this.count++;
    this.active++;
    this.update();
    const bar = h('progress', { max: size || 1, value: 0, 'aria-label': `Upload of ${name}` });
    const state = h('span', { class: 'muted' }, `0 of ${fmtSize(size)}`);
    const cancel = h('button', { type: 'button', 'aria-label': `Cancel upload of ${name}` }, 'Cancel');
    const row = h('li', {}, h('div', { class: 'line' }, h('span', { class: 'name' }, name), cancel), bar, state);
    this.list.append(row);
    let finished = false;
    const end = () => { if (!finished) { finished = true; this.active--; this.update(); cancel.remove(); row.dataset.done = '1'; } };
    return {
      onCancel: (fn) => cancel.addEventListener('click', fn),
      progress: (sent, total) => {
        bar.max = total || 1;
        bar.value = total ? sent : 1;
        state.textContent = `${fmtSize(sent)} of ${fmtSize(total)} (${total ? Math.floor((sent / total) * 100) : 100}%)`;
      },
      done: (text = 'Done') => { bar.max = 1; bar.value = 1; state.textContent = text; state.className = 'ok'; row.dataset.state = 'done'; end(); },
      failed: (message) => { state.textContent = message; state.className = 'error'; row.dataset.state = 'failed'; end(); },
    };
  }

  update() {
    this.summary.textContent = this.active ? `Uploading ${this.active} of ${this.count}` : `Uploads finished (${this.count})`;
  }

  clearDone() {
    for (const row of [...this.list.children]) if (row.dataset.done) row.remove();
    this.count = this.list.children.length;
    this.update();
    if (!this.count) this.el.hidden = true;
  }
}

/** Runs async tasks with at most `limit` at once; resolves when all are settled. */
export async function runLimited(tasks, limit = 3) {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const task = tasks[next++];
      try { await task(); } catch { /* each task reports its own failure */ }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
}
