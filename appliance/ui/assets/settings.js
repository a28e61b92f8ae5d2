// Settings: the signed-in user's sessions (with "sign out everywhere"), devices with app
// passwords, and password change.

import { get, post, del } from './api.js';
import { h, replace, field, fail, say, fmtDate } from './ui.js';
import { devicesSection } from './devices.js';

/** The settings page; `signOut` ends this session. */
export async function showSettings(ctx, signOut) {
  document.title = 'Settings · percloud';
  const sessions = h('div', { 'aria-live': 'polite' }, h('p', { class: 'loading' }, 'Loading…'));
  const [curLabel, cur] = field('Current password', { name: 'current', type: 'password', autocomplete: 'current-password', required: true });
  const [newLabel, pw] = field('New password', { name: 'new', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const [againLabel, again] = field('New password again', { name: 'again', type: 'password', autocomplete: 'new-password', required: true });
  const pwMessage = h('p', { role: 'status' });
  const pwForm = h('form', { onsubmit: async (ev) => {
    ev.preventDefault();
    if (pw.value !== again.value) { pwMessage.className = 'error'; pwMessage.textContent = 'The new passwords differ.'; return; }
    try {
      await post('/api/password', { current: cur.value, new: pw.value });
      pwForm.reset();
      pwMessage.className = 'ok';
      pwMessage.textContent = 'Password changed.';
    } catch (err) {
      pwMessage.className = 'error';
      pwMessage.textContent = err.status === 403 ? 'The current password is wrong.' : err.message;
    }
  } }, curLabel, cur, newLabel, pw, againLabel, again, pwMessage,
  h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Change password')));

  replace(ctx.main, h('h1', {}, 'Settings'),
    h('p', {}, 'Signed in as ', h('strong', {}, ctx.state.user.name), ctx.state.user.owner ? ' (owner of this box)' : ''),
    h('div', { class: 'sections' },
      h('section', { class: 'card', 'aria-labelledby': 'sessions-h' }, h('h2', { id: 'sessions-h' }, 'Where you are signed in'), sessions,
        h('div', { class: 'actions' },
          h('button', { type: 'button', onclick: async () => {
            try { await post('/api/sessions/revoke-all'); say('Signed out everywhere else'); await refresh(); } catch (err) { fail(err); }
          } }, 'Sign out everywhere else'),
          h('button', { type: 'button', onclick: signOut }, 'Sign out here'))),
      devicesSection(),
      h('section', { class: 'card', 'aria-labelledby': 'pw-h' }, h('h2', { id: 'pw-h' }, 'Change password'), pwForm),
      h('section', { class: 'card', 'aria-labelledby': 'dav-h' }, h('h2', { id: 'dav-h' }, 'Connect other apps'),
        h('p', {}, 'File managers and rclone reach your files over WebDAV at ', h('code', {}, `${location.origin}/dav/`), ' with your name and password, or better a device password (Devices above).'),
        h('p', {}, 'The Nextcloud apps (desktop, Android, iOS) connect with the server address ', h('code', {}, location.origin), ': they open a page here where you grant them access.'))));

  async function refresh() {
    const list = await get('/api/sessions');
    list.sort((a, b) => b.last_seen - a.last_seen);
    replace(sessions, h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Device'), h('th', { scope: 'col', class: 'hide-narrow' }, 'Last active'),
        h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
      h('tbody', {}, list.map((s) => h('tr', {},
        h('td', {}, describeAgent(s.user_agent), s.current ? h('strong', {}, ' (this device)') : null,
          h('div', { class: 'muted' }, s.address || '')),
        h('td', { class: 'hide-narrow' }, fmtDate(s.last_seen)),
        h('td', {}, s.current ? null : h('button', { type: 'button', 'aria-label': `Sign out session from ${s.address || 'unknown address'}`, onclick: async () => {
          try { await del(`/api/sessions/${encodeURIComponent(s.id)}`); say('Session ended'); await refresh(); } catch (err) { fail(err); }
        } }, 'Sign out'))))))));
  }
  await refresh();
}

function describeAgent(ua) {
  if (!ua) return 'Unknown device';
  const browser = /Firefox\//.test(ua) ? 'Firefox' : /Edg\//.test(ua) ? 'Edge' : /Chrom(e|ium)\//.test(ua) ? 'Chrome'
    : /Safari\//.test(ua) ? 'Safari' : /rclone/i.test(ua) ? 'rclone' : ua.split(/[ /]/)[0];
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Windows/.test(ua) ? 'Windows'
    : /Mac OS X/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : '';
  return os ? `${browser} on ${os}` : browser;
}
