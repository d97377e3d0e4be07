// The demo client: joins a room over /ws (docs/protocol.md), publishes camera and
// microphone with mediasoup-client, and shows every other peer. It recovers by itself from
// a dropped WebSocket and from `roomMoved` (the room's media node failed).
import { Device } from 'mediasoup-client';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
$('room').value = params.get('room') || 'demo';
$('name').value = params.get('name') || `guest-${Math.floor(1000 + Math.random() * 9000)}`;

const state = {
  socket: 'closed', // signaling WebSocket: closed | connecting | open
  wantJoined: false, // the user pressed Join and not Leave
  joined: false,
  joins: 0, // successful joins, re-joins after a failure included
  room: null,
  transports: { send: 'new', recv: 'new' },
};
let ws = null;
let nextId = 1;
const pending = new Map(); // request id -> { resolve, reject }
let device = null;
let sendTransport = null;
let recvTransport = null;
let localStream = null;
const consumers = new Map(); // consumerId -> { consumer, peerId }
const peers = new Map(); // peerId -> { displayName, tile, video, audio }
let queuedProducers = []; // announced before the receive transport existed
let reconnectDelay = 500;

function render() {
  const parts = [`signaling: ${state.socket}`];
  if (state.joined) {
    parts.push(`room: ${state.room} (${peers.size + 1} here)`);
    parts.push(`send: ${state.transports.send}`, `receive: ${state.transports.recv}`);
  } else if (state.wantJoined) {
    parts.push('joining…');
  }
  $('status').textContent = parts.join(' · ');
  $('join').disabled = state.wantJoined;
  $('leave').disabled = !state.wantJoined;
  $('room').disabled = $('name').disabled = state.wantJoined;
}

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
}

// --- signaling ------------------------------------------------------------------------

function wsUrl() {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
}

function connectSocket() {
  if (ws && ws.readyState <= WebSocket.OPEN) {
    return ws.readyState === WebSocket.OPEN ? Promise.resolve() : new Promise((ok, ko) => {
      ws.addEventListener('open', () => ok(), { once: true });
      ws.addEventListener('close', () => ko(new Error('cannot connect to the server')), { once: true });
    });
  }
  state.socket = 'connecting';
  render();
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(wsUrl());
    ws = socket;
    socket.onopen = () => {
      state.socket = 'open';
      reconnectDelay = 500;
      render();
      resolve();
    };
    socket.onmessage = (event) => onFrame(event.data);
    socket.onclose = (event) => {
      if (ws !== socket) return;
      state.socket = 'closed';
      for (const { reject: fail } of pending.values()) fail(new Error('connection closed'));
      pending.clear();
      const wasJoined = state.joined;
      teardown();
      render();
      reject(new Error('cannot connect to the server'));
      if (event.code === 1009) showError('The server closed the connection: message too big.');
      if (state.wantJoined) {
        if (wasJoined) showError('Connection lost, reconnecting…');
        setTimeout(rejoin, reconnectDelay);
        reconnectDelay = Math.min(reconnectDelay * 2, 10000);
      }
    };
  });
}

function request(method, data = {}) {
  if (!ws || ws.readyState !== WebSocket.OPEN) {
    return Promise.reject(new Error('not connected'));
  }
  const id = nextId++;
  ws.send(JSON.stringify({ id, method, data }));
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}

function onFrame(text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch {
    return;
  }
  if (msg.notification) {
    onNotification(msg.notification, msg.data || {}).catch((e) => console.warn(msg.notification, e));
    return;
  }
  const waiter = pending.get(msg.id);
  if (!waiter) return;
  pending.delete(msg.id);
  if (msg.ok) waiter.resolve(msg.data);
  else {
    const error = new Error(msg.error.message);
    error.code = msg.error.code;
    waiter.reject(error);
  }
}

// --- joining and media ----------------------------------------------------------------

async function join() {
  showError('');
  state.wantJoined = true;
  render();
  try {
    await connectSocket();
    const info = await request('join', { room: $('room').value.trim(), displayName: $('name').value });
    state.joined = true;
    state.joins += 1;
    state.room = info.room;
    device = new Device();
    await device.load({ routerRtpCapabilities: info.routerRtpCapabilities });
    for (const peer of info.peers) {
      addPeer(peer.peerId, peer.displayName);
      for (const p of peer.producers) queuedProducers.push({ producerId: p.producerId, peerId: peer.peerId });
    }
    recvTransport = await createTransport('recv');
    const queued = queuedProducers;
    queuedProducers = [];
    for (const p of queued) await consume(p.producerId, p.peerId);
    sendTransport = await createTransport('send');
    if (!localStream) {
      localStream = await navigator.mediaDevices.getUserMedia({
        audio: true,
        video: { width: { ideal: 640 }, height: { ideal: 360 } },
      });
    }
    $('local-video').srcObject = localStream;
    $('local-tile').hidden = false;
    // stopTracks: false keeps the camera and microphone alive when a transport closes, so a
    // re-join (after roomMoved or a reconnect) publishes the same tracks again.
    for (const track of localStream.getTracks()) await sendTransport.produce({ track, stopTracks: false });
    render();
  } catch (e) {
    console.warn('join failed', e);
    if (e.code === 'node_unavailable' || e.message === 'connection closed') {
      showError(`${e.message}; retrying…`);
      teardown();
      setTimeout(rejoin, 1000);
    } else if (state.socket === 'open' || e.code) {
      showError(e.code ? `${e.code}: ${e.message}` : e.message);
      await leave();
    }
    // Otherwise the socket closed: its handler reconnects and re-joins.
  }
}

function rejoin() {
  if (state.wantJoined && !state.joined) join();
}

async function createTransport(direction) {
  const info = await request('createWebRtcTransport', { direction });
  const options = {
    id: info.transportId,
    iceParameters: info.iceParameters,
    iceCandidates: info.iceCandidates,
    dtlsParameters: info.dtlsParameters,
  };
  const transport = direction === 'send' ? device.createSendTransport(options) : device.createRecvTransport(options);
  transport.on('connect', ({ dtlsParameters }, ok, fail) => {
    request('connectWebRtcTransport', { transportId: transport.id, dtlsParameters }).then(() => ok(), fail);
  });
  if (direction === 'send') {
    transport.on('produce', ({ kind, rtpParameters }, ok, fail) => {
      request('produce', { transportId: transport.id, kind, rtpParameters })
        .then(({ producerId }) => ok({ id: producerId }), fail);
    });
  }
  transport.on('connectionstatechange', (connectionState) => {
    state.transports[direction] = connectionState;
    render();
    if (connectionState === 'failed' && !transport.closed) {
      request('restartIce', { transportId: transport.id })
        .then(({ iceParameters }) => transport.restartIce({ iceParameters }))
        .catch((e) => console.warn('ICE restart failed', e));
    }
  });
  return transport;
}

async function consume(producerId, peerId) {
  if (!recvTransport) {
    queuedProducers.push({ producerId, peerId });
    return;
  }
  const info = await request('consume', {
    transportId: recvTransport.id,
    producerId,
    rtpCapabilities: device.rtpCapabilities,
  });
  const consumer = await recvTransport.consume({
    id: info.consumerId,
    producerId: info.producerId,
    kind: info.kind,
    rtpParameters: info.rtpParameters,
  });
  consumers.set(consumer.id, { consumer, peerId });
  const peer = peers.get(peerId) || addPeer(peerId, '…');
  const element = consumer.kind === 'video' ? peer.video : peer.audio;
  const stream = element.srcObject || new MediaStream();
  stream.addTrack(consumer.track);
  element.srcObject = stream;
  element.play().catch(() => {});
  await request('resumeConsumer', { consumerId: consumer.id });
}

function addPeer(peerId, displayName) {
  const existing = peers.get(peerId);
  if (existing) return existing;
  const tile = document.createElement('figure');
  tile.className = 'tile';
  tile.dataset.testid = 'remote-tile';
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.muted = true; // sound comes from the audio element
  const audio = document.createElement('audio');
  audio.autoplay = true;
  const caption = document.createElement('figcaption');
  caption.textContent = displayName;
  tile.append(video, audio, caption);
  $('tiles').append(tile);
  const peer = { displayName, tile, video, audio };
  peers.set(peerId, peer);
  render();
  return peer;
}

function removePeer(peerId) {
  const peer = peers.get(peerId);
  if (!peer) return;
  peer.tile.remove();
  peers.delete(peerId);
  render();
}

function removeConsumer(consumerId) {
  const entry = consumers.get(consumerId);
  if (!entry) return;
  entry.consumer.close();
  consumers.delete(consumerId);
}

async function onNotification(name, data) {
  switch (name) {
    case 'peerJoined':
      addPeer(data.peerId, data.displayName);
      break;
    case 'peerLeft':
      for (const [id, entry] of consumers) if (entry.peerId === data.peerId) removeConsumer(id);
      removePeer(data.peerId);
      break;
    case 'newProducer':
      if (state.joined) await consume(data.producerId, data.peerId);
      break;
    case 'consumerClosed':
      removeConsumer(data.consumerId);
      break;
    case 'activeSpeaker':
      for (const [id, peer] of peers) peer.tile.classList.toggle('speaking', id === data.peerId);
      break;
    case 'roomMoved':
      // The room's media node failed and the room was re-created elsewhere: start over.
      showError('The media server restarted; reconnecting…');
      teardown();
      render();
      rejoin();
      break;
    case 'shuttingDown':
      showError('The server is shutting down.');
      break;
    default:
      break;
  }
}

// Forgets everything of the room on this side; keeps the camera and microphone.
function teardown() {
  state.joined = false;
  state.transports = { send: 'new', recv: 'new' };
  for (const id of [...consumers.keys()]) removeConsumer(id);
  for (const id of [...peers.keys()]) removePeer(id);
  queuedProducers = [];
  sendTransport?.close();
  recvTransport?.close();
  sendTransport = recvTransport = null;
}

async function leave() {
  state.wantJoined = false;
  if (state.joined) await request('leave').catch(() => {});
  teardown();
  $('local-tile').hidden = true;
  localStream?.getTracks().forEach((t) => t.stop());
  localStream = null;
  render();
}

$('join-form').addEventListener('submit', (event) => {
  event.preventDefault();
  join();
});
$('leave').addEventListener('click', () => leave());
render();

// For tests and curious users: what is being received.
window.demo = {
  state,
  async stats() {
    let framesDecoded = 0;
    let audioPacketsReceived = 0;
    let videoConsumers = 0;
    let audioConsumers = 0;
    for (const { consumer } of consumers.values()) {
      if (consumer.kind === 'video') videoConsumers++;
      else audioConsumers++;
      const report = await consumer.getStats();
      report.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        if (s.kind === 'video') framesDecoded += s.framesDecoded || 0;
        else audioPacketsReceived += s.packetsReceived || 0;
      });
    }
    return {
      framesDecoded, audioPacketsReceived, videoConsumers, audioConsumers,
      joined: state.joined, joins: state.joins,
    };
  },
};
