// The demo page's pure decisions (web/src/session.js, tiles.js, signaling.js's URL), under
// `node --test`: no browser, no server.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { afterClose, closeMessage, nextDelay, reconcile } from '../src/session.js';
import { signalingUrl } from '../src/signaling.js';
import { layerFor, showQuality } from '../src/tiles.js';

test('a dropped connection of a joined page resumes, of a joining page rejoins, of a page that left does nothing', () => {
  const base = { joined: true, resuming: false, wantJoined: true, hasResumeToken: true };
  assert.equal(afterClose(base), 'resume');
  assert.equal(afterClose({ ...base, joined: false, resuming: true }), 'resume');
  assert.equal(afterClose({ ...base, hasResumeToken: false }), 'rejoin');
  assert.equal(afterClose({ ...base, joined: false }), 'rejoin');
  assert.equal(afterClose({ ...base, wantJoined: false }), 'idle');
});

test('retries back off by doubling up to 10 s', () => {
  const delays = [500];
  for (let i = 0; i < 6; i++) delays.push(nextDelay(delays.at(-1)));
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 10000, 10000]);
});

test('the close message says why', () => {
  assert.match(closeMessage(1009, false), /message too big/);
  assert.match(closeMessage(1006, true), /reconnecting/);
  assert.equal(closeMessage(1006, false), '');
});

test('a resume whose answer lacks one of our transports starts over', () => {
  const info = { transports: [{ transportId: 'send' }], consumers: [], peers: [] };
  const held = { transportIds: ['send', 'recv'], consumers: new Map(), peerIds: [] };
  assert.equal(reconcile(info, held).restart, true);
});

test('a resume drops what went away and consumes what came meanwhile, nothing twice', () => {
  const info = {
    transports: [{ transportId: 'send' }, { transportId: 'recv' }],
    consumers: [{ consumerId: 'c1', producerId: 'p1' }],
    peers: [
      { peerId: 'bob', producers: [{ producerId: 'p1' }, { producerId: 'p3', appData: { screen: true } }] },
      { peerId: 'carol', producers: [{ producerId: 'p4' }] },
    ],
  };
  const held = {
    transportIds: ['send', 'recv'],
    consumers: new Map([['c1', 'p1'], ['c2', 'p2']]),
    peerIds: ['bob', 'dave'],
  };
  assert.deepEqual(reconcile(info, held), {
    restart: false,
    removeConsumers: ['c2'],
    removePeers: ['dave'],
    consume: [
      { producerId: 'p3', peerId: 'bob', appData: { screen: true } },
      { producerId: 'p4', peerId: 'carol', appData: undefined },
    ],
  });
});

test('the signaling URL follows the page: wss for https, ws for http, ?ws= absolute or relative', () => {
  const none = new URLSearchParams('');
  assert.equal(signalingUrl(none, 'https://sfu.example.org/'), 'wss://sfu.example.org/ws');
  assert.equal(signalingUrl(none, 'http://localhost:8000/'), 'ws://localhost:8000/ws');
  const path = new URLSearchParams('ws=/api/conference');
  assert.equal(signalingUrl(path, 'https://example.org/app/'), 'wss://example.org/api/conference');
  const absolute = new URLSearchParams('ws=wss://other.example.org/ws');
  assert.equal(signalingUrl(absolute, 'https://example.org/'), 'wss://other.example.org/ws');
});

test('a tile gets the simulcast layer its size needs, in device pixels', () => {
  globalThis.window = { devicePixelRatio: 1 };
  assert.deepEqual([160, 320, 321, 640, 641, 1920].map(layerFor), [0, 0, 1, 1, 2, 2]);
  globalThis.window = { devicePixelRatio: 2 };
  assert.deepEqual([160, 161, 320, 321].map(layerFor), [0, 1, 1, 2]);
  delete globalThis.window;
});

test('a quality mark shows the score and its level', () => {
  const mark = { hidden: true, dataset: {}, title: '' };
  showQuality(mark, 9);
  assert.deepEqual([mark.hidden, mark.dataset.level, mark.title], [false, 'good', 'quality 9/10']);
  showQuality(mark, 5);
  assert.equal(mark.dataset.level, 'fair');
  showQuality(mark, 4);
  assert.equal(mark.dataset.level, 'poor');
});

test('last-N asks for as many videos as tiles fit, less the page\'s own, at least one', async () => {
  const { tilesThatFit } = await import('../src/lastn.js');
  // 1280 × 720: four 288 px columns → tiles 310 × 174, three rows: 12 tiles, 11 others.
  assert.equal(tilesThatFit({ width: 1280, height: 720 }), 11);
  // One column of one row: still one other video.
  assert.equal(tilesThatFit({ width: 300, height: 100 }), 1);
  // 1000 × 400: three columns, two rows: 5 others.
  assert.equal(tilesThatFit({ width: 1000, height: 400 }), 5);
});
