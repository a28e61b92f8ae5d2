// A small tus 1.0 client (core + creation) for /api/tus/, as docs/api.md describes:
// POST creates the upload, PATCH sends it in pieces, and after a failure HEAD tells where
// to resume. Upload URLs are remembered in localStorage so a reloaded page resumes too.

const ENDPOINT = '/api/tus/';
const CHUNK = 8 * 1024 * 1024;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000, 30000];
const STORE_PREFIX = 'percloud.tus:';

/** Raised for answers that retrying cannot fix (quota, missing folder, signed out). */
export class UploadError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function b64(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** One file on its way to `path` on the box. */
export class TusUpload {
  /**
   * @param {File|Blob} file
   * @param {string} path target path on the box ("/Photos/cat.jpg")
   * @param {{csrf: string|null, onProgress?: (sent: number, total: number) => void, chunkSize?: number}} opts
   */
  constructor(file, path, opts = {}) {
    this.file = file;
    this.path = path;
    this.csrf = opts.csrf || null;
    this.onProgress = opts.onProgress || (() => {});
    this.chunkSize = opts.chunkSize || CHUNK;
    this.url = null;
    this.offset = 0;
    this.xhr = null;
    this.aborted = false;
    this.etag = null;
  }

  get storeKey() {
    const f = this.file;
    return `${STORE_PREFIX}${this.path}|${f.name || ''}|${f.size}|${f.lastModified || 0}`;
  }

  headers(extra = {}) {
    const headers = { 'Tus-Resumable': '1.0.0', ...extra };
    if (this.csrf) headers['X-CSRF-Token'] = this.csrf;
    return headers;
  }

  /** Runs the upload to the end; resolves when the file is committed on the box. */
  async start() {
    this.aborted = false;
    await this.findOrCreate();
    let failures = 0;
    while (this.offset < this.file.size || this.needsEmptyPatch) {
      if (this.aborted) throw new UploadError(0, 'Cancelled');
      try {
        await this.patch();
        failures = 0;
      } catch (err) {
        if (this.aborted) throw new UploadError(0, 'Cancelled');
        if (err instanceof UploadError && err.status !== 409) throw err;
        if (failures >= BACKOFF_MS.length) throw new UploadError(0, 'The upload keeps failing; try again later.');
        await new Promise((r) => setTimeout(r, BACKOFF_MS[failures++]));
        await this.resync();
      }
    }
    localStorage.removeItem(this.storeKey);
    return this.etag;
  }

  /** Stops sending; the partial upload stays on the box (and in localStorage) to resume. */
  abort() {
    this.aborted = true;
    if (this.xhr) this.xhr.abort();
  }

  /** Stops and deletes the partial upload on the box (termination extension). */
  async cancel() {
    this.abort();
    localStorage.removeItem(this.storeKey);
    if (this.url) {
      await fetch(this.url, { method: 'DELETE', headers: this.headers(), credentials: 'same-origin' }).catch(() => {});
    }
  }

  async findOrCreate() {
    const saved = localStorage.getItem(this.storeKey);
    if (saved) {
      this.url = saved;
      try {
        if (await this.head()) return;
      } catch { /* fall through to a new upload */ }
      localStorage.removeItem(this.storeKey);
    }
    await this.create();
  }

  async create() {
    const mtime = Math.floor((this.file.lastModified || Date.now()) / 1000);
    const res = await fetch(ENDPOINT, {
      method: 'POST',
      credentials: 'same-origin',
      headers: this.headers({
        'Upload-Length': String(this.file.size),
        'Upload-Metadata': `path ${b64(this.path)},mtime ${b64(String(mtime))}`,
      }),
    }).catch(() => { throw new UploadError(0, 'The box cannot be reached.'); });
    if (res.status !== 201) throw new UploadError(res.status, await errorText(res, 'Could not start the upload'));
    const location = res.headers.get('Location');
    if (!location) throw new UploadError(res.status, 'The box did not say where to upload.');
    this.url = new URL(location, window.location.href).pathname;
    this.offset = 0;
    // An empty file is complete at creation (the box then answers with its etag already);
    // a server that waits for a PATCH gets an empty one.
    this.etag = res.headers.get('X-Percloud-Etag');
    this.needsEmptyPatch = this.file.size === 0 && !this.etag;
    localStorage.setItem(this.storeKey, this.url);
  }

  /** Asks the box how much it has; false when the upload is gone. */
  async head() {
    const res = await fetch(this.url, { method: 'HEAD', headers: this.headers(), credentials: 'same-origin', cache: 'no-store' });
    if (res.status === 404 || res.status === 410 || res.status === 403) return false;
    if (!res.ok) throw new UploadError(res.status, 'HEAD failed');
    const offset = Number(res.headers.get('Upload-Offset'));
    if (!Number.isFinite(offset)) throw new UploadError(res.status, 'no Upload-Offset');
    this.offset = offset;
    this.onProgress(this.offset, this.file.size);
    return true;
  }

  async resync() {
    try {
      if (!(await this.head())) {
        localStorage.removeItem(this.storeKey);
        await this.create();
      }
    } catch (err) {
      if (err instanceof UploadError && err.status >= 400 && err.status < 500 && err.status !== 409) throw err;
      // Network still down: the next PATCH attempt fails again and backs off longer.
    }
  }

  patch() {
    const end = Math.min(this.offset + this.chunkSize, this.file.size);
    const piece = this.file.slice(this.offset, end);
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      this.xhr = xhr;
      xhr.open('PATCH', this.url);
      for (const [k, v] of Object.entries(this.headers({
        'Upload-Offset': String(this.offset),
        'Content-Type': 'application/offset+octet-stream',
      }))) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (ev) => this.onProgress(this.offset + ev.loaded, this.file.size);
      xhr.onerror = () => reject(new Error('network error'));
      xhr.onabort = () => reject(new Error('aborted'));
      xhr.onload = () => {
        this.xhr = null;
        if (xhr.status === 204 || xhr.status === 200) {
          const offset = Number(xhr.getResponseHeader('Upload-Offset'));
          this.offset = Number.isFinite(offset) && xhr.getResponseHeader('Upload-Offset') !== null ? offset : end;
          this.needsEmptyPatch = false;
          this.etag = xhr.getResponseHeader('X-Percloud-Etag') || this.etag;
          this.onProgress(this.offset, this.file.size);
          resolve();
        } else if (xhr.status === 409 || xhr.status >= 500 || xhr.status === 0 || xhr.status === 423) {
          reject(new Error(`PATCH ${xhr.status}`));
        } else {
          reject(new UploadError(xhr.status, errorFromXhr(xhr)));
        }
      };
      xhr.send(piece);
    });
  }
}

async function errorText(res, fallback) {
  try {
    const data = await res.json();
    if (data && data.error) return data.error;
  } catch { /* not JSON */ }
  if (res.status === 507) return 'Not enough space (quota or disk full).';
  if (res.status === 409) return 'The folder does not exist.';
  return `${fallback} (${res.status})`;
}

function errorFromXhr(xhr) {
  try {
    const data = JSON.parse(xhr.responseText);
    if (data && data.error) return data.error;
  } catch { /* not JSON */ }
  return `Upload failed (${xhr.status})`;
}
