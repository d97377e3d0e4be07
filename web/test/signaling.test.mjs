// The demo page's signaling connection (web/src/signaling.js) against a fake WebSocket:
// numbered requests matched to their answers, error answers with their codes, notifications
// handed on, and every waiting request failed when the connection closes.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Signaling } from '../src/signaling.js';

class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static last = null;

  constructor(url) {
    this.url = url;
    this.readyState = FakeSocket.CONNECTING;
    this.sent = [];
    FakeSocket.last = this;
  }

  send(text) {
    this.sent.push(JSON.parse(text));
  }

  addEventListener() {}

  open() {
    this.readyState = FakeSocket.OPEN;
    this.onopen();
  }

  receive(frame) {
    this.onmessage({ data: JSON.stringify(frame) });
  }

  drop(code) {
    this.readyState = 3;
    this.onclose({ code });
  }
}
globalThis.WebSocket = FakeSocket;

function connected() {
  const seen = { states: [], notifications: [], closes: [] };
  const signaling = new Signaling('ws://sfu.test/ws', {
    onState: (s) => seen.states.push(s),
    onNotification: (name, data) => seen.notifications.push([name, data]),
    onClose: (event) => seen.closes.push(event.code),
  });
  const opened = signaling.connect();
  FakeSocket.last.open();
  return { signaling, socket: FakeSocket.last, seen, opened };
}

test('answers resolve the request with their id, in any order', async () => {
  const { signaling, socket, opened } = connected();
  await opened;
  const join = signaling.request('join', { room: 'demo', displayName: 'Alice' });
  const caps = signaling.request('getRouterRtpCapabilities');
  assert.deepEqual(socket.sent.map((f) => [f.id, f.method]), [[1, 'join'], [2, 'getRouterRtpCapabilities']]);
  socket.receive({ id: 2, ok: true, data: { routerRtpCapabilities: {} } });
  socket.receive({ id: 1, ok: true, data: { peerId: 'p1' } });
  assert.deepEqual(await join, { peerId: 'p1' });
  assert.deepEqual(await caps, { routerRtpCapabilities: {} });
});

test('an error answer rejects with its code and message', async () => {
  const { signaling, socket, opened } = connected();
  await opened;
  const join = signaling.request('join', { room: 'full' });
  socket.receive({ id: 1, ok: false, error: { code: 'room_full', message: 'room full has 3 peers' } });
  await assert.rejects(join, (e) => e.code === 'room_full' && e.message === 'room full has 3 peers');
});

test('notifications are handed on; frames that are not JSON are ignored', async () => {
  const { socket, seen, opened } = connected();
  await opened;
  socket.onmessage({ data: 'not json' });
  socket.receive({ notification: 'peerJoined', data: { peerId: 'p2', displayName: 'Bob' } });
  assert.deepEqual(seen.notifications, [['peerJoined', { peerId: 'p2', displayName: 'Bob' }]]);
});

test('a closed connection fails every waiting request and says so once', async () => {
  const { signaling, socket, seen, opened } = connected();
  await opened;
  const waiting = [signaling.request('produce', {}), signaling.request('consume', {})];
  socket.drop(1006);
  for (const request of waiting) await assert.rejects(request, /connection closed/);
  assert.deepEqual(seen.closes, [1006]);
  assert.deepEqual(seen.states, ['connecting', 'open', 'closed']);
  await assert.rejects(signaling.request('leave'), /connection closed/);
});

test('in a cluster, a host that cannot be reached gives way to the next of the list', async () => {
  const { signaling, socket, opened } = connected();
  await opened;
  const hosts = ['ws://h1.test/ws', 'ws://sfu.test/ws', 'ws://h3.test/ws'];
  signaling.setHosts(hosts);
  // The open connection drops: the next try is to the same host…
  socket.drop(1006);
  assert.equal(signaling.url, 'ws://sfu.test/ws');
  // …which cannot be reached: the one after it in the list, then round to the first.
  const first = signaling.connect();
  FakeSocket.last.drop(1006);
  await assert.rejects(first, /cannot connect/);
  assert.equal(signaling.url, 'ws://h3.test/ws');
  const second = signaling.connect();
  FakeSocket.last.drop(1006);
  await assert.rejects(second, /cannot connect/);
  assert.equal(signaling.url, 'ws://h1.test/ws');
  const third = signaling.connect();
  assert.equal(FakeSocket.last.url, 'ws://h1.test/ws');
  FakeSocket.last.open();
  await third;
});

test('a single host (no list) keeps retrying its own URL', async () => {
  const { signaling, socket, opened } = connected();
  await opened;
  signaling.setHosts(undefined);
  socket.drop(1006);
  const again = signaling.connect();
  FakeSocket.last.drop(1006);
  await assert.rejects(again, /cannot connect/);
  assert.equal(signaling.url, 'ws://sfu.test/ws');
});
