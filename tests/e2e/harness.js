// Test harness: starts the real percloud binary on a free loopback port with a fresh data
// folder, launches Debian's headless Chromium through playwright-core, and saves screenshots.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = join(here, 'artifacts');
const START_TIMEOUT_MS = 60_000;

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 360, height: 740 };

/**
 * `percloud serve --data <fresh temp dir> --listen 127.0.0.1:0`; resolves once it prints
 * `listening on http://ADDR`. Set PERCLOUD_URL to test a server that already runs instead.
 */
export async function startDaemon() {
  if (process.env.PERCLOUD_URL) return { url: process.env.PERCLOUD_URL.replace(/\/$/, ''), stop: async () => {} };
  const bin = process.env.PERCLOUD_BIN || resolve(here, '../../target/debug/percloud');
  const data = mkdtempSync(join(tmpdir(), 'percloud-e2e-'));
  mkdirSync(ARTIFACTS, { recursive: true });
  const log = createWriteStream(join(ARTIFACTS, 'daemon.log'));
  const env = { ...process.env };
  delete env.PERCLOUD_DATA;
  delete env.PERCLOUD_CONFIG;
  const child = spawn(bin, ['serve', '--data', data, '--listen', '127.0.0.1:0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.pipe(log);
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`percloud did not print its listening line within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
    let buffer = '';
    child.stdout.on('data', (chunk) => {
      log.write(chunk);
      buffer += chunk.toString();
      const m = buffer.match(/listening on (http:\/\/\S+)/);
      if (m) { clearTimeout(timer); resolveUrl(m[1].replace(/\/$/, '')); }
    });
    child.on('error', (err) => { clearTimeout(timer); reject(err); });
    child.on('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`percloud exited early (${code ?? signal}); see artifacts/daemon.log`)); });
  });
  child.stdout.on('data', (chunk) => log.write(chunk));
  return {
    url,
    data,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
      log.end();
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/** Debian's Chromium, headless, with nothing that reaches the internet. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 60_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

/** Saves `name`-desktop.png (1280×800) and `name`-phone.png (360×740) of the page as it is. */
export async function screenshots(page, name, { phone = true } = {}) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const original = page.viewportSize();
  await page.setViewportSize(DESKTOP);
  await page.screenshot({ path: join(ARTIFACTS, `${name}-desktop.png`) });
  if (phone) {
    await page.setViewportSize(PHONE);
    await page.screenshot({ path: join(ARTIFACTS, `${name}-phone.png`) });
  }
  if (original) await page.setViewportSize(original);
}

/** Watches a page for uncaught script errors; `errors` lists them. */
export function watchErrors(page, errors) {
  page.on('pageerror', (err) => errors.push(`${page.url()}: ${err.message}`));
  page.on('console', (msg) => { if (msg.type() === 'error' && !/Failed to load resource/.test(msg.text())) errors.push(`${page.url()}: console: ${msg.text()}`); });
}
