// Admin: remote access — the port mapping on the router, the NAT diagnosis, certificates,
// and the owner's switch (opt-in: exposing the box is the owner's decision).

import { get, put, post } from './api.js';
import { h, replace, field, fail, say, fmtDate } from './ui.js';

const STATES = { disabled: 'Off', searching: 'Looking for the router…', mapped: 'Reachable through the router', failed: 'Not reachable' };

/** The "Remote access" section; it loads itself. */
export function remoteSection() {
  const body = h('div', { 'aria-live': 'polite' }, h('p', { class: 'loading' }, 'Loading…'));
  const section = h('section', { class: 'card', 'aria-labelledby': 'remote-h' }, h('div', { class: 'row' },
    h('h2', { id: 'remote-h', class: 'grow' }, 'Remote access'),
    h('button', { type: 'button', onclick: () => load().catch(fail) }, 'Refresh')), body);

  async function load() {
    let r;
    try { r = await get('/api/remote'); } catch (err) {
      if (err.status === 404) { replace(body, h('p', { class: 'muted' }, 'Not available on this box.')); return; }
      throw err;
    }
    if (!document.body.contains(body)) return;
    const m = r.mapping, pub = r.certificate.public, s = r.settings;
    const enabled = h('input', { type: 'checkbox', checked: s.enabled });
    const admin = h('input', { type: 'checkbox', checked: s.allow_remote_admin });
    const [domainLabel, domain] = field('Domain name (optional, for a trusted certificate)', { name: 'domain', value: s.domain, placeholder: 'box.example.org', autocomplete: 'off' });
    const save = async (ev) => {
      ev.preventDefault();
      await put('/api/admin/remote', { enabled: enabled.checked, domain: domain.value.trim(), allow_remote_admin: admin.checked });
      say('Remote access settings saved');
      await load();
    };
    const address = m.external_ip && m.external_port ? `https://${m.external_ip}${m.external_port === 443 ? '' : `:${m.external_port}`}/` : null;
    replace(body,
      h('form', { onsubmit: (ev) => save(ev).catch(fail) },
        h('div', {}, h('label', { class: 'inline' }, enabled, 'Reachable from the internet (HTTPS only)')),
        h('div', {}, h('label', { class: 'inline' }, admin, 'Allow Admin and claiming from outside the home network')),
        domainLabel, domain,
        h('p', {}, h('button', { type: 'submit', class: 'primary' }, 'Save'))),
      h('dl', { class: 'facts' },
        h('dt', {}, 'State'), h('dd', {}, STATES[m.state] || m.state),
        h('dt', {}, 'Address'), h('dd', {}, address ? h('a', { href: address }, address) : '—'),
        h('dt', {}, 'Lease'), h('dd', {}, m.lease_secs === 0 ? 'permanent (the router accepts no other)' : m.lease_expires ? `until ${fmtDate(m.lease_expires)}` : '—'),
        h('dt', {}, 'Network'), h('dd', {}, m.nat ? m.nat.replace('_', ' ') : '—'),
        h('dt', {}, 'Certificate'), h('dd', {}, pub.trusted ? `${pub.issuer}, valid until ${fmtDate(pub.not_after)}` : 'the box\'s own (install its CA on your devices)'),
        h('dt', {}, 'Reachability'), h('dd', {}, r.reachability ? r.reachability.detail : 'not tested yet')),
      m.diagnosis ? h('p', { class: m.state === 'failed' ? 'error' : 'muted', role: 'status' }, m.diagnosis) : null,
      m.last_error ? h('p', { class: 'muted' }, `Last error: ${m.last_error}`) : null,
      pub.warning ? h('p', { class: 'error', role: 'alert' }, pub.warning) : null,
      s.domain ? h('button', { type: 'button', onclick: () => post('/api/admin/remote/renew').then(() => say('Renewal requested'), fail) }, 'Renew the certificate now') : null);
  }

  load().catch(fail);
  return section;
}
