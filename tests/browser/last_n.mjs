// Last-N in Chromium: eight pages (SFU_PAGES) in one room, each window with room for three
// remote tiles (SFU_VIEWPORT, 640x700): each page asks the SFU for three videos. Every
// microphone is muted; then three pages speak in turn (their fake microphones beep), each
// until the other pages show its tile. At the end every page shows exactly the tiles of the
// three latest speakers it can see (a speaker's own page: the two others and one more), and
// decodes their video.
//
//   SFU_URL=http://127.0.0.1:8000 node last_n.mjs
//
// Exits non-zero on failure, after printing what each page showed and its console.
import { launch } from './chromium.mjs';

const base = process.env.SFU_URL;
if (!base) {
  console.error('set SFU_URL, e.g. http://127.0.0.1:8000');
  process.exit(2);
}
const room = `lastn-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const names = (process.env.SFU_PAGES || 'p1,p2,p3,p4,p5,p6,p7,p8').split(',');
const [width, height] = (process.env.SFU_VIEWPORT || '640x700').split('x').map(Number);
const TILES = 3;
const SPEAKER_MS = 30_000; // speaker detection weighs seconds of levels; a loaded CI is slow

const browser = await launch();
const logs = Object.fromEntries(names.map((n) => [n, []]));
const pages = {};
let failed = false;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The names on the remote tiles a page shows (not hidden by last-N).
const shown = (page) => page.locator('[data-testid=remote-tile]:not([hidden]) figcaption').allTextContents();

try {
  const context = await browser.newContext({ viewport: { width, height } });
  for (const name of names) {
    const page = await context.newPage();
    page.on('console', (m) => logs[name].push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs[name].push(`pageerror: ${e.message}`));
    await page.goto(`${base}/?room=${room}&name=${name}`);
    await page.click('[data-testid=join]');
    // In turn: the join order is the order of those who never spoke.
    await page.waitForFunction(() => window.demo?.state?.joined, null, { timeout: 30_000 });
    pages[name] = page;
  }
  const asked = {};
  for (const [name, page] of Object.entries(pages)) asked[name] = await page.evaluate(() => window.demo.lastN());
  console.log(`asked: each page's last-N in a ${width}x${height} window ${JSON.stringify(asked)}`);
  if (Object.values(asked).some((n) => n !== TILES)) throw new Error(`a page did not ask for ${TILES} videos`);
  // Every page has a tile per other page (hidden or not) before anyone speaks.
  for (const [name, page] of Object.entries(pages)) {
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid=remote-tile]').length === n,
      names.length - 1, { timeout: 30_000 });
    await page.getByTestId('mic').click();
    logs[name].push('muted');
  }
  // The last three to join speak in turn: none of them is among the first three forwarded.
  const speakers = names.slice(-TILES);
  for (const speaker of speakers) {
    await pages[speaker].getByTestId('mic').click();
    const start = Date.now();
    const listeners = names.filter((n) => !speakers.includes(n));
    for (;;) {
      const showing = await Promise.all(listeners.map((n) => shown(pages[n])));
      if (showing.every((tiles) => tiles.includes(speaker))) break;
      if (Date.now() - start > SPEAKER_MS) throw new Error(`${speaker} never shown: ${JSON.stringify(showing)}`);
      await sleep(250);
    }
    console.log(`speaks: ${speaker}, shown by every listener after ${Date.now() - start} ms`);
    await pages[speaker].getByTestId('mic').click();
  }
  // Let the videos of the last switch arrive, then look.
  await sleep(3000);
  const before = {};
  for (const [name, page] of Object.entries(pages)) before[name] = await page.evaluate(() => window.demo.stats());
  await sleep(2000);
  for (const [name, page] of Object.entries(pages)) {
    const tiles = (await shown(page)).sort();
    const stats = await page.evaluate(() => window.demo.stats());
    const expected = speakers.filter((s) => s !== name);
    const decoding = tiles.filter((t) => (stats.byPeer?.[t]?.framesDecoded ?? 0) > (before[name].byPeer?.[t]?.framesDecoded ?? 0));
    const ok = tiles.length === TILES && expected.every((s) => tiles.includes(s)) && decoding.length === TILES;
    console.log(`${name}: shows ${JSON.stringify(tiles)}, decoding ${JSON.stringify(decoding)}${ok ? '' : ' (WRONG)'}`);
    if (!ok) failed = true;
  }
  if (!failed) console.log(`last-N: every page shows the ${TILES} latest speakers and decodes their video`);
} catch (e) {
  console.log(`error: ${e.message}`);
  failed = true;
} finally {
  if (failed || process.env.SFU_SHOW_CONSOLE === '1') {
    for (const [name, lines] of Object.entries(logs)) {
      console.log(`--- ${name} console ---\n${lines.slice(-30).join('\n')}`);
    }
  }
  await browser.close();
}
process.exit(failed ? 1 : 0);
