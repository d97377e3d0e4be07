// The first mistake, explained: the demo page opened over plain HTTP under a name other than
// localhost (as from another machine on a LAN) is not a secure context, so browsers refuse
// camera, microphone and WebRTC. The page must say why and what to do, not fail obscurely.
// Chromium maps sfu.test to 127.0.0.1 (--host-resolver-rules), which makes the page insecure.
//
//   SFU_PORT=8000 node insecure.mjs
//
// Exits non-zero when the page does not explain.
import { launch } from './chromium.mjs';

const port = process.env.SFU_PORT;
if (!port) {
  console.error('set SFU_PORT, the port of a plain-HTTP supervisor on 127.0.0.1');
  process.exit(2);
}
const browser = await launch(['--host-resolver-rules=MAP sfu.test 127.0.0.1']);
let failed = false;
try {
  const page = await browser.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  await page.goto(`http://sfu.test:${port}/?room=insecure&name=lan`);
  const secure = await page.evaluate(() => window.isSecureContext);
  await page.click('[data-testid=join]');
  await page.waitForSelector('#error:not([hidden])', { timeout: 10_000 });
  const error = await page.textContent('#error');
  const status = await page.textContent('[data-testid=status]');
  const stats = await page.evaluate(() => window.demo.stats());
  console.log(`secure context: ${secure}; error: ${error}; status: ${status}`);
  for (const needed of ['secure pages', 'TLS_MODE=1', 'https://', 'localhost']) {
    if (!error.includes(needed)) {
      console.log(`the explanation lacks ${JSON.stringify(needed)}`);
      failed = true;
    }
  }
  if (secure !== false || stats.joined || /not supported/i.test(error)) failed = true;
  if (failed) console.log(`console:\n  ${logs.join('\n  ')}`);
} catch (e) {
  console.error(e);
  failed = true;
} finally {
  await browser.close();
}
if (failed) {
  console.error('FAILED: an insecure page must say why it cannot join and what to do');
  process.exit(1);
}
console.log('ok: the insecure page explains what to do');
