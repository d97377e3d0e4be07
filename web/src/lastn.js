// Last-N video on the demo page: it asks the SFU for as many videos as tiles fit in the
// window (or `?lastN=N` in the address), again when the window resizes, and shows only the
// tiles of the peers whose video the SFU forwards (`forwardedVideos`); the others are still
// heard.

// Tiles of at least `tileMin` px wide at 16:9, `gap` apart, in a `width` × `height` area,
// less the one of this page's own camera: how many others' videos fit (at least 1).
export function tilesThatFit({ width, height, tileMin = 288, gap = 8 }) {
  const cols = Math.max(1, Math.floor((width - gap) / (tileMin + gap)));
  const tileWidth = (width - (cols + 1) * gap) / cols;
  const tileHeight = Math.max(1, (tileWidth * 9) / 16);
  const rows = Math.max(1, Math.floor((height - gap) / (tileHeight + gap)));
  return Math.max(1, cols * rows - 1);
}

// The page's last-N: `page` gives `request(method, data)`, `container` (the tiles' element)
// and `ignorable(error)`; `remote` shows the tiles.
export class LastN {
  constructor(page, remote) {
    this.page = page;
    this.remote = remote;
    const asked = Number.parseInt(new URLSearchParams(location.search).get('lastN') ?? '', 10);
    this.fixed = Number.isFinite(asked) && asked >= 0 ? asked : null;
    this.sent = null;
    let timer = null;
    window.addEventListener('resize', () => {
      clearTimeout(timer);
      timer = setTimeout(() => this.update(), 300);
    });
  }

  // How many videos to ask for now.
  wanted() {
    if (this.fixed !== null) return this.fixed;
    const top = this.page.container.getBoundingClientRect().top;
    return tilesThatFit({ width: this.page.container.clientWidth, height: window.innerHeight - top });
  }

  // For `join`: what to ask first.
  joinArgs() {
    this.sent = this.wanted();
    return { lastN: this.sent };
  }

  // Asks again if the count changed (while joined).
  update() {
    const n = this.wanted();
    if (n === this.sent || this.sent === null) return;
    this.sent = n;
    this.page.request('setLastN', { lastN: n, pinned: [] }).catch((e) => {
      if (!this.page.ignorable(e)) console.warn('setLastN', e);
    });
  }

  // The SFU says whose videos flow.
  forwarded(peerIds) {
    this.remote.showForwarded(new Set(peerIds));
  }

  // Left the room: the next join asks again.
  reset() {
    this.sent = null;
  }
}
