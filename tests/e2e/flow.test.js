// The whole journey of issue 3 in headless Chromium against the real binary: claim, sign in,
// drag-and-drop upload (a photo among them), thumbnail, gallery, a password-protected share
// link opened in a fresh browser, an upload-only link, delete and restore from the trash,
// and restoring an older version. Steps run in order and share one daemon and one browser.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon, launchBrowser, screenshots, watchErrors, DESKTOP, PHONE } from './harness.js';

const STEP = { timeout: 90_000 };
const OWNER = { name: 'alice', password: 'correct horse battery' };
const SHARE_PASSWORD = 'open sesame';

describe('percloud web pages', { timeout: 15 * 60_000 }, () => {
  let daemon;
  let browser;
  let context;
  let page;
  let shareUrl;
  const errors = [];
  const blob = randomBytes(300 * 1024 + 17);
  const notes = 'shopping list: milk, bread\n';

  before(async () => {
    daemon = await startDaemon();
    browser = await launchBrowser();
    context = await browser.newContext({ viewport: DESKTOP, acceptDownloads: true });
    context.setDefaultTimeout(20_000);
    page = await context.newPage();
    watchErrors(page, errors);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await daemon?.stop();
  });

  test('claim page: owner account, certificate fingerprint and download', STEP, async () => {
    await page.goto(`${daemon.url}/`);
    await page.waitForURL('**/claim');
    await page.getByRole('heading', { name: 'Welcome to percloud' }).waitFor();
    const fingerprint = await page.locator('#ca-fingerprint').textContent();
    assert.match(fingerprint, /[0-9A-Fa-f]{2}/, 'the claim page shows the CA fingerprint');
    const ca = await page.request.get(`${daemon.url}/ca.pem`);
    assert.equal(ca.status(), 200);
    assert.match(await ca.text(), /BEGIN CERTIFICATE/);
    await page.getByLabel('Your name (sign-in name)').fill(OWNER.name);
    await page.getByLabel('Password', { exact: true }).fill(OWNER.password);
    await page.getByLabel('Password again').fill('a different one');
    await page.getByRole('button', { name: 'Create the owner account' }).click();
    await page.getByText('The two passwords differ.').waitFor();
    await page.getByLabel('Password again').fill(OWNER.password);
    await screenshots(page, '01-claim');
    await page.getByRole('button', { name: 'Create the owner account' }).click();
    await page.getByRole('heading', { name: 'My cloud' }).waitFor();
    await screenshots(page, '02-empty-cloud');
  });

  test('sign out, wrong password refused, sign in', STEP, async () => {
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.waitForURL('**/login');
    await page.getByLabel('Name').fill(OWNER.name);
    await page.getByLabel('Password').fill('wrong password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('Wrong name or password.').waitFor();
    await screenshots(page, '03-sign-in');
    await page.getByLabel('Password').fill(OWNER.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'My cloud' }).waitFor();
  });

  test('drag and drop several files including a photo, and the picker', STEP, async () => {
    const transfer = await page.evaluateHandle(async ({ blobB64, notesText }) => {
      const dt = new DataTransfer();
      const canvas = document.createElement('canvas');
      canvas.width = 640;
      canvas.height = 480;
      const g = canvas.getContext('2d');
      const grad = g.createLinearGradient(0, 0, 640, 480);
      grad.addColorStop(0, '#f97316');
      grad.addColorStop(1, '#2563eb');
      g.fillStyle = grad;
      g.fillRect(0, 0, 640, 480);
      g.fillStyle = '#fff';
      g.beginPath();
      g.arc(320, 240, 120, 0, Math.PI * 2);
      g.fill();
      const jpeg = await new Promise((r) => canvas.toBlob(r, 'image/jpeg', 0.9));
      dt.items.add(new File([jpeg], 'photo.jpg', { type: 'image/jpeg', lastModified: 1_700_000_000_000 }));
      dt.items.add(new File([notesText], 'notes.txt', { type: 'text/plain' }));
      const bytes = Uint8Array.from(atob(blobB64), (c) => c.charCodeAt(0));
      dt.items.add(new File([bytes], 'data.bin', { type: 'application/octet-stream' }));
      return dt;
    }, { blobB64: blob.toString('base64'), notesText: notes });
    for (const type of ['dragenter', 'dragover', 'drop']) {
      await page.dispatchEvent('main', type, { dataTransfer: transfer });
    }
    await waitUploads(page, 3);
    // The picker: a file uploaded twice makes two versions.
    await page.setInputFiles('#upload-files', { name: 'report.txt', mimeType: 'text/plain', buffer: Buffer.from('report, first draft\n') });
    await waitUploads(page, 4);
    await page.setInputFiles('#upload-files', { name: 'report.txt', mimeType: 'text/plain', buffer: Buffer.from('report, second draft (worse)\n') });
    await waitUploads(page, 5);
    for (const name of ['photo.jpg', 'notes.txt', 'data.bin', 'report.txt']) {
      await row(page, name).waitFor();
    }
    await screenshots(page, '04-uploads-list');
    const stored = await page.evaluate(async () => (await fetch('/api/file?path=%2Fdata.bin')).arrayBuffer().then((b) => b.byteLength));
    assert.equal(stored, blob.length);
  });

  test('a whole folder by the folder picker, empty file included', STEP, async () => {
    const root = mkdtempSync(join(tmpdir(), 'percloud-e2e-folder-'));
    try {
      const trip = join(root, 'Trip');
      mkdirSync(join(trip, 'day 1'), { recursive: true });
      writeFileSync(join(trip, 'day 1', 'plan.txt'), 'walk to the lake\n');
      writeFileSync(join(trip, 'empty.txt'), '');
      await page.setInputFiles('#upload-folder', trip);
      await waitUploads(page, 7);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
    await row(page, 'Trip').waitFor();
    const plan = await page.evaluate(() => fetch('/api/file?path=%2FTrip%2Fday%201%2Fplan.txt').then((r) => r.text()));
    assert.equal(plan, 'walk to the lake\n');
    const empty = await page.evaluate(() => fetch('/api/list?path=%2FTrip').then((r) => r.json()));
    assert.deepEqual(empty.children.map((e) => `${e.name}:${e.size}`).sort(), ['day 1:0', 'empty.txt:0']);
  });

  test('thumbnail appears in the grid view', STEP, async () => {
    await page.getByRole('button', { name: 'Hide finished uploads' }).click().catch(() => {});
    await page.getByRole('button', { name: 'Grid view' }).click();
    const thumb = page.locator('li.tile[data-path="/photo.jpg"] img[data-loaded="1"]');
    await thumb.waitFor({ timeout: 60_000 });
    const width = await thumb.evaluate((img) => img.naturalWidth);
    assert.ok(width > 0 && width <= 256, `thumbnail width ${width}`);
    await screenshots(page, '05-grid');
  });

  test('gallery shows the photo full size', STEP, async () => {
    await page.getByRole('button', { name: 'Open photo.jpg' }).click();
    const dialog = page.locator('dialog.gallery');
    await dialog.waitFor();
    await page.waitForFunction(() => {
      const img = document.querySelector('dialog.gallery .stage img');
      return img && img.complete && img.naturalWidth > 0 && img.dataset.stage === 'original';
    }, null, { timeout: 60_000 });
    assert.equal(await dialog.locator('.stage img').evaluate((img) => img.naturalWidth), 640);
    await page.keyboard.press('ArrowRight');
    await screenshots(page, '06-gallery');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    await page.getByRole('button', { name: 'Grid view' }).click(); // back to the list
  });

  test('share link with a password: a fresh browser unlocks it and downloads the same bytes', STEP, async () => {
    await page.getByRole('button', { name: 'Actions for data.bin' }).click();
    await page.getByRole('button', { name: 'Share link' }).click();
    await page.getByLabel('Password (optional)').fill(SHARE_PASSWORD);
    await page.getByRole('button', { name: 'Create link' }).click();
    shareUrl = await page.locator('input.share-link').inputValue();
    assert.match(shareUrl, /\/s\/[A-Za-z0-9_-]{43}$/);
    await screenshots(page, '07-link-created', { phone: false });
    await page.keyboard.press('Escape');

    const stranger = await browser.newContext({ viewport: PHONE, acceptDownloads: true });
    try {
      const p = await stranger.newPage();
      watchErrors(p, errors);
      await p.goto(shareUrl);
      await p.getByText('This link is protected by a password.').waitFor();
      await p.getByLabel('Password').fill('not it');
      await p.getByRole('button', { name: 'Open' }).click();
      await p.getByText('Wrong password.').waitFor();
      await p.getByLabel('Password').fill(SHARE_PASSWORD);
      await screenshots(p, '08-share-password');
      await p.getByRole('button', { name: 'Open' }).click();
      const [download] = await Promise.all([p.waitForEvent('download'), p.getByRole('link', { name: 'Download' }).click()]);
      assert.equal(download.suggestedFilename(), 'data.bin');
      const bytes = readFileSync(await download.path());
      assert.ok(bytes.equals(blob), `downloaded ${bytes.length} bytes, uploaded ${blob.length}`);
      await screenshots(p, '09-share-file');
    } finally {
      await stranger.close();
    }
  });

  test('shared links are listed in one place', STEP, async () => {
    await page.getByRole('link', { name: 'Shared links' }).click();
    await page.getByRole('button', { name: 'Revoke link to /data.bin' }).waitFor();
    await screenshots(page, '10-shared-links');
  });

  test('an upload-only link accepts a file and shows nothing else', STEP, async () => {
    await page.getByRole('link', { name: 'My cloud' }).click();
    await page.getByRole('button', { name: 'New folder' }).click();
    await page.getByLabel('Folder name').fill('Inbox');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('button', { name: 'Actions for Inbox' }).click();
    await page.getByRole('button', { name: 'Share link' }).click();
    await page.getByLabel('only upload files (file drop)').check();
    await page.getByRole('button', { name: 'Create link' }).click();
    const dropUrl = await page.locator('input.share-link').inputValue();
    await page.keyboard.press('Escape');

    const stranger = await browser.newContext({ viewport: DESKTOP });
    try {
      const p = await stranger.newPage();
      watchErrors(p, errors);
      await p.goto(dropUrl);
      await p.getByRole('button', { name: 'Choose files' }).waitFor();
      await p.setInputFiles('#drop-files', { name: 'from-a-friend.txt', mimeType: 'text/plain', buffer: Buffer.from('hello from outside\n') });
      await p.locator('#uploads li[data-state="done"]').waitFor();
      assert.equal(await p.locator('main table, main a[href*="/file"], main a[href*="/zip"]').count(), 0, 'no listing or downloads on an upload-only page');
      assert.equal(await p.getByText('from-a-friend.txt').count(), 1, 'only the upload row names the file');
      const list = await p.request.get(dropUrl.replace('/s/', '/api/public/') + '/list?path=%2F');
      assert.equal(list.status(), 403, 'listing an upload-only link is refused');
      await screenshots(p, '11-file-drop');
    } finally {
      await stranger.close();
    }
    await page.getByRole('link', { name: 'Inbox' }).click();
    await row(page, 'from-a-friend.txt').waitFor();
    await page.getByRole('link', { name: 'My cloud' }).first().click();
  });

  test('delete goes to the trash, and restore brings it back', STEP, async () => {
    await page.getByRole('button', { name: 'Actions for notes.txt' }).click();
    await page.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await row(page, 'notes.txt').waitFor({ state: 'detached' });
    await page.getByRole('link', { name: 'Trash' }).click();
    await page.getByRole('button', { name: 'Restore notes.txt' }).waitFor();
    await screenshots(page, '12-trash');
    await page.getByRole('button', { name: 'Restore notes.txt' }).click();
    await page.getByText('The trash is empty.').waitFor();
    await page.getByRole('link', { name: 'My cloud' }).click();
    await row(page, 'notes.txt').waitFor();
    const text = await page.evaluate(() => fetch('/api/file?path=%2Fnotes.txt').then((r) => r.text()));
    assert.equal(text, notes);
  });

  test('restore an older version', STEP, async () => {
    await page.getByRole('button', { name: 'Actions for report.txt' }).click();
    await page.getByRole('button', { name: 'Versions' }).click();
    const restore = page.getByRole('button', { name: /^Restore version from/ });
    await restore.first().waitFor();
    await screenshots(page, '13-versions', { phone: false });
    assert.equal(await restore.count(), 1, 'two versions: one current, one to restore');
    await restore.click();
    await page.getByText('Version restored').waitFor();
    const text = await page.evaluate(() => fetch('/api/file?path=%2Freport.txt').then((r) => r.text()));
    assert.equal(text, 'report, first draft\n');
  });

  test('rename, copy, move, search, folder zip', STEP, async () => {
    const act = async (name, action) => {
      await page.getByRole('button', { name: `Actions for ${name}` }).click();
      await page.getByRole('dialog').getByRole('button', { name: action, exact: true }).click();
    };
    await act('notes.txt', 'Rename');
    await page.getByLabel('New name').fill('groceries.txt');
    await page.getByRole('button', { name: 'Rename' }).click();
    await row(page, 'groceries.txt').waitFor();
    await act('groceries.txt', 'Copy');
    await page.getByLabel('Destination folder').fill('/Inbox');
    await page.getByRole('button', { name: 'Copy' }).click();
    await page.getByText('Copied to /Inbox').waitFor();
    await act('report.txt', 'Move');
    await page.getByLabel('Destination folder').fill('/Inbox');
    await page.getByRole('button', { name: 'Move' }).click();
    await row(page, 'report.txt').waitFor({ state: 'detached' });
    await page.getByRole('searchbox', { name: 'Search by name' }).fill('GROCER');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.locator('#listing [data-path="/Inbox/groceries.txt"]').waitFor();
    await page.locator('#listing [data-path="/groceries.txt"]').waitFor();
    await screenshots(page, '17-search');
    const zip = await page.request.get(`${daemon.url}/api/zip?path=%2FInbox`);
    assert.equal(zip.status(), 200);
    assert.equal((await zip.body()).subarray(0, 2).toString(), 'PK');
    await page.locator('#nav').getByRole('link', { name: 'My cloud' }).click();
    await row(page, 'photo.jpg').waitFor();
  });

  test('an interrupted upload resumes where it stopped, even after a reload', STEP, async () => {
    // The second PATCH dies at the network level: the client must HEAD and carry on.
    let patches = 0;
    await page.route('**/api/tus/*', (route) => {
      if (route.request().method() === 'PATCH' && ++patches === 2) return route.abort('connectionreset');
      return route.continue();
    });
    const result = await page.evaluate(async () => {
      const { TusUpload } = await import('/assets/tus.js');
      const { csrf } = await import('/assets/api.js');
      const piece = 2 * 1024 * 1024;
      const bytes = new Uint8Array(6 * piece + 12345);
      for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
      const file = new File([bytes], 'big.bin', { lastModified: 1_700_000_000_000 });
      // First attempt: stops after the first piece, as if the tab were closed.
      const first = new TusUpload(file, '/big.bin', { csrf: csrf(), chunkSize: piece, onProgress: (sent) => { if (sent >= piece) first.abort(); } });
      await first.start().catch(() => {});
      const remembered = Object.keys(localStorage).filter((k) => k.startsWith('percloud.tus:/big.bin|')).length;
      // A new client (as after a reload) finds the upload in localStorage and resumes it.
      let resumedFrom = null;
      const second = new TusUpload(file, '/big.bin', { csrf: csrf(), chunkSize: piece, onProgress: (sent) => { if (resumedFrom === null) resumedFrom = sent; } });
      await second.start();
      const stored = await (await fetch('/api/file?path=%2Fbig.bin')).arrayBuffer();
      const hex = async (buf) => [...new Uint8Array(await crypto.subtle.digest('SHA-256', buf))].map((b) => b.toString(16).padStart(2, '0')).join('');
      return {
        remembered, resumedFrom, size: bytes.length, storedSize: stored.byteLength,
        same: (await hex(bytes)) === (await hex(stored)),
        left: Object.keys(localStorage).filter((k) => k.startsWith('percloud.tus:/big.bin|')).length,
      };
    });
    await page.unroute('**/api/tus/*');
    assert.equal(result.remembered, 1, 'the unfinished upload is remembered');
    assert.ok(result.resumedFrom > 0, `resumed from ${result.resumedFrom}, not from 0`);
    assert.ok(patches >= 3, `a PATCH was cut and retried (${patches} PATCHes)`);
    assert.equal(result.storedSize, result.size);
    assert.ok(result.same, 'the stored file has the same SHA-256');
    assert.equal(result.left, 0, 'finished uploads are forgotten');
  });

  test('admin and settings pages load', STEP, async () => {
    await page.getByRole('link', { name: 'Admin' }).click();
    await page.getByRole('heading', { name: 'Users' }).waitFor();
    await page.locator('tr[data-user="alice"]').waitFor();
    await page.getByText('Saved by deduplication').waitFor();
    await page.getByText('Version', { exact: true }).waitFor();
    await page.getByRole('heading', { name: 'Remote access' }).waitFor();
    await page.getByText('Reachable from the internet (HTTPS only)').waitFor();
    await page.getByRole('heading', { name: 'Updates' }).waitFor();
    await page.getByText('Updates are not set up on this box.').waitFor();
    await page.getByRole('button', { name: 'Add user' }).click();
    await page.getByLabel('Name', { exact: true }).fill('bob');
    await page.getByLabel('Password', { exact: true }).fill('bobs long password');
    await page.getByLabel(/Quota in GB/).fill('1');
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    await page.locator('tr[data-user="bob"]').getByText('1 GB').waitFor();
    await page.getByRole('button', { name: /Run a check now|Checking/ }).click();
    await page.locator('.fsck').getByText(/Everything checked out|problem|running/).waitFor({ timeout: 60_000 });
    await screenshots(page, '14-admin');
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByText('(this device)').waitFor();
    await screenshots(page, '15-settings');
    await page.getByRole('link', { name: 'My cloud' }).click();
    await row(page, 'photo.jpg').waitFor();
    await screenshots(page, '16-list');
  });

  test('no script errors on any page', () => {
    assert.deepEqual(errors, []);
  });
});

/** The row or tile of `name` in the current folder. */
function row(page, name) {
  return page.locator(`#listing [data-path$="/${name}"]`).first();
}

/** Waits until `count` uploads in the panel are done (fails fast on a failed one). */
async function waitUploads(page, count) {
  await page.waitForFunction((n) => {
    const failed = document.querySelector('#uploads li[data-state="failed"]');
    if (failed) throw new Error(`upload failed: ${failed.textContent}`);
    return document.querySelectorAll('#uploads li[data-state="done"]').length >= n;
  }, count, { timeout: 60_000 });
}
