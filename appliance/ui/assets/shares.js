// Share links: the dialog that creates one for a file or folder, and the "Shared links"
// page listing every link with copy and revoke.

import { get, post, del } from './api.js';
import { h, replace, field, fail, say, formDialog, infoDialog, confirmDialog, fmtDate, copyText, iconFor } from './ui.js';

const absolute = (url) => new URL(url, location.origin).href;

/** Asks how to share `entry` ({path, name, kind}), creates the link and shows it. */
export async function createShareDialog(entry) {
  const isDir = entry.kind === 'dir';
  const [pwLabel, pw] = field('Password (optional)', { name: 'password', type: 'password', autocomplete: 'new-password' });
  const [expLabel, exp] = field('Expires on (optional)', { name: 'expires', type: 'date', min: new Date().toISOString().slice(0, 10) });
  const modes = h('fieldset', {}, h('legend', {}, 'People with the link can'),
    h('label', { class: 'inline' }, h('input', { type: 'radio', name: 'mode', value: 'read', checked: true }), isDir ? 'view and download' : 'view and download the file'),
    isDir ? h('label', { class: 'inline' }, h('input', { type: 'radio', name: 'mode', value: 'upload' }), 'only upload files (file drop)') : null);
  const form = await formDialog({ title: `Share ${entry.name}`, fields: [modes, pwLabel, pw, expLabel, exp], submit: 'Create link' });
  if (!form) return null;
  const expires = form.get('expires') ? Math.floor(new Date(`${form.get('expires')}T23:59:59`).getTime() / 1000) : null;
  try {
    const share = await post('/api/shares', {
      path: entry.path, mode: form.get('mode') || 'read', password: form.get('password') || null, expires,
    });
    showLink(share);
    return share;
  } catch (err) {
    fail(err);
    return null;
  }
}

function urlBox(share) {
  const url = absolute(share.url);
  const input = h('input', { type: 'text', readonly: true, value: url, 'aria-label': 'Link address', class: 'share-link' });
  return h('div', { class: 'share-url' }, input,
    h('button', { type: 'button', onclick: () => copyText(url, input) }, 'Copy'));
}

function showLink(share) {
  infoDialog('Link created',
    h('p', {}, share.mode === 'upload' ? 'Anyone with this link can upload files into the folder, and see nothing else.'
      : 'Anyone with this link can view and download.', share.has_password ? ' They need the password too.' : ''),
    urlBox(share));
  say('Share link created');
}

/** The "Shared links" page. */
export async function showShares(ctx) {
  document.title = 'Shared links · percloud';
  const body = h('div', { 'aria-live': 'polite' }, h('p', { class: 'loading' }, 'Loading…'));
  replace(ctx.main, h('h1', {}, 'Shared links'),
    h('p', { class: 'muted' }, 'Create links from a file’s or folder’s actions (⋯) in My cloud.'), body);

  async function refresh() {
    const { shares } = await get('/api/shares');
    if (!shares.length) { replace(body, h('p', { class: 'empty' }, 'No shared links.')); return; }
    shares.sort((a, b) => b.created - a.created);
    replace(body, h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Shared'), h('th', { scope: 'col' }, 'Access'),
        h('th', { scope: 'col', class: 'hide-narrow' }, 'Expires'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
      h('tbody', {}, shares.map((s) => {
        const url = absolute(s.url);
        return h('tr', { dataset: { id: s.id } },
          h('td', { class: 'name' }, h('span', { class: 'entry-name' }, iconFor({ kind: s.kind }), s.path),
            h('div', { class: 'muted hide-narrow' }, `created ${fmtDate(s.created)}`)),
          h('td', {}, s.mode === 'upload' ? 'upload only' : 'read', s.has_password ? ', password' : ''),
          h('td', { class: 'hide-narrow' }, s.expires ? fmtDate(s.expires) : 'never'),
          h('td', {}, h('div', { class: 'row' },
            h('button', { type: 'button', 'aria-label': `Copy link to ${s.path}`, onclick: () => copyText(url) }, 'Copy'),
            h('a', { class: 'button', href: s.url, target: '_blank', rel: 'noopener', 'aria-label': `Open link to ${s.path}` }, 'Open'),
            h('button', { type: 'button', class: 'danger', 'aria-label': `Revoke link to ${s.path}`, onclick: async () => {
              if (!(await confirmDialog('Revoke this link?', 'People who have it can no longer use it.', 'Revoke'))) return;
              try { await del(`/api/shares/${s.id}`); say('Link revoked'); await refresh(); } catch (err) { fail(err); }
            } }, 'Revoke'))));
      })))));
  }
  await refresh();
}
