// The JSON API of docs/api.md: one fetch wrapper that adds the CSRF token and turns
// {"error": …} answers into exceptions, plus URL builders for files, thumbnails and zips.

let csrfToken = null;

/** Remembers the session's CSRF token (from GET /api/state). */
export function setCsrf(token) { csrfToken = token; }
export function csrf() { return csrfToken; }

/** An API answer with a 4xx/5xx status. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Builds a query string where every value is percent-encoded (`+` is never a space). */
export function qs(params) {
  return Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
}

/** Calls the API; resolves with the parsed JSON (or null for 204). */
export async function api(method, url, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  const init = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch {
    throw new ApiError(0, 'The box cannot be reached. Check the network and try again.');
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const message = data && data.error ? data.error : `${method} ${url.split('?')[0]} failed (${res.status})`;
    const err = new ApiError(res.status, message);
    err.retryAfter = res.headers.get('Retry-After');
    throw err;
  }
  return data;
}

export const get = (url) => api('GET', url);
export const post = (url, body) => api('POST', url, body);
export const put = (url, body) => api('PUT', url, body);
export const del = (url) => api('DELETE', url);

export const fileUrl = (path, download = false) => `/api/file?${qs({ path, download: download ? 1 : null })}`;
export const thumbUrl = (path, size = 256) => `/api/thumb?${qs({ path, size })}`;
export const zipUrl = (path) => `/api/zip?${qs({ path })}`;

/** Joins a folder path and a name: ("/", "a") → "/a", ("/x", "a/b") → "/x/a/b". */
export function join(dir, name) {
  return `${dir.replace(/\/+$/, '')}/${name.replace(/^\/+/, '')}`;
}

/** "/a/b/c.txt" → "/a/b"; "/a" → "/". */
export function parent(path) {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** "/a/b/c.txt" → "c.txt". */
export function basename(path) {
  return path.slice(path.lastIndexOf('/') + 1) || '/';
}

const pending = new Map();
/**
 * Loads a thumbnail into an object URL, retrying while the box answers 202 (still being
 * made). At most a few requests run at once so a big folder does not flood a small box.
 */
export function loadThumb(url, { attempts = 40 } = {}) {
  if (pending.has(url)) return pending.get(url);
  const promise = limited(async () => {
    for (let i = 0; i < attempts; i++) {
      const res = await fetch(url, { credentials: 'same-origin' });
      if (res.status === 200) return URL.createObjectURL(await res.blob());
      if (res.status !== 202) throw new ApiError(res.status, 'no thumbnail');
      await sleep(Math.min(500 * (i + 1), 3000));
    }
    throw new ApiError(504, 'thumbnail took too long');
  });
  pending.set(url, promise);
  promise.catch(() => pending.delete(url));
  return promise;
}

let running = 0;
const queue = [];
function limited(fn) {
  return new Promise((resolve, reject) => {
    const run = async () => {
      running++;
      try { resolve(await fn()); } catch (e) { reject(e); } finally {
        running--;
        const next = queue.shift();
        if (next) next();
      }
    };
    if (running < 4) run(); else queue.push(run);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
