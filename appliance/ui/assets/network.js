// Admin: the box on the LAN — devices nearby, connecting a phone, and the box's names.

import { get, put } from './api.js';
import { h, replace, field, fail, say, fmtDate } from './ui.js';

const KINDS = {
  '_percloud._tcp': 'percloud', '_googlecast._tcp': 'Google Cast', '_airplay._tcp': 'AirPlay',
  '_raop._tcp': 'AirPlay audio', '_ipp._tcp': 'Printer', '_printer._tcp': 'Printer',
  '_smb._tcp': 'File sharing', '_device-info._tcp': 'Device',
};
/** How often the device list refreshes itself while the page is open. */
const REFRESH_MS = 15000;

/** The two Admin sections and their loader. */
export function networkSections(onRenamed) {
  const devices = h('div', { 'aria-live': 'polite' }, h('p', { class: 'loading' }, 'Loading…'));
  const phone = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  let timer = 0;

  async function loadDevices() {
    clearTimeout(timer);
    const d = await get('/api/discovery');
    if (!document.body.contains(devices)) return;
    replace(devices, d.enabled ? null : h('p', { class: 'muted' }, 'Discovery is off: the box is not announced and does not look for devices.'),
      d.devices.length ? h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Kind'),
          h('th', { scope: 'col', class: 'hide-narrow' }, 'Address'), h('th', { scope: 'col' }, 'Last seen'))),
        h('tbody', {}, d.devices.map((x) => h('tr', {},
          h('td', {}, x.name), h('td', {}, KINDS[x.type] || x.type),
          h('td', { class: 'hide-narrow' }, `${x.host} (${x.addresses.join(', ')}) port ${x.port}`),
          h('td', {}, fmtDate(x.last_seen)))))))
        : h('p', { class: 'muted' }, d.enabled ? 'Nothing found yet.' : ''));
    timer = setTimeout(() => loadDevices().catch(() => {}), REFRESH_MS);
  }

  async function loadPhone() {
    const d = await get('/api/discovery');
    const urls = d.connect.urls;
    const qr = h('img', { src: '/api/admin/phone-qr.svg', width: 200, height: 200, alt: `QR code of ${urls[0]}` });
    const [iLabel, instance] = field('Name shown to apps', { name: 'instance', value: d.instance, required: true, maxlength: 63 });
    const [hLabel, host] = field('Host name (.local)', { name: 'hostname', value: d.hostname, required: true, maxlength: 63, pattern: '[A-Za-z0-9]([A-Za-z0-9\\-]*[A-Za-z0-9])?', autocapitalize: 'none' });
    replace(phone,
      h('p', {}, 'Scan with the phone’s camera, on the same Wi-Fi:'),
      qr,
      h('ul', {}, urls.map((u, i) => h('li', {}, h('a', { href: u }, u), ' ',
        h('button', { type: 'button', onclick: () => { qr.src = `/api/admin/phone-qr.svg?url=${i}`; qr.alt = `QR code of ${u}`; } }, 'QR')))),
      h('p', {}, 'Certificate fingerprint (SHA-256), to compare when the phone asks:'),
      h('p', {}, h('code', { class: 'fingerprint' }, d.connect.fingerprint || 'unknown')),
      h('form', { onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          await put('/api/admin/names', { instance: instance.value.trim(), hostname: host.value.trim() });
          say(d.enabled ? 'Names saved; announcing them again' : 'Names saved');
          await loadPhone();
          if (onRenamed) onRenamed();
        } catch (err) { fail(err); }
      } }, h('h3', {}, 'Names on the network'), iLabel, instance, hLabel, host,
      h('p', { class: 'muted' }, 'A new host name is in the certificate after the next restart.'),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Save names'))));
  }

  const sections = [
    h('section', { class: 'card', 'aria-labelledby': 'devices-h' }, h('div', { class: 'row' },
      h('h2', { id: 'devices-h', class: 'grow' }, 'Devices on this network'),
      h('button', { type: 'button', onclick: () => loadDevices().catch(fail) }, 'Refresh')), devices),
    h('section', { class: 'card', 'aria-labelledby': 'phone-h' }, h('h2', { id: 'phone-h' }, 'Connect a phone'), phone),
  ];
  return { sections, load: () => Promise.all([loadDevices().catch(fail), loadPhone().catch(fail)]) };
}
