// The app shell: reads GET /api/state and shows the claim page, the sign-in page, or the
// signed-in app (My cloud, Shared links, Trash, Admin, Settings) with client-side routes, and
// the page a device opens to be let in (/index.php/login/v2/flow/<token>, after signing in).

import { get, post, setCsrf, ApiError } from './api.js';
import { h, replace, field, fail, say } from './ui.js';
import { showFiles, showTrash } from './files.js';
import { showShares } from './shares.js';
import { showAdmin } from './admin.js';
import { showSettings } from './settings.js';
import { showGrant, FLOW_PATH } from './devices.js';

const main = document.getElementById('main');
let state = null;

async function boot() {
  try {
    state = await get('/api/state');
  } catch (err) {
    replace(main, h('div', { class: 'card narrow' }, h('h1', {}, 'percloud'), h('p', { class: 'error' }, err.message),
      h('button', { type: 'button', onclick: boot }, 'Try again')));
    return;
  }
  setCsrf(state.csrf);
  route();
}

/** Navigates inside the app without reloading the page. */
export function go(url, replaceState = false) {
  if (replaceState) history.replaceState(null, '', url); else history.pushState(null, '', url);
  route();
}

function route() {
  const path = location.pathname;
  const params = new URLSearchParams(location.search);
  const flow = path.match(FLOW_PATH);
  if (!state.claimed) return navTo('/claim', showClaim);
  if (!state.user) {
    if (!flow) return navTo('/login', showLogin);
    // Sign in right here, then come back to the device's question.
    document.getElementById('top').hidden = true;
    return showLogin(path);
  }
  if (path === '/claim' || path === '/login') return go('/', true);
  if (flow) {
    document.getElementById('top').hidden = true;
    Promise.resolve(showGrant({ state, main, go }, flow[1])).catch(fail);
    return;
  }
  showNav(path, params);
  main.focus({ preventScroll: true });
  const ctx = { state, main, go };
  const view = params.get('view');
  let page;
  if (path === '/admin' && state.user.owner) page = showAdmin(ctx);
  else if (path === '/settings') page = showSettings(ctx, signOut);
  else if (view === 'trash') page = showTrash(ctx);
  else if (view === 'shares') page = showShares(ctx);
  else page = showFiles(ctx, params.get('path') || '/', params.get('q'));
  Promise.resolve(page).catch(fail);
}

function navTo(path, show) {
  document.getElementById('top').hidden = true;
  if (location.pathname !== path) history.replaceState(null, '', path);
  show();
}

function showNav(path, params) {
  document.getElementById('top').hidden = false;
  const view = params.get('view');
  const links = [
    ['/', 'My cloud', path === '/' && !view],
    ['/?view=shares', 'Shared links', path === '/' && view === 'shares'],
    ['/?view=trash', 'Trash', path === '/' && view === 'trash'],
    state.user.owner && ['/admin', 'Admin', path === '/admin'],
    ['/settings', 'Settings', path === '/settings'],
  ].filter(Boolean);
  replace(document.getElementById('nav'),
    links.map(([href, label, current]) => h('a', {
      href, 'aria-current': current ? 'page' : null,
      onclick: (ev) => { if (!ev.ctrlKey && !ev.metaKey) { ev.preventDefault(); go(href); } },
    }, label)),
    h('button', { type: 'button', onclick: signOut }, 'Sign out'));
}

async function signOut() {
  try { await post('/api/logout'); } catch (err) { fail(err); }
  location.href = '/login';
}

function showClaim() {
  document.title = 'Set up · percloud';
  const [nameLabel, name] = field('Your name (sign-in name)', { name: 'name', autocomplete: 'username', required: true, autocapitalize: 'none' });
  const [pwLabel, pw] = field('Password', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const [pw2Label, pw2] = field('Password again', { name: 'password2', type: 'password', autocomplete: 'new-password', required: true });
  const error = h('p', { class: 'error', role: 'alert' });
  const form = h('form', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      if (pw.value !== pw2.value) { error.textContent = 'The two passwords differ.'; pw2.focus(); return; }
      error.textContent = '';
      try {
        await post('/api/claim', { name: name.value.trim(), password: pw.value });
        say('Welcome to your percloud');
        location.href = '/';
      } catch (err) { error.textContent = err.message; }
    },
    oninput: () => { error.textContent = ''; },
  }, nameLabel, name, pwLabel, pw, pw2Label, pw2, error,
  h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create the owner account')));
  replace(main, h('div', { class: 'card narrow' },
    h('h1', {}, 'Welcome to percloud'),
    h('p', {}, 'This box has no owner yet. Create the owner account: it can add other people later.'),
    state.claim_allowed ? form
      : h('p', { class: 'error', role: 'alert' }, 'The box can only be set up from your home network. Open this page from a device on the same network as the box.'),
    h('h2', {}, 'Trust this box'),
    h('p', {}, 'Install the box\'s certificate on your devices so they connect securely. Check that the fingerprint matches the one the box shows.'),
    h('p', {}, 'Certificate fingerprint (SHA-256):'),
    h('p', { class: 'mono', id: 'ca-fingerprint' }, state.ca_fingerprint || 'unknown'),
    state.server_fingerprint ? [h('p', {}, 'Server certificate:'), h('p', { class: 'mono' }, state.server_fingerprint)] : null,
    h('p', {}, h('a', { class: 'button', href: '/ca.pem', download: 'percloud-ca.pem' }, 'Download the certificate (ca.pem)'))));
  (state.claim_allowed ? name : main).focus();
}

/** The sign-in page; `next` is where to go once signed in. */
function showLogin(next = '/') {
  document.title = 'Sign in · percloud';
  const [nameLabel, name] = field('Name', { name: 'name', autocomplete: 'username', required: true, autocapitalize: 'none' });
  const [pwLabel, pw] = field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { class: 'error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  replace(main, h('div', { class: 'card narrow' },
    h('h1', {}, 'Sign in to percloud'),
    next !== '/' ? h('p', {}, 'A device asks to connect to your percloud. Sign in to continue.') : null,
    h('form', {
      onsubmit: async (ev) => {
        ev.preventDefault();
        error.textContent = '';
        submit.disabled = true;
        try {
          await post('/api/login', { name: name.value.trim(), password: pw.value });
          location.href = next;
        } catch (err) {
          if (err instanceof ApiError && err.status === 401) error.textContent = 'Wrong name or password.';
          else if (err instanceof ApiError && err.status === 429) error.textContent = `Too many attempts. Try again in ${err.retryAfter || 'a few'} seconds.`;
          else error.textContent = err.message;
          pw.select();
        } finally { submit.disabled = false; }
      },
    }, nameLabel, name, pwLabel, pw, error, h('div', { class: 'actions' }, submit))));
  name.focus();
}

window.addEventListener('popstate', () => route());
boot();
