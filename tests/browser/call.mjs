// Chromium pages (two, or SFU_PAGES=alice,bob,carol) open the demo page in one room; each
// must decode every other page's video and receive its audio (read from getStats through
// window.demo.stats(), per remote peer).
//
//   SFU_URL=http://127.0.0.1:8000 node call.mjs      (SFU_INSECURE=1 for a self-signed cert)
//
// SFU_URL may have a path (a page behind a reverse proxy); SFU_WS=/path sets the page's
// signaling URL (?ws=).
//
// SFU_CUT_SIGNALING=1: the pages reach the SFU through a TCP proxy of this script; once the
// call works, every connection through it is cut (the signaling WebSockets drop, the media,
// straight to the node, does not). Each page must take its session back (`resume`, without
// joining again) and the video it receives must never stall SFU_MAX_STALL_MS (500) or more.
// SFU_EXPECT_REJOIN=1 only measures (for an SFU started with --resume-grace-secs 0).
// SFU_CHAT=1: the pages chat both ways and one floods (see below).
// SFU_DRAIN_CMD='monitor … drain node-1': run once the call works; every page must keep every
// other page's video (a stream moved to a new consumer counts as going on once that one
// decodes), the longest gap printed and held below SFU_MAX_GAP_MS; SFU_EXPECT_MOVES=n pages
// must have moved their media (mediaMoving).
//
// Exits non-zero on failure, after printing what each page saw and its console.
import net from 'node:net';
import { launch } from './chromium.mjs';
import { hostDisruption, longestGap } from './disruption.mjs';

const base = process.env.SFU_URL;
if (!base) {
  console.error('set SFU_URL, e.g. http://127.0.0.1:8000');
  process.exit(2);
}
const insecure = process.env.SFU_INSECURE === '1';
// SFU_ROOM: the room (else a fresh one), for a test that looks at it with the monitor.
const room = process.env.SFU_ROOM || `browser-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const WANT = 30; // more than this many frames decoded and audio packets received, each
// Generous on a loaded 2-core machine: a call normally gets there in 3 to 5 s.
const timeoutMs = Number(process.env.SFU_CALL_TIMEOUT_MS || 45_000);

// Beyond the common flags (chromium.mjs).
const args = [];
if (insecure) args.push('--ignore-certificate-errors');
// Plain-HTTP pages on addresses other than localhost (a cluster in network namespaces) may
// use the camera only when the browser is told to treat them as secure.
if (process.env.SFU_SECURE_ORIGINS) {
  args.push(`--unsafely-treat-insecure-origin-as-secure=${process.env.SFU_SECURE_ORIGINS}`);
}

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
  return longestGap(samples, (before, now) => now > before);
}

const browser = await launch(args);
const names = (process.env.SFU_PAGES || 'alice,bob').split(',');
const logs = Object.fromEntries(names.map((n) => [n, []]));
let failed = false;
const pages = {};
try {
  // SFU_NARROW=1: a phone-sized window (390 px wide); the page must not overflow it.
  const narrow = process.env.SFU_NARROW === '1';
  const context = await browser.newContext({
    ignoreHTTPSErrors: insecure,
    ...(narrow ? { viewport: { width: 390, height: 844 } } : {}),
  });
  for (const name of names) {
    const page = await context.newPage();
    // SFU_VIEWPORTS=320x640,1600x900: each page's window size, in order.
    const viewport = (process.env.SFU_VIEWPORTS || '').split(',')[names.indexOf(name)];
    if (viewport) {
      const [width, height] = viewport.split('x').map(Number);
      await page.setViewportSize({ width, height });
    }
    page.on('console', (m) => logs[name].push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs[name].push(`pageerror: ${e.message}`));
    // SFU_TOKENS: each page's join token (an SFU with JOIN_SECRET) as name=token pairs,
    // comma-separated, passed as the page's ?token= (with tokens, the name the others see is
    // the token's).
    const tokens = Object.fromEntries(
      (process.env.SFU_TOKENS || '').split(',').filter(Boolean).map((pair) => {
        const at = pair.indexOf('=');
        return [pair.slice(0, at), pair.slice(at + 1)];
      }),
    );
    const token = tokens[name] ? `&token=${encodeURIComponent(tokens[name])}` : '';
    // SFU_WS: the signaling URL the page is told (?ws=), e.g. a reverse proxy's path.
    const ws = process.env.SFU_WS ? `&ws=${encodeURIComponent(process.env.SFU_WS)}` : '';
    // SFU_RELAY=1: the pages send and receive only through the SFU's TURN servers (?relay=1).
    const relay = process.env.SFU_RELAY === '1' ? '&relay=1' : '';
    // SFU_PAGE_URLS: each page's own base URL, in page order (pages served by different
    // hosts of a cluster, each signaling to its own host); unset: every page from SFU_URL.
    const own = (process.env.SFU_PAGE_URLS || '').split(',')[names.indexOf(name)] || pageBase;
    await page.goto(`${own}/?room=${room}&name=${name}${token}${ws}${relay}`);
    const prefilled = await page.inputValue('#room');
    if (prefilled !== room) throw new Error(`${name}: room field is ${prefilled}, not ${room}`);
    await page.click('[data-testid=join]');
    pages[name] = page;
    // SFU_JOIN_IN_TURN=1: each page is in the room before the next opens (in a cluster, the
    // first page's host is then the room's owner).
    if (process.env.SFU_JOIN_IN_TURN === '1') {
      await page.waitForFunction(() => window.demo?.state?.joined, null, { timeout: 20_000 });
    }
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
      // How each page's media goes (the selected candidate pairs), e.g. `relay/udp via tls`.
      for (const [name, page] of Object.entries(pages)) {
        const paths = await page.evaluate(() => window.demo.paths());
        console.log(`${name}: path send ${paths.send} recv ${paths.recv}`);
      }
      // SFU_HOLD_MS: the call goes on this long before the pages leave (for a test to look
      // at it from the outside meanwhile).
      // Meanwhile each page's recording mark is watched: every change is printed
      // (`alice: recording mark on`), for a test that records the room.
      if (process.env.SFU_HOLD_MS) {
        console.log(`holding the call for ${process.env.SFU_HOLD_MS} ms`);
        const marks = {};
        const until = Date.now() + Number(process.env.SFU_HOLD_MS);
        while (Date.now() < until) {
          for (const [name, page] of Object.entries(pages)) {
            const on = await page.evaluate(() => window.demo.recording());
            if (marks[name] !== on) console.log(`${name}: recording mark ${on ? 'on' : 'off'}`);
            marks[name] = on;
          }
          await new Promise((r) => setTimeout(r, 250));
        }
      }
      if (narrow) {
        for (const [name, page] of Object.entries(pages)) {
          const width = await page.evaluate(() => document.documentElement.scrollWidth);
          console.log(`${name}: page width ${width} px in a 390 px window`);
          if (width > 390) failed = true;
        }
      }
      break;
    }
    if (Date.now() > deadline) {
      failed = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  // SFU_SIMULCAST=1: the first page's window is small, the second's large (SFU_VIEWPORTS):
  // the first must come to receive the second's video at a lower resolution than the second
  // receives the first's, each page asking for the layer its tile needs.
  if (!failed && process.env.SFU_SIMULCAST === '1') {
    const [small, large] = names;
    const by = Date.now() + 40_000;
    let widths;
    for (;;) {
      const got = {};
      for (const name of [small, large]) {
        const stats = await pages[name].evaluate(() => window.demo.stats());
        const other = names.find((n) => n !== name);
        got[name] = stats.byPeer?.[other]?.frameWidth ?? 0;
      }
      widths = got;
      if (got[small] > 0 && got[large] > got[small] && got[small] <= 640) break;
      if (Date.now() > by) {
        failed = true;
        break;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    const layers = {};
    for (const name of [small, large]) {
      layers[name] = await pages[name].locator('[data-testid=remote-tile] [data-testid=layer]').textContent();
    }
    console.log(`simulcast: ${small} (small tile) receives ${widths[small]} px wide video (${layers[small]}), `
      + `${large} (large tile) ${widths[large]} px (${layers[large]})`);
  }
  // SFU_SCREEN=1: the first page shares its screen (Chromium's fake capture); the others get
  // a screen tile named after it and decode it; when it stops, the tile goes everywhere.
  if (!failed && process.env.SFU_SCREEN === '1') {
    const [sharer, ...viewers] = names;
    await pages[sharer].click('[data-testid=share]');
    const by = Date.now() + 30_000;
    for (const viewer of viewers) {
      for (;;) {
        const stats = await pages[viewer].evaluate(() => window.demo.stats());
        if ((stats.screens?.[sharer] ?? 0) > WANT) break;
        if (Date.now() > by) {
          console.log(`${viewer}: never decoded ${sharer}'s screen: ${JSON.stringify(stats.screens)}`);
          failed = true;
          break;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      const caption = await pages[viewer].textContent('[data-testid=screen-tile] figcaption').catch(() => null);
      console.log(`screen: ${viewer} decodes ${sharer}'s screen in a tile captioned "${caption}"`);
      if (caption !== `${sharer}'s screen`) failed = true;
    }
    const label = await pages[sharer].textContent('[data-testid=share]');
    await pages[sharer].click('[data-testid=share]');
    for (const viewer of viewers) {
      await pages[viewer].locator('[data-testid=screen-tile]').waitFor({ state: 'detached', timeout: 10_000 });
    }
    console.log(`screen: the button said "${label}"; after stopping, the screen tile is gone at every viewer`);
  }
  // SFU_CONTROLS=1: the first page mutes its microphone, then turns its camera off and on;
  // the second page's tile of it shows each, and a quality mark from its consumer's score.
  if (!failed && process.env.SFU_CONTROLS === '1') {
    const [first, second] = names;
    const tile = pages[second].locator('[data-testid=remote-tile]', { has: pages[second].locator(`figcaption:text-is("${first}")`) });
    const seen = async (testid, state) => {
      await tile.locator(`[data-testid=${testid}]`).waitFor({ state, timeout: 10_000 });
      console.log(`controls: ${second} sees ${first}'s ${testid} ${state}`);
    };
    for (const [button, mark, offLabel] of [['mic', 'muted-audio', 'Unmute'], ['cam', 'muted-video', 'Camera on']]) {
      await pages[first].click(`[data-testid=${button}]`);
      // The button says how to turn it back on as soon as it is clicked.
      const label = await pages[first].textContent(`[data-testid=${button}]`);
      await seen(mark, 'visible');
      await pages[first].click(`[data-testid=${button}]`);
      await seen(mark, 'hidden');
      console.log(`controls: ${first}'s ${button} button said "${label}" while off`);
      if (label !== offLabel) failed = true;
    }
    // On loopback nothing is lost: the mark must come to say so (score 8–10, "good").
    const good = await tile.locator('[data-testid=quality][data-level=good]')
      .waitFor({ state: 'visible', timeout: 20_000 }).then(() => true, () => false);
    const score = await tile.locator('[data-testid=quality]').getAttribute('data-score');
    const level = await tile.locator('[data-testid=quality]').getAttribute('data-level');
    console.log(`controls: quality mark ${level} (score ${score})`);
    if (!good || !(Number(score) >= 8 && Number(score) <= 10)) failed = true;
    const cameras = await pages[first].locator('[data-testid=camera-select] option').count();
    const microphones = await pages[first].locator('[data-testid=mic-select] option').count();
    console.log(`controls: quality mark score ${score}; ${cameras} camera(s), ${microphones} microphone(s) to choose from`);
    if (cameras < 1 || microphones < 1) failed = true;
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
  // SFU_CHAT=1: every page writes in the chat panel (the text box labelled "Message", the
  // "Send" button); every other page must show the message under the sender's name. Then the
  // first page sends 40 messages at once: the others get exactly the rate limit's worth of
  // that burst (SFU_CHAT_LIMIT, 20) and the sender is told it sends too fast.
  if (!failed && process.env.SFU_CHAT === '1') {
    const said = {};
    for (const name of names) {
      said[name] = `hello from ${name} ${Math.random().toString(36).slice(2, 8)}`;
      // On a phone-sized page, a long unbroken word must wrap, not widen the page.
      if (narrow) said[name] += ` https://example.com/${'a'.repeat(80)}`;
      await pages[name].getByLabel('Message').fill(said[name]);
      await pages[name].getByRole('button', { name: 'Send' }).click();
    }
    for (const name of names) {
      for (const reader of names) {
        const line = reader === name ? `${name} (you): ${said[name]}` : `${name}: ${said[name]}`;
        const found = await pages[reader].locator('[data-testid=chat-log] li', { hasText: line })
          .waitFor({ timeout: 15_000 }).then(() => true, () => false);
        console.log(`chat: ${reader} ${found ? 'shows' : 'does NOT show'} "${line}"`);
        if (!found) failed = true;
      }
    }
    if (narrow) {
      for (const [name, page] of Object.entries(pages)) {
        // The page must not widen, nor the log scroll sideways: long words wrap.
        const { width, log, logView } = await page.evaluate(() => {
          const chatLog = document.getElementById('chat-log');
          return {
            width: document.documentElement.scrollWidth,
            log: chatLog.scrollWidth,
            logView: chatLog.clientWidth,
          };
        });
        console.log(`chat: ${name}'s page is ${width} px wide in a 390 px window, its chat log ${log} px in ${logView}`);
        if (width > 390 || log > logView) failed = true;
      }
    }
    const limit = Number(process.env.SFU_CHAT_LIMIT || 20);
    const [flooder, ...readers] = names;
    // A fresh one-second window for the burst.
    await new Promise((r) => setTimeout(r, 1100));
    await pages[flooder].evaluate(() => {
      const input = document.getElementById('chat-input');
      const form = document.getElementById('chat-form');
      for (let i = 1; i <= 40; i += 1) {
        input.value = `burst ${i}`;
        form.requestSubmit();
      }
    });
    const noted = await pages[flooder].locator('#chat-note', { hasText: 'Sending too fast' })
      .waitFor({ timeout: 10_000 }).then(() => true, () => false);
    console.log(`chat: ${flooder} ${noted ? 'is' : 'is NOT'} told it sends too fast`);
    if (!noted) failed = true;
    // The burst starts a one-second window: the limit's worth arrives, the rest is
    // dropped by the media node. Wait for the limit's worth at every reader (10 s at most),
    // then nothing more may arrive in the next QUIET_MS.
    const QUIET_MS = 1000;
    const burst = (reader) => pages[reader].locator('[data-testid=chat-log] li', { hasText: `${flooder}: burst ` });
    for (const reader of readers) {
      await burst(reader).nth(limit - 1).waitFor({ timeout: 10_000 }).catch(() => {});
    }
    const counts = {};
    const quietUntil = Date.now() + QUIET_MS;
    do {
      for (const reader of readers) counts[reader] = await burst(reader).count();
      if (Object.values(counts).some((n) => n > limit + 1)) break;
      await new Promise((r) => setTimeout(r, 100));
    } while (Date.now() < quietUntil);
    // The media node counts a message when it handles it: on a starved machine the burst
    // can reach it spread over more than a second, and after the 1 s pause one more passes
    // (still never more than the limit in any second of the node's clock).
    for (const reader of readers) {
      const got = counts[reader];
      console.log(`chat: ${reader} got ${got} of ${flooder}'s burst of 40 (limit ${limit} a second, nothing more within ${QUIET_MS} ms)`);
      if (got < limit || got > limit + 1) failed = true;
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
  // SFU_KILL_HOST=pid,… (every process of one host of a cluster, killed) or SFU_DRAIN_CMD (a
  // drain, run), once the call works.
  // Each page must get every other page's video back by itself (its signaling resumed
  // through another host of the list, or its room re-joined on a surviving host). Each
  // page's longest gap in each other page's video (sampled every 250 ms) is printed and must
  // stay below SFU_MAX_GAP_MS.
  if (!failed && (process.env.SFU_KILL_HOST || process.env.SFU_DRAIN_CMD)) {
    if (!(await hostDisruption({ pages, names, last }))) failed = true;
  }
  // SFU_SWITCH_MIC=1: the first page picks another microphone in its Microphone list: its
  // local stream takes that device, and the others go on hearing it (another second of its
  // audio packets at each, within 10 s).
  if (!failed && process.env.SFU_SWITCH_MIC === '1') {
    const [switcher, ...others] = names;
    const page = pages[switcher];
    const options = await page.locator('#mic-select option')
      .evaluateAll((list) => list.map((o) => ({ value: o.value, selected: o.selected, label: o.textContent })));
    const other = options.find((o) => !o.selected && o.value !== 'default' && o.value !== 'communications');
    if (!other) {
      console.log(`switch: ${switcher} has no other microphone: ${JSON.stringify(options)}`);
      failed = true;
    } else {
      const heard = async (name) => (await pages[name].evaluate(() => window.demo.stats()))
        .byPeer[switcher]?.audioPacketsReceived ?? 0;
      const before = {};
      for (const name of others) before[name] = await heard(name);
      await page.locator('#mic-select').selectOption(other.value);
      const inUse = await page.waitForFunction(
        (id) => document.getElementById('local-video').srcObject?.getAudioTracks()[0]?.getSettings().deviceId === id,
        other.value,
        { timeout: 10_000 },
      ).then(() => true, () => false);
      console.log(`switch: ${switcher} ${inUse ? 'uses' : 'does NOT use'} microphone "${other.label}"`);
      if (!inUse) failed = true;
      const by = Date.now() + 10_000;
      for (const name of others) {
        let now = await heard(name);
        while (now <= before[name] + 50 && Date.now() < by) {
          await new Promise((r) => setTimeout(r, 250));
          now = await heard(name);
        }
        console.log(`switch: ${name} heard ${now - before[name]} audio packets of ${switcher} since the switch`);
        if (now <= before[name] + 50) failed = true;
      }
    }
  }
  // SFU_SPEAKER=1: Chromium's fake microphones beep, and their packets carry audio levels.
  // Only the first page's microphone stays on, then only the last page's: the room's active
  // speaker moves to the last page, and every other page marks its tile, and only it
  // (within 20 s: the speaker detector weighs seconds of levels).
  if (!failed && process.env.SFU_SPEAKER === '1') {
    const mic = (name) => pages[name].getByTestId('mic').click();
    const [first, last] = [names[0], names[names.length - 1]];
    for (const name of names.slice(1)) await mic(name);
    await new Promise((r) => setTimeout(r, 1500)); // the first page alone speaks a while
    await mic(last);
    await mic(first);
    const switchedAt = Date.now();
    const speakingBy = switchedAt + 20_000;
    let marked = {};
    let speaker = null;
    for (;;) {
      marked = {};
      for (const [name, page] of Object.entries(pages)) {
        marked[name] = await page.locator('[data-testid=remote-tile].speaking').allTextContents();
      }
      const unmarked = names.filter((n) => marked[n].length === 0);
      speaker = unmarked.length === 1
        && names.every((n) => n === unmarked[0]
          || (marked[n].length === 1 && marked[n][0].includes(unmarked[0])))
        ? unmarked[0] : null;
      if (speaker === last || Date.now() > speakingBy) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    console.log(`speaker: ${speaker ?? 'NONE agreed on'}; tiles marked speaking per page ${JSON.stringify(marked)}`
      + ` ${Date.now() - switchedAt} ms after the microphones changed`);
    if (speaker !== last) failed = true;
  }
  // SFU_LEAVE=1: the last page clicks Leave: the others drop its tile (within 10 s), and it
  // shows no one and can join again.
  if (!failed && process.env.SFU_LEAVE === '1') {
    const leaver = names[names.length - 1];
    await pages[leaver].getByRole('button', { name: 'Leave' }).click();
    for (const name of names.filter((n) => n !== leaver)) {
      const gone = await pages[name].locator('[data-testid=remote-tile]', { hasText: leaver })
        .waitFor({ state: 'detached', timeout: 10_000 }).then(() => true, () => false);
      console.log(`leave: ${name} ${gone ? 'dropped' : 'still shows'} ${leaver}'s tile`);
      if (!gone) failed = true;
    }
    const left = {
      tiles: await pages[leaver].locator('[data-testid=remote-tile]').count(),
      leaveDisabled: await pages[leaver].locator('#leave').isDisabled(),
    };
    console.log(`leave: ${leaver} after leaving: ${JSON.stringify(left)}`);
    if (left.tiles !== 0 || !left.leaveDisabled) failed = true;
  }
  // SFU_TERM_PID: SIGTERM the supervisor; every page still in the room says the server is
  // shutting down (within 10 s).
  if (!failed && process.env.SFU_TERM_PID) {
    process.kill(Number(process.env.SFU_TERM_PID), 'SIGTERM');
    const inRoom = process.env.SFU_LEAVE === '1' ? names.slice(0, -1) : names;
    for (const name of inRoom) {
      const told = await pages[name].locator('#error', { hasText: 'The server is shutting down.' })
        .waitFor({ timeout: 10_000 }).then(() => true, () => false);
      console.log(`shutdown: ${name} ${told ? 'says' : 'does NOT say'} the server is shutting down`);
      if (!told) failed = true;
    }
  }
  // An uncaught error in a page is a bug, whatever else worked.
  for (const [name, lines] of Object.entries(logs)) {
    const errors = lines.filter((l) => l.startsWith('pageerror'));
    if (errors.length) {
      console.log(`${name}: uncaught errors in the page:\n  ${errors.join('\n  ')}`);
      failed = true;
    }
  }
  for (const [name, page] of Object.entries(pages)) {
    const status = await page.textContent('[data-testid=status]');
    const tiles = await page.locator('[data-testid=remote-tile]').count();
    const error = await page.textContent('#error');
    console.log(`${name}: ${JSON.stringify(last[name])}; remote tiles: ${tiles}; status: ${status}`
      + (error ? `; error shown: ${error}` : ''));
    if (process.env.SFU_SCREENSHOT_DIR) {
      await page.screenshot({ path: `${process.env.SFU_SCREENSHOT_DIR}/${name}.png` });
    }
    if (failed) {
      const shot = `/tmp/sfu-browser-${name}-${process.pid}.png`;
      await page.screenshot({ path: shot });
      console.log(`${name}: screenshot ${shot}; console:\n  ${logs[name].join('\n  ')}`);
    } else if (process.env.SFU_SHOW_CONSOLE === '1') {
      console.log(`${name}: console:\n  ${logs[name].join('\n  ')}`);
    }
  }
} catch (e) {
  failed = true;
  console.error(e);
  for (const [name, lines] of Object.entries(logs)) console.log(`${name} console:\n  ${lines.join('\n  ')}`);
  for (const [name, page] of Object.entries(pages)) {
    const said = await page.evaluate(() => [
      document.getElementById('status')?.textContent,
      document.getElementById('error')?.textContent,
      document.getElementById('chat-note')?.textContent,
    ]).catch(() => []);
    console.log(`${name}: status, error and chat note: ${JSON.stringify(said)}`);
  }
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
