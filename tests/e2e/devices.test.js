// A Nextcloud app connecting through Login Flow v2, seen from the browser: the device starts a
// flow over HTTP, the user opens its login URL, signs in there, grants access; the device's
// poll then gets an app password that works for WebDAV; Settings › Devices lists it, and
// revoking it there signs the device out at once.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, launchBrowser, screenshots, watchErrors, DESKTOP } from './harness.js';

const STEP = { timeout: 90_000 };
const OWNER = { name: 'carol', password: 'correct horse battery' };
const DEVICE_UA = 'Mozilla/5.0 (Android) Nextcloud-android/3.30.0';

describe('devices signing in', { timeout: 5 * 60_000 }, () => {
  let daemon;
  let browser;
  let page;
  let flow;
  let appPassword;
  const errors = [];

  before(async () => {
    daemon = await startDaemon();
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: DESKTOP });
    context.setDefaultTimeout(20_000);
    page = await context.newPage();
    watchErrors(page, errors);
    // Claim the box through the API, as the claim page does (covered by flow.test.js).
    const claimed = await fetch(`${daemon.url}/api/claim`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(OWNER),
    });
    assert.equal(claimed.status, 200);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await daemon?.stop();
  });

  const poll = () => fetch(flow.poll.endpoint, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: `token=${flow.poll.token}`,
  });
  const dav = (password) => fetch(`${daemon.url}/dav/`, {
    method: 'PROPFIND', headers: { Depth: '0', Authorization: `Basic ${Buffer.from(`${OWNER.name}:${password}`).toString('base64')}` },
  });

  test('the device starts a flow and its login page asks to sign in first', STEP, async () => {
    const started = await fetch(`${daemon.url}/index.php/login/v2`, { method: 'POST', headers: { 'User-Agent': DEVICE_UA } });
    assert.equal(started.status, 200);
    flow = await started.json();
    assert.equal((await poll()).status, 404);
    await page.goto(flow.login);
    await page.getByText('A device asks to connect to your percloud.').waitFor();
    await page.getByLabel('Name').fill(OWNER.name);
    await page.getByLabel('Password').fill(OWNER.password);
    await screenshots(page, '20-device-sign-in');
    await page.getByRole('button', { name: 'Sign in' }).click();
  });

  test('grant page names the device; granting lets the poll collect an app password', STEP, async () => {
    await page.getByRole('heading', { name: 'Connect a device' }).waitFor();
    assert.equal(await page.locator('#grant-device').textContent(), 'Nextcloud Android app');
    assert.ok(page.url().endsWith(new URL(flow.login).pathname), 'still on the login URL after signing in');
    assert.match(await page.locator('#grant').textContent(), /Asked from 127\.0\.0\.1/);
    await page.getByRole('button', { name: 'Use another account' }).waitFor();
    await screenshots(page, '21-grant');
    await page.getByRole('button', { name: 'Grant access' }).click();
    await page.getByRole('heading', { name: 'Access granted' }).waitFor();
    const collected = await poll();
    assert.equal(collected.status, 200);
    const body = await collected.json();
    assert.equal(body.loginName, OWNER.name);
    appPassword = body.appPassword;
    assert.equal((await dav(appPassword)).status, 207);
    assert.equal((await poll()).status, 404, 'collected once');
  });

  test('Settings › Devices lists the device and revoking it signs it out', STEP, async () => {
    await page.goto(`${daemon.url}/settings`);
    const devices = page.locator('#devices');
    await devices.getByRole('cell', { name: 'Nextcloud Android app', exact: true }).waitFor();
    await screenshots(page, '22-devices');
    await devices.getByRole('button', { name: 'Revoke Nextcloud Android app' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
    await devices.getByText('No devices yet.').waitFor();
    assert.equal((await dav(appPassword)).status, 401);
  });

  test('a device password added by hand works for WebDAV', STEP, async () => {
    const devices = page.locator('#devices');
    await devices.getByRole('button', { name: 'Add a device password' }).click();
    await page.getByLabel('Device name').fill('rclone on the laptop');
    await page.getByRole('button', { name: 'Create' }).click();
    const shown = await page.locator('#new-app-password').textContent();
    await screenshots(page, '23-device-password', { phone: false });
    await page.getByRole('button', { name: 'Close' }).click();
    await devices.getByRole('cell', { name: 'rclone on the laptop', exact: true }).waitFor();
    assert.equal((await dav(shown)).status, 207);
  });

  test('no script errors on these pages', () => {
    assert.deepEqual(errors, []);
  });
});
