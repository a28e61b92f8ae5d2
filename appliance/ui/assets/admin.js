// Admin (owner only): users, storage (usage, savings, fsck, retention) and system facts.

import { get, post, put, del } from './api.js';
import { h, replace, field, fail, say, formDialog, confirmDialog, fmtSize, fmtDate, fmtDuration } from './ui.js';
import { networkSections } from './network.js';
import { remoteSection } from './remote.js';
import { updatesSection } from './updates.js';

let fsckTimer = 0;

/** The admin page. */
export async function showAdmin(ctx) {
  document.title = 'Admin · percloud';
  clearTimeout(fsckTimer);
  const users = h('div', { 'aria-live': 'polite' }, h('p', { class: 'loading' }, 'Loading…'));
  const storage = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const system = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const network = networkSections(() => loadSystem().catch(fail));
  replace(ctx.main, h('h1', {}, 'Admin'),
    h('div', { class: 'sections' },
      h('section', { class: 'card', 'aria-labelledby': 'users-h' }, h('div', { class: 'row' },
        h('h2', { id: 'users-h', class: 'grow' }, 'Users'),
        h('button', { type: 'button', class: 'primary', onclick: () => addUser().then(loadUsers, fail) }, 'Add user')), users),
      h('section', { class: 'card', 'aria-labelledby': 'storage-h' }, h('h2', { id: 'storage-h' }, 'Storage'), storage),
      h('section', { class: 'card', 'aria-labelledby': 'system-h' }, h('div', { class: 'row' },
        h('h2', { id: 'system-h', class: 'grow' }, 'System'),
        h('button', { type: 'button', onclick: () => loadSystem().catch(fail) }, 'Refresh')), system),
      network.sections,
      remoteSection(),
      updatesSection()));

  async function loadUsers() {
    const list = (await get('/api/admin/users')).users;
    replace(users, h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Used'),
        h('th', { scope: 'col', class: 'hide-narrow' }, 'Quota'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
      h('tbody', {}, list.map((u) => h('tr', { dataset: { user: u.name } },
        h('td', {}, u.name, u.owner ? h('span', { class: 'muted' }, ' (owner)') : null),
        h('td', {}, fmtSize(u.used)),
        h('td', { class: 'hide-narrow' }, u.quota ? fmtSize(u.quota) : 'none'),
        h('td', {}, h('div', { class: 'row' },
          h('button', { type: 'button', 'aria-label': `Reset password of ${u.name}`, onclick: () => resetPassword(u).catch(fail) }, 'Reset password'),
          h('button', { type: 'button', 'aria-label': `Set quota of ${u.name}`, onclick: () => setQuota(u).then(loadUsers, fail) }, 'Quota'),
          u.owner ? null : h('button', { type: 'button', class: 'danger', 'aria-label': `Remove ${u.name}`, onclick: () => removeUser(u).then(loadUsers, fail) }, 'Remove')))))))));
  }

  async function loadStorage() {
    clearTimeout(fsckTimer);
    const s = await get('/api/admin/storage');
    if (!document.body.contains(storage)) return;
    const used = s.disk_total - s.disk_free;
    const running = s.fsck && s.fsck.running;
    const fsckButton = h('button', { type: 'button', disabled: running, onclick: async () => {
      try { await post('/api/admin/fsck'); say('Check started'); } catch (err) { if (err.status !== 409) return fail(err); }
      await loadStorage();
    } }, running ? 'Checking…' : 'Run a check now');
    replace(storage,
      h('p', {}, h('progress', { max: s.disk_total || 1, value: used, 'aria-label': 'Disk used' })),
      h('dl', { class: 'facts' },
        h('dt', {}, 'Disk'), h('dd', {}, `${fmtSize(used)} used, ${fmtSize(s.disk_free)} free of ${fmtSize(s.disk_total)}`),
        h('dt', {}, 'Files'), h('dd', {}, `${fmtSize(s.logical_bytes)} in all versions`),
        h('dt', {}, 'Stored as'), h('dd', {}, `${fmtSize(s.stored_bytes)} (${fmtSize(s.pack_bytes)} in packs)`),
        h('dt', {}, 'Saved by deduplication'), h('dd', {}, fmtSize(s.saved_by_dedup)),
        h('dt', {}, 'Saved by compression'), h('dd', {}, fmtSize(s.saved_by_compression))),
      h('h3', {}, 'Integrity check'),
      h('div', { role: 'status', class: 'fsck' }, describeFsck(s.fsck)),
      h('div', { class: 'actions' }, fsckButton),
      retentionForm(s.retention));
    if (running) fsckTimer = setTimeout(() => loadStorage().catch(fail), 2000);
  }

  async function loadSystem() {
    const s = await get('/api/admin/system');
    replace(system,
      h('dl', { class: 'facts' },
        h('dt', {}, 'Version'), h('dd', {}, s.version),
        h('dt', {}, 'Name'), h('dd', {}, `${s.hostname}.local`),
        h('dt', {}, 'Up for'), h('dd', {}, fmtDuration(s.uptime)),
        h('dt', {}, 'Addresses'), h('dd', {}, (s.addresses || []).join(', ') || 'none'),
        h('dt', {}, 'Open it at'), h('dd', {}, (s.urls || []).length ? h('ul', {}, s.urls.map((u) => h('li', {}, h('a', { href: u }, u)))) : 'none')),
      h('h3', {}, 'Recent log'),
      h('pre', { class: 'logs', tabindex: '0', 'aria-label': 'Recent log lines' }, (s.logs || []).join('\n') || '(empty)'));
  }

  await Promise.all([loadUsers().catch(fail), loadStorage().catch(fail), loadSystem().catch(fail), network.load()]);
}

function describeFsck(f) {
  if (!f) return h('p', {}, 'No check has run yet.');
  const stats = `${f.chunks_checked} chunks, ${fmtSize(f.bytes_checked)} checked`;
  if (f.running) return h('p', {}, `A check is running (started ${fmtDate(f.started)}): ${stats} so far.`);
  return h('div', {},
    h('p', { class: f.clean ? 'ok' : 'error' }, f.clean ? '✔ Everything checked out.' : `✖ ${f.problems.length} problem(s) found.`),
    h('p', { class: 'muted' }, `Finished ${fmtDate(f.finished)}; ${stats}.`),
    f.problems && f.problems.length ? h('ul', {}, f.problems.slice(0, 50).map((p) => h('li', {}, p))) : null);
}

function retentionForm(r) {
  const [kvLabel, kv] = field('Versions kept per file', { name: 'keep_versions', type: 'number', min: 0, value: r.keep_versions, required: true });
  const [kdLabel, kd] = field('Keep old versions for (days)', { name: 'keep_days', type: 'number', min: 0, value: r.keep_days, required: true });
  const [tdLabel, td] = field('Empty the trash after (days)', { name: 'trash_days', type: 'number', min: 0, value: r.trash_days, required: true });
  return h('form', { onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      await put('/api/admin/retention', { keep_versions: Number(kv.value), keep_days: Number(kd.value), trash_days: Number(td.value) });
      say('Retention saved');
    } catch (err) { fail(err); }
  } }, h('h3', {}, 'Trash and versions'), kvLabel, kv, kdLabel, kd, tdLabel, td,
  h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Save retention')));
}

const GIB = 1024 ** 3;
function quotaField(value) {
  return field('Quota in GB (empty for none)', { name: 'quota', type: 'number', min: 0, step: 'any', value: value ? +(value / GIB).toFixed(2) : '' });
}
const quotaFrom = (form) => (form.get('quota') ? Math.round(Number(form.get('quota')) * GIB) : null);

async function addUser() {
  const [nLabel, n] = field('Name', { name: 'name', required: true, autocomplete: 'off', autocapitalize: 'none' });
  const [pLabel, p] = field('Password', { name: 'password', type: 'password', required: true, autocomplete: 'new-password', minlength: 8 });
  const [qLabel, q] = quotaField(null);
  const form = await formDialog({ title: 'Add user', fields: [nLabel, n, pLabel, p, qLabel, q], submit: 'Add' });
  if (!form) return;
  await post('/api/admin/users', { name: form.get('name').trim(), password: form.get('password'), quota: quotaFrom(form) });
  say(`User ${form.get('name').trim()} added`);
}

async function resetPassword(u) {
  const [pLabel, p] = field('New password', { name: 'password', type: 'password', required: true, autocomplete: 'new-password', minlength: 8 });
  const form = await formDialog({ title: `New password for ${u.name}`, fields: [pLabel, p, h('p', { class: 'muted' }, 'Their devices are signed out.')], submit: 'Set password' });
  if (!form) return;
  await post(`/api/admin/users/${encodeURIComponent(u.name)}/password`, { password: form.get('password') });
  say(`Password of ${u.name} changed`);
}

async function setQuota(u) {
  const [qLabel, q] = quotaField(u.quota);
  const form = await formDialog({ title: `Quota of ${u.name}`, fields: [qLabel, q], submit: 'Save' });
  if (!form) return;
  await post(`/api/admin/users/${encodeURIComponent(u.name)}/quota`, { quota: quotaFrom(form) });
  say(`Quota of ${u.name} saved`);
}

async function removeUser(u) {
  if (!(await confirmDialog(`Remove ${u.name}?`, 'Their account and all their files are deleted.', 'Remove'))) return;
  await del(`/api/admin/users/${encodeURIComponent(u.name)}`);
  say(`${u.name} removed`);
}
