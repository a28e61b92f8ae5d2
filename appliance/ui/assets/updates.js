// Admin: system updates — what runs, the channel's newer version, installing one (from the
// channel, a URL or a bundle file) with its progress, and the history, including the
// "Update to X failed at <step>, running Y again" report with the trial's log lines.

import { get, post, csrf, ApiError } from './api.js';
import { h, replace, field, fail, say, fmtDate, fmtSize } from './ui.js';

const PHASES = {
  download: 'Downloading', verify: 'Checking the signature and contents', write: 'Writing the other slot',
  'read back': 'Verifying what was written', arm: 'Preparing the trial boot', reboot: 'Restarting into the new system',
};

/** The "Updates" section; it loads itself and follows an install's progress. */
export function updatesSection() {
  const body = h('div', { 'aria-live': 'polite' }, h('p', { class: 'loading' }, 'Loading…'));
  const section = h('section', { class: 'card', 'aria-labelledby': 'updates-h' }, h('div', { class: 'row' },
    h('h2', { id: 'updates-h', class: 'grow' }, 'Updates'),
    h('button', { type: 'button', onclick: () => load().catch(fail) }, 'Refresh')), body);
  let timer = 0;

  async function load() {
    clearTimeout(timer);
    let s;
    try { s = await get('/api/admin/update'); } catch (err) {
      if (err.status === 404) { replace(body, h('p', { class: 'muted' }, 'Updates are not set up on this box.')); return; }
      throw err;
    }
    if (!document.body.contains(body)) return;
    const p = s.progress || {};
    const busy = Object.hasOwn(PHASES, p.phase);
    const available = s.checked && s.checked.available;
    const [urlLabel, url] = field('Bundle URL', { name: 'url', type: 'url', placeholder: 'https://…/percloud-x86-64-1.2.0.pcup', autocomplete: 'off' });
    const file = h('input', { type: 'file', accept: '.pcup', 'aria-label': 'Bundle file' });
    const force = h('input', { type: 'checkbox' });
    const check = async () => {
      const c = await post('/api/admin/update/check');
      say(c.available ? `${c.available.version} is available` : 'This box runs the newest version');
      await load();
    };
    const install = async (ev) => {
      ev.preventDefault();
      if (file.files.length) await upload(file.files[0], force.checked);
      else if (url.value.trim()) await post('/api/admin/update/install', { url: url.value.trim(), force: force.checked });
      else return fail(new ApiError(400, 'Choose a bundle file or give its URL.'));
      say('Update started');
      await load();
    };
    replace(body,
      s.report ? h('div', { class: 'error', role: 'alert' }, h('p', {}, s.report), logs(s.history[0])) : null,
      h('dl', { class: 'facts' },
        h('dt', {}, 'Running'), h('dd', {}, `${s.running.version} (${s.running.board}, slot ${s.running.slot.toUpperCase()})`),
        h('dt', {}, 'Channel'), h('dd', {}, s.channel || 'none configured'),
        h('dt', {}, 'Automatic install'), h('dd', {}, s.auto_install_hour === null || s.auto_install_hour === undefined ? 'off' : `daily at ${s.auto_install_hour}:00 UTC`),
        h('dt', {}, 'Last check'), h('dd', {}, s.checked ? `${fmtDate(s.checked.at)}: ${s.checked.error || (available ? `${available.version} available (${fmtSize(available.size)})` : 'up to date')}` : 'never'),
        s.pending ? h('dt', {}, 'Waiting') : null,
        s.pending ? h('dd', {}, `${s.pending.to_version} in slot ${s.pending.to_slot.toUpperCase()}, for its trial boot`) : null),
      busy ? progress(p) : p.phase === 'failed' ? h('p', { class: 'error', role: 'status' }, p.message) : null,
      h('div', { class: 'actions' },
        s.channel ? h('button', { type: 'button', disabled: busy, onclick: () => check().catch(fail) }, 'Check now') : null,
        available ? h('button', { type: 'button', class: 'primary', disabled: busy, onclick: () =>
          post('/api/admin/update/install', { url: available.url }).then(() => { say('Update started'); return load(); }).catch(fail) }, `Install ${available.version}`) : null),
      h('form', { onsubmit: (ev) => install(ev).catch(fail) },
        h('h3', {}, 'Install a bundle'),
        h('label', {}, 'Bundle file ', file), urlLabel, url,
        h('div', {}, h('label', { class: 'inline' }, force, 'Allow the same or an older version')),
        h('p', { class: 'muted' }, 'The bundle is checked before anything is written; the box then restarts into the new system once and keeps it only if it comes up healthy.'),
        h('div', { class: 'actions' }, h('button', { type: 'submit', disabled: busy }, 'Install'))),
      h('h3', {}, 'History'),
      s.history.length ? h('ul', { class: 'history' }, s.history.map((e) => h('li', {},
        h('span', { class: e.outcome === 'failed' || e.outcome === 'refused' ? 'error' : '' }, `${fmtDate(e.at)}: ${e.from_version} → ${e.to_version}, ${e.outcome}`),
        h('div', { class: 'muted' }, e.message)))) : h('p', { class: 'muted' }, 'No updates yet.'));
    if (busy) timer = setTimeout(() => load().catch(fail), 1500);
  }

  load().catch(fail);
  return section;
}

function progress(p) {
  const label = PHASES[p.phase] || p.phase;
  return h('div', { role: 'status' },
    h('p', {}, p.total ? `${label}: ${fmtSize(p.done)} of ${fmtSize(p.total)}` : label),
    p.total ? h('progress', { max: p.total, value: p.done, 'aria-label': label }) : null);
}

function logs(entry) {
  if (!entry || !entry.logs || !entry.logs.length) return null;
  return h('details', {}, h('summary', {}, 'Log lines of the failed start'),
    h('pre', { class: 'logs', tabindex: '0' }, entry.logs.join('\n')));
}

/** Sends a bundle file as the request body (the box streams it to its data disk). */
async function upload(blob, force) {
  const res = await fetch(`/api/admin/update/install${force ? '?force=1' : ''}`, {
    method: 'POST', credentials: 'same-origin', body: blob,
    headers: { 'Content-Type': 'application/octet-stream', 'X-CSRF-Token': csrf(), Accept: 'application/json' },
  });
  if (!res.ok) {
    let message = `Upload failed (${res.status})`;
    try { message = (await res.json()).error || message; } catch { /* not JSON */ }
    throw new ApiError(res.status, message);
  }
}
