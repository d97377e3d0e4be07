// Chromium pages (two, or SFU_PAGES=alice,bob,carol) open the demo page in one room; each
// must decode every other page's video and receive its audio (read from getStats through
// window.demo.stats(), per remote peer).
//
//   SFU_URL=http://127.0.0.1:8000 node call.mjs      (SFU_INSECURE=1 for a self-signed cert)
//
// SFU_CUT_SIGNALING=1: the pages reach the SFU through a TCP proxy of this script; once the
// call works, every connection through it is cut (the signaling WebSockets drop, the media,
// straight to the node, does not). Each page must take its session back (`resume`, without
// joining again) and the video it receives must never stall SFU_MAX_STALL_MS (500) or more.
// SFU_EXPECT_REJOIN=1 only measures (for an SFU started with --resume-grace-secs 0).
//
// Exits non-zero on failure, after printing what each page saw and its console.
import net from 'node:net';
import { chromium } from 'playwright-core';

const base = process.env.SFU_URL;
if (!base) {
  console.error('set SFU_URL, e.g. http://127.0.0.1:8000');
  process.exit(2);
}
const insecure = process.env.SFU_INSECURE === '1';
const room = `browser-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const WANT = 30; // more than this many frames decoded and audio packets received, each
// Generous on a loaded 2-core machine: a call normally gets there in 3 to 5 s.
const timeoutMs = Number(process.env.SFU_CALL_TIMEOUT_MS || 45_000);

const args = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];
if (insecure) args.push('--ignore-certificate-errors');

// The pages' way to the SFU: straight, or through a proxy whose connections can be cut.
let pageBase = base;
const proxied = new Set();
let proxy = null;
if (process.env.SFU_CUT_SIGNALING === '1') {
  const target = new URL(base);
  proxy = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    const pair = [client, upstream];
    for (const s of pair) proxied.add(s);
    const close = () => pair.forEach((s) => { s.destroy(); proxied.delete(s); });
    client.pipe(upstream);
    upstream.pipe(client);
    for (const s of pair) {
      s.on('error', close);
      s.on('close', close);
    }
  });
  await new Promise((ok) => proxy.listen(0, '127.0.0.1', ok));
  pageBase = `${target.protocol}//127.0.0.1:${proxy.address().port}`;
}

// The longest run of samples ([time, value]) in which the value never grew from one sample
// to the next: how long no new frame was seen (sampling delays with frames in between do
// not count; a count that restarts from zero after a re-join is a stall until it grows).
function longestStall(samples) {
  let longest = 0;
  let start = null;
  for (let i = 1; i < samples.length; i++) {
    if (samples[i][1] > samples[i - 1][1]) {
      start = null;
      continue;
    }
    start ??= samples[i - 1][0];
    longest = Math.max(longest, samples[i][0] - start);
  }
  return longest;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args,
});
const names = (process.env.SFU_PAGES || 'alice,bob').split(',');
const logs = Object.fromEntries(names.map((n) => [n, []]));
let failed = false;
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: insecure });
  const pages = {};
  for (const name of names) {
    const page = await context.newPage();
    page.on('console', (m) => logs[name].push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs[name].push(`pageerror: ${e.message}`));
    // SFU_TOKEN: a join token for the room (an SFU with JOIN_SECRET), passed as the page's ?token=.
    const token = process.env.SFU_TOKEN ? `&token=${encodeURIComponent(process.env.SFU_TOKEN)}` : '';
    await page.goto(`${pageBase}/?room=${room}&name=${name}${token}`);
    const prefilled = await page.inputValue('#room');
    if (prefilled !== room) throw new Error(`${name}: room field is ${prefilled}, not ${room}`);
    await page.click('[data-testid=join]');
    pages[name] = page;
  }
  console.log(`checking: room ${room} at ${base}; each of ${names.length} pages must decode more than`
    + ` ${WANT} video frames and receive more than ${WANT} audio packets of every other page,`
    + ` still growing, within ${timeoutMs} ms`);
  // Every other page's video decoded and audio received, more than WANT each.
  const hearsEveryone = (name, stats) => names.filter((n) => n !== name).every((other) => {
    const got = stats.byPeer?.[other];
    return got && got.framesDecoded > WANT && got.audioPacketsReceived > WANT;
  });
  const deadline = Date.now() + timeoutMs;
  const last = {};
  for (;;) {
    let done = true;
    for (const [name, page] of Object.entries(pages)) {
      const stats = await page.evaluate(() => window.demo.stats());
      const grew = last[name] && stats.framesDecoded > last[name].framesDecoded
        && stats.audioPacketsReceived > last[name].audioPacketsReceived;
      last[name] = stats;
      if (!(hearsEveryone(name, stats) && grew)) done = false;
    }
    if (done) {
      console.log(`call: every page decodes every other (${JSON.stringify(last)})`);
      // One remote tile per other page, carrying its display name.
      for (const [name, page] of Object.entries(pages)) {
        const others = names.filter((n) => n !== name).sort();
        const captions = (await page.locator('[data-testid=remote-tile] figcaption').allTextContents()).sort();
        if (JSON.stringify(captions) !== JSON.stringify(others)) {
          console.log(`${name}: remote tiles are ${JSON.stringify(captions)}, want ${JSON.stringify(others)}`);
          failed = true;
        }
      }
      if (!failed) console.log('tiles: each page shows one remote tile per other page, named after it');
      break;
    }
    if (Date.now() > deadline) {
      failed = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  if (!failed && proxy) {
    const maxStall = Number(process.env.SFU_MAX_STALL_MS || 500);
    const expectRejoin = process.env.SFU_EXPECT_REJOIN === '1';
    const before = { ...last };
    const samples = Object.fromEntries(names.map((n) => [n, []]));
    const sample = async () => {
      for (const [name, page] of Object.entries(pages)) {
        const stats = await page.evaluate(() => window.demo.stats());
        const other = names.find((n) => n !== name);
        samples[name].push([Date.now(), stats.byPeer?.[other]?.framesDecoded ?? 0]);
        last[name] = stats;
      }
    };
    const until = async (ms) => {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        await sample();
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await until(1000);
    const cutAt = Date.now();
    for (const s of [...proxied]) s.destroy();
    console.log(`cut ${proxied.size} proxied connections: every page's signaling dropped`);
    const back = {};
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      await sample();
      for (const [name, stats] of Object.entries(last)) {
        const recovered = expectRejoin ? stats.joins > before[name].joins : stats.resumes > before[name].resumes;
        if (recovered && !back[name]) back[name] = Date.now() - cutAt;
      }
      if (names.every((n) => back[n])) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await until(expectRejoin ? 8000 : 3000);
    for (const name of names) {
      const stall = longestStall(samples[name]);
      const how = expectRejoin ? 'joined again' : 'resumed';
      console.log(`${name}: ${how} ${back[name] ?? 'never'} ms after the cut; longest stall of the video it`
        + ` receives: ${stall} ms (${samples[name].length} samples); joins ${before[name].joins} → ${last[name].joins},`
        + ` resumes ${before[name].resumes} → ${last[name].resumes}`);
      if (!back[name]) failed = true;
      if (!expectRejoin) {
        if (stall >= maxStall) failed = true;
        if (last[name].joins !== before[name].joins) failed = true;
        const status = await pages[name].textContent('[data-testid=status]');
        if (!status.includes('reconnected')) {
          console.log(`${name}: the status does not say it reconnected: ${status}`);
          failed = true;
        }
      }
    }
  }
  // SFU_KILL_PIDS: kill these (every node) once the call works; the pages must recover by
  // themselves (roomMoved, re-join) and decode each other's video again.
  if (!failed && process.env.SFU_KILL_PIDS) {
    const before = { ...last };
    for (const pid of process.env.SFU_KILL_PIDS.split(',')) process.kill(Number(pid), 'SIGKILL');
    const killedAt = Date.now();
    console.log(`killed nodes ${process.env.SFU_KILL_PIDS}`);
    const recoverBy = Date.now() + 45_000;
    for (;;) {
      let done = true;
      for (const [name, page] of Object.entries(pages)) {
        const stats = await page.evaluate(() => window.demo.stats());
        last[name] = stats;
        // Only a page that joined again counts (its new consumers count from zero).
        if (!(stats.joins > before[name].joins && stats.framesDecoded > WANT
          && stats.audioPacketsReceived > WANT)) done = false;
      }
      if (done) {
        console.log(`recovered: every page decodes again ${Date.now() - killedAt} ms after the kill`);
        break;
      }
      if (Date.now() > recoverBy) {
        failed = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  for (const [name, page] of Object.entries(pages)) {
    const status = await page.textContent('[data-testid=status]');
    const tiles = await page.locator('[data-testid=remote-tile]').count();
    console.log(`${name}: ${JSON.stringify(last[name])}; remote tiles: ${tiles}; status: ${status}`);
    if (process.env.SFU_SCREENSHOT_DIR) {
      await page.screenshot({ path: `${process.env.SFU_SCREENSHOT_DIR}/${name}.png` });
    }
    if (failed) {
      const shot = `/tmp/sfu-browser-${name}-${process.pid}.png`;
      await page.screenshot({ path: shot });
      console.log(`${name}: screenshot ${shot}; console:\n  ${logs[name].join('\n  ')}`);
    }
  }
} catch (e) {
  failed = true;
  console.error(e);
  for (const [name, lines] of Object.entries(logs)) console.log(`${name} console:\n  ${lines.join('\n  ')}`);
} finally {
  await browser.close();
  proxy?.close();
}
if (failed) {
  console.error(`FAILED: every page must decode more than ${WANT} video frames and receive more than ${WANT}`
    + ' audio packets of every other, and show one tile named after each');
  process.exit(1);
}
console.log(`ok: ${names.length} pages see and hear each other`);
