// Devices: the apps signed in with app passwords (the Nextcloud apps through Login Flow v2,
// or anything given a password by hand), and the page a device opens to ask for access.

import { get, post, del } from './api.js';
import { h, replace, fail, say, fmtDate, formDialog, field, infoDialog, confirmDialog } from './ui.js';

/** The path of the page a device opens: /index.php/login/v2/flow/<token>. */
export const FLOW_PATH = /^\/index\.php\/login\/v2\/flow\/([A-Za-z0-9_-]{16,})$/;

/** "Grant access to <device>?" for the signed-in user. */
export async function showGrant(ctx, token) {
  document.title = 'Connect a device · percloud';
  const card = h('div', { class: 'card narrow', id: 'grant' }, h('p', { class: 'loading' }, 'Loading…'));
  replace(ctx.main, card);
  let flow;
  try {
    flow = await get(`/api/login-flow/${encodeURIComponent(token)}`);
  } catch (err) {
    replace(card, h('h1', {}, 'Connect a device'),
      h('p', { class: 'error', role: 'alert' }, err.status === 404
        ? 'This sign-in request is unknown or has expired. Start again on the device.' : err.message));
    return;
  }
  const done = (title, text) => replace(card, h('h1', {}, title), h('p', { role: 'status' }, text),
    h('p', {}, h('a', { href: '/' }, 'Go to your files')));
  if (flow.granted) { done('Access granted', 'You can close this window and go back to the device.'); return; }
  const grant = h('button', { type: 'submit', class: 'primary' }, 'Grant access');
  const error = h('p', { class: 'error', role: 'alert' });
  replace(card,
    h('h1', {}, 'Connect a device'),
    h('p', {}, 'Grant access to ', h('strong', { id: 'grant-device' }, flow.device), '?'),
    h('p', { class: 'muted' }, `Asked from ${flow.address}. Grant it only if you just started signing in on that device.`),
    h('p', {}, `It will see and change all files of ${ctx.state.user.name}. It signs in with a password of its own, which you can revoke in Settings › Devices at any time.`),
    h('form', { onsubmit: async (ev) => {
      ev.preventDefault();
      grant.disabled = true;
      try {
        await post(`/api/login-flow/${encodeURIComponent(token)}/grant`);
        done('Access granted', 'You can close this window and go back to the device.');
      } catch (err) { error.textContent = err.message; grant.disabled = false; }
    } }, error, h('div', { class: 'actions' }, grant,
      h('button', { type: 'button', onclick: async () => {
        try { await del(`/api/login-flow/${encodeURIComponent(token)}`); } catch (err) { fail(err); }
        done('Access refused', 'The device was not let in.');
      } }, 'Cancel'))),
    h('p', { class: 'muted' }, `Signed in as ${ctx.state.user.name}. `,
      h('button', { type: 'button', class: 'link', onclick: async () => {
        try { await post('/api/logout'); } catch (err) { fail(err); }
        location.reload();
      } }, 'Use another account')));
  grant.focus();
}

/** The "Devices" section of the settings page. */
export function devicesSection() {
  const body = h('div', { 'aria-live': 'polite' }, h('p', { class: 'loading' }, 'Loading…'));
  const section = h('section', { class: 'card', 'aria-labelledby': 'devices-h', id: 'devices' },
    h('h2', { id: 'devices-h' }, 'Devices'),
    h('p', {}, 'Phones and computers that sign in with a password of their own. The Nextcloud apps get one when you grant them access; revoke a device here and it is signed out at once.'),
    body,
    h('div', { class: 'actions' }, h('button', { type: 'button', onclick: add }, 'Add a device password')));

  async function refresh() {
    const list = await get('/api/app-passwords');
    if (!list.length) { replace(body, h('p', { class: 'muted' }, 'No devices yet.')); return; }
    replace(body, h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Device'), h('th', { scope: 'col', class: 'hide-narrow' }, 'Added'),
        h('th', { scope: 'col' }, 'Last used'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
      h('tbody', {}, list.map((d) => h('tr', {},
        h('td', {}, d.name),
        h('td', { class: 'hide-narrow' }, fmtDate(d.created)),
        h('td', {}, d.last_used ? fmtDate(d.last_used) : 'Never'),
        h('td', {}, h('button', { type: 'button', 'aria-label': `Revoke ${d.name}`, onclick: async () => {
          if (!await confirmDialog('Revoke this device?', `${d.name} will be signed out and must be connected again.`, 'Revoke')) return;
          try { await del(`/api/app-passwords/${encodeURIComponent(d.id)}`); say('Device revoked'); await refresh(); } catch (err) { fail(err); }
        } }, 'Revoke'))))))));
  }

  async function add() {
    const [label, input] = field('Device name', { name: 'name', required: true, maxlength: 200, placeholder: 'rclone on my laptop' });
    const form = await formDialog({ title: 'Add a device password', fields: [label, input], submit: 'Create' });
    if (!form) return;
    try {
      const made = await post('/api/app-passwords', { name: form.get('name') });
      infoDialog('Device password',
        h('p', {}, 'Sign in on the device with this name and password. It is shown only now.'),
        h('p', {}, 'Name: ', h('code', {}, made.login)),
        h('p', {}, 'Password: ', h('code', { class: 'mono', id: 'new-app-password' }, made.password)));
      await refresh();
    } catch (err) { fail(err); }
  }

  refresh().catch((err) => { replace(body, h('p', { class: 'error' }, err.message)); });
  return section;
}
