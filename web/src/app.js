// The demo client: joins a room over /ws (docs/protocol.md), publishes camera and
// microphone with mediasoup-client, shows every other peer, and chats over data channels. It recovers by itself from
// a dropped WebSocket (resuming its session, so media never stops; joining again if that
// fails) and from `roomMoved` (the room's media node failed).
import { Device } from 'mediasoup-client';
import { Chat } from './chat.js';
import { Controls } from './controls.js';
import { afterClose, closeMessage, nextDelay, reconcile } from './session.js';
import { Signaling, signalingUrl } from './signaling.js';
import { candidatePath, receptionStats } from './stats.js';
import { LastN } from './lastn.js';
import { moveMedia } from './move.js';
import { openTransport } from './transports.js';
import { Remote } from './remote.js';
import { SIMULCAST, tileMarks } from './tiles.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
$('room').value = params.get('room') || 'demo';
$('name').value = params.get('name') || `guest-${Math.floor(1000 + Math.random() * 9000)}`;
const token = params.get('token'); // a signed join token, for an SFU with JOIN_SECRET
// ?relay=1: media only through the SFU's TURN servers (to try them, or for networks where
// nothing else gets through).
const iceTransportPolicy = params.get('relay') === '1' ? 'relay' : 'all';
// The SFU's TURN servers with this peer's credentials, from the join answer.
let iceServers = [];

const state = {
  socket: 'closed', // signaling WebSocket: closed | connecting | open
  wantJoined: false, // the user pressed Join and not Leave
  joined: false,
  joins: 0, // successful joins, re-joins after a failure included
  resumes: 0, // sessions taken back after a dropped connection
  moves: 0, // media moved to another server in a drain (mediaMoving)
  resuming: false, // the socket dropped while joined: reconnecting to resume
  room: null,
  watching: null, // in a large room: how many only watch (counted, not listed)
  recording: false, // the room is being recorded (the `recording` notification)
  transports: { send: 'new', recv: 'new' },
  retryAt: 0, // when the next reconnect attempt starts (ms since epoch), 0 when none
};
let device = null;
let sendTransport = null;
let recvTransport = null;
let localStream = null;
const producers = new Map(); // producerId -> mediasoup-client Producer
let queuedProducers = []; // announced before the receive transport existed
let reconnectDelay = 500;
let retryTimer = null;
// Bumped by teardown(). A join (or consume) that started in an older generation is stale:
// the room it worked on is gone, so it must stop and touch nothing. Without this, a join
// still in flight when `roomMoved`, a socket drop or Leave arrives would act on the new state.
let generation = 0;
let joinInFlight = -1; // generation of the join running now, -1 when none
let retriedAlreadyJoined = false;
let mediaError = ''; // why there is no local media, reset by each Join click
let resumeToken = null; // from the last join or resume answer: takes the session back
// How long a resume refused `cluster_unavailable` (the room being adopted by another host
// after its owner died) is tried again before joining afresh.
const RESUME_PATIENCE_MS = 30000;
let resumeUntil = 0;
const remote = new Remote({
  request: (method, data) => request(method, data),
  container: $('tiles'),
  render: () => render(),
  ignorable: (e) => ignorable(e),
});
const lastN = new LastN(
  { request: (method, data) => request(method, data), container: $('tiles'), ignorable: (e) => ignorable(e) },
  remote,
);
const localMarks = tileMarks();
$('local-tile').append(localMarks.marks);
const chat = new Chat({
  request: (method, data) => request(method, data),
  peerName: (peerId) => remote.name(peerId) || 'someone',
  ownName: () => $('name').value,
  element: $,
  fail(what, e) {
    if (!ignorable(e)) showError(`Cannot ${what}: ${describe(e)}`);
  },
});
const controls = new Controls({
  request: (method, data) => request(method, data),
  producerOf: (kind) => producerOf(kind),
  sendTransport: () => sendTransport,
  localStream: () => localStream,
  localMarks,
  render: () => render(),
  element: $,
  fail(what, e) {
    if (!ignorable(e)) showError(`Cannot ${what}: ${describe(e)}`);
  },
});

function render() {
  let socket = `signaling: ${state.socket}`;
  if (state.socket === 'closed' && state.retryAt) {
    const secs = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
    socket += ` (cannot connect to ${wsUrl()}; retrying in ${secs} s)`;
  }
  const parts = [socket];
  if (state.resuming) parts.push('reconnecting…');
  else if (state.resumes && state.socket === 'open') parts.push('reconnected');
  if (state.joined) {
    const watching = state.watching ? ` and ${state.watching} watching` : '';
    parts.push(`room: ${state.room} (${remote.peers.size + 1} here${watching})`);
    parts.push(`send: ${state.transports.send}`, `receive: ${state.transports.recv}`);
  } else if (state.wantJoined) {
    parts.push('joining…');
  }
  $('status').textContent = parts.join(' · ');
  $('recording').hidden = !(state.joined && state.recording);
  $('status').dataset.state = state.joined ? 'joined' : state.wantJoined ? 'joining' : 'idle';
  $('join').disabled = state.wantJoined;
  $('leave').disabled = !state.wantJoined;
  $('share').disabled = !state.joined || !sendTransport;
  $('share').textContent = controls.screen ? 'Stop sharing' : 'Share screen';
  for (const [button, kind, on, off] of [['mic', 'audio', 'Mute', 'Unmute'], ['cam', 'video', 'Camera off', 'Camera on']]) {
    const producer = producerOf(kind);
    $(button).disabled = !state.joined || !producer;
    $(button).textContent = producer?.paused ? off : on;
  }
  $('room').disabled = $('name').disabled = state.wantJoined;
}
// Keeps the "retrying in N s" countdown current.
setInterval(() => state.retryAt && render(), 1000);

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
}

function describe(e) {
  return e.code ? `${e.code}: ${e.message}` : e.message || String(e);
}

// --- signaling ------------------------------------------------------------------------

// Browsers give camera, microphone and WebRTC only to secure pages: HTTPS, or localhost.
const INSECURE = window.isSecureContext === false
  ? `Cannot join from ${location.origin}: browsers allow camera, microphone and WebRTC only on`
    + ' secure pages. Serve the SFU over HTTPS (TLS_MODE=1, see the README) and open it with'
    + ' https://, or open this page on http://localhost on the SFU\'s own machine.'
  : '';

const signaling = new Signaling(signalingUrl(params, location.href), {
  onState(socket) {
    state.socket = socket;
    if (socket === 'open') state.retryAt = 0;
    render();
  },
  onNotification(name, data) {
    onNotification(name, data).catch((e) => {
      console.warn(name, e);
      if (!ignorable(e)) showError(`${name}: ${describe(e)}`);
    });
  },
  onClose: socketClosed,
});
const wsUrl = () => signaling.url;
const connectSocket = () => signaling.connect();
const request = (method, data) => signaling.request(method, data);

// The signaling connection closed (the page did not close it).
function socketClosed(event) {
  const next = afterClose({
    joined: state.joined,
    resuming: state.resuming,
    wantJoined: state.wantJoined,
    hasResumeToken: Boolean(resumeToken),
  });
  if (next === 'resume') {
    // Only signaling dropped: the transports go straight to the media node and keep
    // their media. Keep everything and take the session back on a new connection.
    if (!state.resuming) resumeUntil = Date.now() + RESUME_PATIENCE_MS;
    state.resuming = true;
    scheduleResume(state.resumes ? reconnectDelay : 0);
    reconnectDelay = nextDelay(reconnectDelay);
    render();
    return;
  }
  const wasJoined = state.joined;
  teardown();
  const message = closeMessage(event.code, wasJoined);
  if (message) showError(message);
  // The socket is the only thing that reconnects and re-joins after a drop; join()
  // leaves that to it, so there is one retry timer at a time.
  if (next === 'rejoin') scheduleRejoin(reconnectDelay);
  reconnectDelay = nextDelay(reconnectDelay);
  render();
}

// --- joining and media ----------------------------------------------------------------

function scheduleRejoin(delay) {
  clearTimeout(retryTimer);
  state.retryAt = state.socket === 'closed' ? Date.now() + delay : 0;
  retryTimer = setTimeout(() => {
    retryTimer = null;
    state.retryAt = 0;
    join();
  }, delay);
}

function scheduleResume(delay) {
  clearTimeout(retryTimer);
  state.retryAt = delay ? Date.now() + delay : 0;
  retryTimer = setTimeout(() => {
    retryTimer = null;
    state.retryAt = 0;
    resumeSession();
  }, delay);
}

// Takes the session back on a new connection (docs/protocol.md, `resume`) and reconciles
// with what changed meanwhile; when that fails, starts over with a join.
async function resumeSession() {
  if (!state.resuming || !state.wantJoined) return;
  const gen = generation;
  try {
    await connectSocket();
  } catch {
    return; // the socket's close handler schedules the next try
  }
  let info;
  try {
    info = await request('resume', { resumeToken });
  } catch (e) {
    if (e.message === 'connection closed') return; // dropped again: its handler retries
    if (e.code === 'cluster_unavailable' && Date.now() < resumeUntil) {
      // The host of our session died and another is adopting its room (once the dead
      // host's lease expires, seconds): try again soon, without backing off.
      scheduleResume(500);
      return;
    }
    console.warn('resume refused; joining again', e);
    resumeToken = null;
    state.resuming = false;
    teardown();
    join();
    return;
  }
  if (gen !== generation) return;
  state.resuming = false;
  state.resumes += 1;
  reconnectDelay = 500;
  showError(mediaError);
  if (!info.joined) {
    // The room moved while we were away: the roomMoved that follows joins again.
    resumeToken = null;
    teardown();
    render();
    return;
  }
  resumeToken = info.resumeToken;
  signaling.setHosts(info.hosts);
  const held = {
    transportIds: [sendTransport?.id, recvTransport?.id].filter(Boolean),
    consumers: new Map([...remote.consumers].map(([id, { consumer }]) => [id, consumer.producerId])),
    peerIds: [...remote.peers.keys()],
  };
  const changes = reconcile(info, held);
  if (changes.restart) {
    // A transport of ours is gone on the server: start over.
    restart();
    return;
  }
  // Consumers whose producer closed meanwhile, peers who left meanwhile.
  for (const id of changes.removeConsumers) remote.removeConsumer(id);
  for (const id of changes.removePeers) remote.removePeer(id);
  chat.reconcile(info);
  // Peers and producers that came meanwhile.
  for (const peer of info.peers || []) remote.addPeer(peer.peerId, peer.displayName);
  for (const { producerId, peerId, appData } of changes.consume) {
    consume(producerId, peerId, appData).catch((e) => {
      if (!ignorable(e)) showError(`Cannot receive a stream: ${describe(e)}`);
    });
  }
  render();
}

class Stale extends Error {
  constructor() {
    super('superseded');
    this.stale = true;
  }
}

// Errors not worth showing: superseded work, a dropped socket (the status line says so), and
// a producer that closed between its newProducer and our consume.
function ignorable(e) {
  return e.stale || e.message === 'connection closed' || e.code === 'not_found';
}

// Joins the room of the form and publishes; safe to call at any time: it does nothing when
// the user left, when already joined, or when a join of this generation is running.
async function join() {
  if (!state.wantJoined || state.joined || joinInFlight === generation) return;
  if (INSECURE) {
    showError(INSECURE);
    state.wantJoined = false;
    render();
    return;
  }
  const gen = generation;
  joinInFlight = gen;
  const check = () => {
    if (gen !== generation) throw new Stale();
  };
  render();
  try {
    // Camera and microphone first: a permission prompt should not hold a room seat, and the
    // same tracks are published again after every re-join.
    if (!localStream && !mediaError) {
      let stream = null;
      try {
        stream = await navigator.mediaDevices.getUserMedia({
          audio: true,
          // 720p: enough for three simulcast layers (320, 640 and 1280 pixels wide).
          video: { width: { ideal: 1280 }, height: { ideal: 720 } },
        });
      } catch (e) {
        // Not fatal: join to watch only (and don't ask again until the next Join click).
        mediaError = `No camera or microphone (${e.name}: ${e.message}); watching only.`;
        showError(mediaError);
      }
      // Adopt the stream unless the user left meanwhile or another join got one first.
      if (state.wantJoined && !localStream) localStream = stream;
      else stream?.getTracks().forEach((t) => t.stop());
      check();
      if (localStream) {
        $('local-video').srcObject = localStream;
        $('local-tile').hidden = false;
        controls.listDevices();
      }
    }
    await connectSocket();
    check();
    const data = { room: $('room').value.trim(), displayName: $('name').value, ...lastN.joinArgs() };
    if (token) data.token = token;
    const info = await request('join', data);
    check();
    resumeToken = info.resumeToken || null;
    iceServers = info.iceServers || [];
    state.watching = info.watching ?? null;
    signaling.setHosts(info.hosts);
    state.joined = true;
    state.joins += 1;
    retriedAlreadyJoined = false;
    state.room = info.room || data.room;
    reconnectDelay = 500;
    showError(mediaError);
    render();
    device = new Device();
    await device.load({ routerRtpCapabilities: info.routerRtpCapabilities });
    check();
    for (const peer of info.peers || []) {
      remote.addPeer(peer.peerId, peer.displayName);
      for (const p of peer.producers || []) {
        queuedProducers.push({ producerId: p.producerId, peerId: peer.peerId, appData: p.appData });
      }
      for (const d of peer.dataProducers || []) chat.consume(d.dataProducerId, peer.peerId);
    }
    const recv = await createTransport('recv');
    if (gen !== generation) recv.close();
    check();
    recvTransport = recv;
    await chat.useRecvTransport(recv);
    // Producers announced by newProducer while the transport was being created are queued too.
    await consumeQueued();
    // A send transport also without camera and microphone: it carries the chat.
    const send = await createTransport('send');
    if (gen !== generation) send.close();
    check();
    sendTransport = send;
    if (localStream) {
      for (const track of localStream.getTracks()) {
        // stopTracks: false keeps the camera and microphone alive when the transport closes,
        // so a re-join (after roomMoved or a reconnect) publishes the same tracks again.
        const producer = await send.produce({
          track,
          stopTracks: false,
          // Video in three simulcast layers: each subscriber gets the one its tile needs and
          // its bandwidth allows (mediasoup switches), instead of everyone the largest.
          ...(track.kind === 'video' ? SIMULCAST : {}),
        });
        check();
        producers.set(producer.id, producer);
      }
    }
    await chat.open(send);
    check();
    render();
  } catch (e) {
    // Superseded (roomMoved, socket drop, Leave): whatever did that decides what comes next.
    // Errors of requests sent for the old room (not_joined, not_found…) land here too.
    if (e.stale || gen !== generation) return;
    console.warn('join failed', e);
    if (state.socket !== 'open' || e.message === 'connection closed') {
      // The socket closed: its close handler reconnects and re-joins.
    } else if ((e.code === 'node_unavailable' || e.code === 'cluster_unavailable') && !state.joined) {
      // The room's node is being replaced, or (in a cluster) where the room lives cannot be
      // decided right now (its host died and its lease has not expired yet, etcd is out of
      // reach): the join itself can be tried again.
      showError(`${describe(e)}; retrying…`);
      teardown();
      scheduleRejoin(reconnectDelay);
      reconnectDelay = Math.min(reconnectDelay * 2, 10000);
    } else if (e.code === 'already_joined' && !retriedAlreadyJoined) {
      // The server still has this connection in a room this page forgot (a Leave that
      // raced a join): leave it and join again, once.
      retriedAlreadyJoined = true;
      restart();
    } else if (e.code === 'node_unavailable') {
      // Joined, but the node failed under us: the server sends roomMoved once the room is
      // re-created, and that re-joins. Should it never come, start over by hand.
      showError(`${describe(e)}; waiting for the room to move…`);
      const stuck = generation;
      setTimeout(() => {
        if (stuck === generation && state.wantJoined) restart();
      }, 15000);
    } else {
      showError(`Cannot join: ${describe(e)}`);
      await leave();
    }
  } finally {
    if (joinInFlight === gen) joinInFlight = -1;
    render();
  }
}

// Leaves the room on the server and joins it again (keeping the local tracks).
async function restart() {
  await request('leave').catch(() => {});
  teardown();
  render();
  join();
}

// Consumes what waits for the receive transport, in order.
async function consumeQueued() {
  while (queuedProducers.length) {
    const p = queuedProducers.shift();
    await consume(p.producerId, p.peerId, p.appData).catch((e) => {
      if (ignorable(e) || e.code === 'node_unavailable') throw e;
      console.warn('consume failed', e); // one stream missing: say so and go on
      showError(`Cannot receive a stream: ${describe(e)}`);
    });
  }
}

function createTransport(direction) {
  return openTransport(device, direction, {
    request,
    iceServers,
    iceTransportPolicy,
    onState(connectionState) {
      state.transports[direction] = connectionState;
      render();
    },
  });
}

async function consume(producerId, peerId, appData) {
  if (!recvTransport) {
    queuedProducers.push({ producerId, peerId, appData });
    return;
  }
  const gen = generation;
  const transport = recvTransport;
  let consumer;
  let info;
  try {
    info = await request('consume', {
      transportId: transport.id,
      producerId,
      rtpCapabilities: device.rtpCapabilities,
    });
    if (gen !== generation) throw new Stale();
    consumer = await transport.consume({
      id: info.consumerId,
      producerId: info.producerId,
      kind: info.kind,
      rtpParameters: info.rtpParameters,
    });
  } catch (e) {
    // A teardown meanwhile (closed transport, answers for the old room) makes any error moot.
    throw gen !== generation ? new Stale() : e;
  }
  if (gen !== generation) {
    consumer.close();
    throw new Stale();
  }
  const screen = (info.appData || appData)?.source === 'screen';
  remote.show(consumer, peerId, info, screen);
  await request('resumeConsumer', { consumerId: consumer.id });
}

// This page's producer of `kind`, if it publishes one.
function producerOf(kind) {
  return [...producers.values()].find((p) => p.kind === kind && !p.closed);
}

async function onNotification(name, data) {
  switch (name) {
    case 'peersChanged':
      // The room's joins and leaves of a tick; watchers of a large room only counted.
      for (const peerId of data.left || []) {
        queuedProducers = queuedProducers.filter((p) => p.peerId !== peerId);
        remote.removePeer(peerId);
      }
      if (state.joined) for (const p of data.joined || []) remote.addPeer(p.peerId, p.displayName);
      state.watching = data.watching ?? null;
      render();
      break;
    case 'newProducer':
      if (state.joined) await consume(data.producerId, data.peerId, data.appData);
      break;
    case 'consumerClosed':
      remote.removeConsumer(data.consumerId);
      break;
    case 'newDataProducer':
      if (state.joined) await chat.consume(data.dataProducerId, data.peerId);
      break;
    case 'dataConsumerClosed':
      chat.closed(data.dataConsumerId);
      break;
    case 'dataProducerThrottled':
      chat.throttled(data);
      break;
    case 'consumerPaused':
    case 'consumerResumed':
      remote.showPaused(data.consumerId, name === 'consumerPaused');
      break;
    case 'consumerLayersChanged':
      remote.showLayer(data);
      break;
    case 'consumerScore':
      remote.showScore(data);
      break;
    case 'activeSpeaker':
      remote.showSpeaker(data.peerId);
      break;
    case 'forwardedVideos':
      lastN.forwarded(data.peerIds);
      break;
    case 'roomMoved':
      // The room's media node failed and the room was re-created elsewhere. The server has
      // already dropped this peer from it: start over with the same tracks.
      showError('The media server failed; moving to a new one…');
      teardown();
      render();
      join();
      break;
    case 'mediaMoving':
      // Our media server is drained: move to the new one while the media goes on.
      if (state.joined) await moveTo(data.peers);
      break;
    case 'shuttingDown':
      showError('The server is shutting down.');
      break;
    case 'hostsChanged':
      signaling.setHosts(data.urls);
      break;
    case 'recording':
      state.recording = data.active;
      render();
      break;
    default:
      break;
  }
}

// Make before break onto the router the server moved this peer to (see move.js).
async function moveTo(peers) {
  const gen = generation;
  state.moves += 1;
  const moved = moveMedia({
    request,
    createTransport,
    transports: () => ({ send: sendTransport, recv: recvTransport }),
    setTransports({ send, recv }) {
      sendTransport = send;
      recvTransport = recv;
    },
    consumeQueued: async (list) => {
      queuedProducers.push(...list);
      await consumeQueued();
    },
    producers,
    remote,
    chat,
    controls,
    check: () => {
      if (gen !== generation) throw new Stale();
    },
  }, peers);
  try {
    await moved;
  } catch (e) {
    if (e.stale || gen !== generation || ignorable(e)) return;
    // Half moved: start over in the room (leave and join again), as after roomMoved.
    console.warn('moving the media failed; joining again', e);
    showError(`Moving to another media server failed (${describe(e)}); joining again…`);
    restart();
    return;
  }
  render();
}

// Forgets everything of the room on this side; keeps the camera and microphone.
function teardown() {
  generation += 1;
  state.joined = false;
  state.resuming = false;
  state.recording = false; // told again by the room we join next
  controls.forget(); // published again unmuted, without the share
  chat.forget();
  state.transports = { send: 'new', recv: 'new' };
  remote.clear();
  producers.clear();
  queuedProducers = [];
  sendTransport?.close(); // closes its producers too; the tracks stay (stopTracks: false)
  recvTransport?.close();
  sendTransport = recvTransport = null;
}

async function leave() {
  state.wantJoined = false;
  state.resuming = false;
  resumeToken = null;
  clearTimeout(retryTimer);
  state.retryAt = 0;
  // Also when not joined yet: a join answer may be on its way. The server handles one
  // connection's requests in order, so this leave comes after that join.
  const answer = request('leave').catch(() => {});
  teardown();
  render();
  await answer;
  $('local-tile').hidden = true;
  $('local-video').srcObject = null;
  localStream?.getTracks().forEach((t) => t.stop());
  localStream = null;
  render();
}

$('join-form').addEventListener('submit', (event) => {
  event.preventDefault();
  showError('');
  mediaError = '';
  reconnectDelay = 500;
  state.wantJoined = true;
  join();
});
$('mic').addEventListener('click', () => controls.toggle('audio'));
$('share').addEventListener('click', () => controls.toggleScreen());
$('cam').addEventListener('click', () => controls.toggle('video'));
$('camera-select').addEventListener('change', (e) => controls.useDevice('video', e.target.value));
$('mic-select').addEventListener('change', (e) => controls.useDevice('audio', e.target.value));
$('leave').addEventListener('click', () => {
  showError('');
  leave();
});
render();
if (INSECURE) showError(INSECURE);

// For tests and curious users: what is being received.
window.demo = {
  state,
  // What each consumer receives, from getStats (see stats.js).
  stats: () => receptionStats(remote.consumers, remote.peers, state),
  // How each transport's media goes: the selected candidate pair's kind and protocol.
  paths: async () => ({
    send: await candidatePath(sendTransport),
    recv: await candidatePath(recvTransport),
  }),
  // How many videos the page asked for (last-N), null before it joined.
  lastN: () => lastN.sent,
  // Whether the page shows that the room is being recorded.
  recording: () => !document.getElementById('recording').hidden,
};
