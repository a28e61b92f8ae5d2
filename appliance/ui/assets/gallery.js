// The photo gallery: a full-screen dialog showing one picture at a time, first the 1024 px
// preview, then the original; arrow keys, buttons and swipes move between pictures.

import { h, replace } from './ui.js';
import { loadThumb } from './api.js';

/**
 * Opens the gallery on `items[index]`. `urls.preview(item)` gives the preview URL (or null),
 * `urls.original(item)` the full picture, `urls.download(item)` the download link.
 */
export function openGallery(items, index, urls) {
  if (!items.length) return null;
  let i = Math.max(0, index);
  let token = 0;
  const title = h('span', { class: 'title', id: 'gallery-title', 'aria-live': 'polite' });
  const img = h('img', { alt: '' });
  const download = h('a', { class: 'button', href: '#', download: '' }, 'Download');
  const prev = h('button', { type: 'button', class: 'nav prev', 'aria-label': 'Previous picture', onclick: () => move(-1) }, '‹');
  const next = h('button', { type: 'button', class: 'nav next', 'aria-label': 'Next picture', onclick: () => move(1) }, '›');
  const stage = h('div', { class: 'stage' }, img);
  const dlg = h('dialog', { class: 'gallery', 'aria-labelledby': 'gallery-title' },
    h('div', { class: 'bar' }, title, download, h('button', { type: 'button', onclick: () => dlg.close() }, 'Close')),
    stage, prev, next);

  function show() {
    const item = items[i];
    const mine = ++token;
    title.textContent = `${item.name} (${i + 1} of ${items.length})`;
    img.alt = item.name;
    download.href = urls.download(item);
    prev.hidden = items.length < 2;
    next.hidden = items.length < 2;
    img.removeAttribute('src');
    img.dataset.stage = 'loading';
    const original = urls.original(item);
    const preview = urls.preview(item);
    const full = () => {
      // Swap in the original once it has loaded, unless the user moved on.
      const probe = new Image();
      probe.onload = () => { if (mine === token) { img.src = original; img.dataset.stage = 'original'; } };
      probe.src = original;
    };
    if (!preview) { img.src = original; img.dataset.stage = 'original'; return; }
    loadThumb(preview).then((url) => {
      if (mine !== token) return;
      img.src = url;
      img.dataset.stage = 'preview';
      full();
    }, () => { if (mine === token) { img.src = original; img.dataset.stage = 'original'; } });
  }

  function move(step) {
    i = (i + step + items.length) % items.length;
    show();
  }

  dlg.addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowLeft') { ev.preventDefault(); move(-1); }
    if (ev.key === 'ArrowRight') { ev.preventDefault(); move(1); }
  });
  let touchX = null;
  stage.addEventListener('touchstart', (ev) => { touchX = ev.touches[0].clientX; }, { passive: true });
  stage.addEventListener('touchend', (ev) => {
    if (touchX === null) return;
    const dx = ev.changedTouches[0].clientX - touchX;
    if (Math.abs(dx) > 50) move(dx < 0 ? 1 : -1);
    touchX = null;
  });
  dlg.addEventListener('close', () => { replace(stage); dlg.remove(); });
  document.body.append(dlg);
  dlg.showModal();
  show();
  return dlg;
}
