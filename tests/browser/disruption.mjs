// A host of a cluster lost (every process of it killed: SFU_KILL_HOST=pid,…) or drained
// (SFU_DRAIN_CMD, run in the background), once the call works: each page must get every
// other page's video back by itself, and each page's longest gap in each other page's video
// (sampled every 250 ms) is printed and held below SFU_MAX_GAP_MS. A drain must also end
// (its command exiting 0), move SFU_EXPECT_MOVES pages' media, and make no page join again.
import { spawn } from 'node:child_process';

// The longest run of samples ([time, value]) in which `advanced(before, now)` never held
// from one sample to the next.
export function longestGap(samples, advanced) {
  let longest = 0;
  let start = null;
  for (let i = 1; i < samples.length; i++) {
    if (advanced(samples[i - 1][1], samples[i][1])) {
      start = null;
      continue;
    }
    start ??= samples[i - 1][0];
    longest = Math.max(longest, samples[i][0] - start);
  }
  return longest;
}

// Runs the disruption against `pages` (name -> Playwright page, in `names` order); `last`
// (name -> the page's last stats) is kept current. Whether every check held.
export async function hostDisruption({ pages, names, last }) {
  let ok = true;
  const drainCmd = process.env.SFU_DRAIN_CMD;
  const maxGap = Number(process.env.SFU_MAX_GAP_MS || 10_000);
  const series = Object.fromEntries(names.map((n) => [n, Object.fromEntries(
    names.filter((o) => o !== n).map((o) => [o, []]))]));
  // Each sample: [time, {consumerId: frames decoded}] of one other page's video.
  const sampleAll = async () => {
    for (const [name, page] of Object.entries(pages)) {
      const stats = await page.evaluate(() => window.demo.stats());
      last[name] = stats;
      for (const other of Object.keys(series[name])) {
        series[name][other].push([Date.now(), stats.byPeer?.[other]?.videoConsumers ?? {}]);
      }
    }
  };
  // Whether any consumer of the stream decoded a frame between two samples.
  const advanced = (before, now) => Object.entries(now).some(([id, n]) => n > (before[id] ?? 0));
  // Decoding now: a frame within the last second.
  const flowing = (points) => {
    const now = points[points.length - 1];
    const before = points.findLast((p) => p[0] <= now[0] - 1000);
    return Boolean(before) && advanced(before[1], now[1]);
  };
  for (let i = 0; i < 8; i++) {
    await sampleAll();
    await new Promise((r) => setTimeout(r, 250));
  }
  const before = { ...last };
  let drained = null;
  if (drainCmd) {
    // In the background: the pages are sampled while the drain runs.
    drained = new Promise((resolve) => {
      const child = spawn('sh', ['-c', drainCmd], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      child.stderr.on('data', (d) => { out += d; });
      child.on('close', (code) => resolve({ code, out }));
    });
    console.log(`drain: ${drainCmd}`);
  } else {
    for (const pid of process.env.SFU_KILL_HOST.split(',')) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch (e) {
        console.log(`kill ${pid}: ${e.message}`);
      }
    }
    console.log(`killed the host's processes ${process.env.SFU_KILL_HOST}`);
  }
  const killedAt = Date.now();
  let drainResult = null;
  drained?.then((r) => { drainResult = r; });
  let recovered = null;
  const recoverBy = killedAt + 45_000;
  while (Date.now() < recoverBy) {
    await sampleAll();
    const all = names.every((n) => Object.values(series[n]).every(flowing));
    const over = drainCmd ? drainResult !== null : Date.now() - killedAt > 1500;
    if (all && over) {
      recovered = Date.now() - killedAt;
      break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const what = drainCmd ? 'the drain began' : 'the kill';
  console.log(`recovered: ${recovered === null ? 'never' : `every page decodes every other page's video ${recovered} ms after ${what}`}`);
  if (recovered === null) ok = false;
  if (drainCmd) {
    console.log(`drain ${drainResult ? `exited ${drainResult.code}` : 'did not end'}:\n${drainResult?.out ?? ''}`);
    if (drainResult?.code !== 0) ok = false;
  }
  for (let i = 0; i < 8; i++) {
    await sampleAll();
    await new Promise((r) => setTimeout(r, 250));
  }
  for (const name of names) {
    for (const [other, points] of Object.entries(series[name])) {
      const gap = longestGap(points, advanced);
      console.log(`${name}: longest gap in ${other}'s video ${gap} ms; joins ${before[name].joins} → ${last[name].joins}, resumes ${before[name].resumes} → ${last[name].resumes}, moves ${before[name].moves} → ${last[name].moves}`);
      if (gap >= maxGap) {
        ok = false;
        // What each consumer of the stream did, to tell a late new one from an early close.
        const t0 = points[0][0];
        for (const [t, v] of points) console.log(`  ${t - t0} ms ${JSON.stringify(Object.fromEntries(Object.entries(v).map(([id, n]) => [id.slice(0, 8), n])))}`);
      }
    }
  }
  const expectMoves = Number(process.env.SFU_EXPECT_MOVES || 0);
  const moved = names.filter((n) => last[n].moves > before[n].moves).length;
  if (drainCmd) console.log(`moved: ${moved} of ${names.length} pages moved their media`);
  if (moved < expectMoves) ok = false;
  // A drain moves media without a re-join.
  if (drainCmd && names.some((n) => last[n].joins !== before[n].joins)) {
    console.log('a page joined again during the drain');
    ok = false;
  }
  return ok;
}
