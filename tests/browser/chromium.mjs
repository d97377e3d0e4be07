// Debian's Chromium for the browser tests, headless, with fake camera and microphone and the
// flags a closed network needs (no background connections, no QUIC).
import { chromium } from 'playwright-core';

// The flags every test page runs with.
export const CHROMIUM_ARGS = [
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

// Starts Chromium (CHROMIUM, else /usr/bin/chromium) with CHROMIUM_ARGS and `extra`.
export function launch(extra = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [...CHROMIUM_ARGS, ...extra],
  });
}
