// Moving this page's media to another media server while it goes on: make before break
// (`mediaMoving`, docs/protocol.md "Moving in a drain"). The old transports keep sending and
// receiving while new ones are made on the new server, every stream is consumed there and the
// local tracks published there; only then are the old transports closed.
import { SIMULCAST } from './tiles.js';

// How long the old send transport keeps sending once the new producers exist: the others
// consume the new ones (newProducer) and decode them before the old ones close.
const LINGER_MS = 1500;
// At most this long waiting for the new consumers' first frames before the old ones go.
const FIRST_FRAME_MS = 3000;

// Resolves once every video consumer of `consumers` decoded a frame, or after `ms`.
async function firstFrames(consumers, ms) {
  const until = Date.now() + ms;
  const decoding = async (c) => {
    const report = await c.getStats().catch(() => new Map());
    let frames = 0;
    report.forEach((s) => {
      if (s.type === 'inbound-rtp') frames += s.framesDecoded || 0;
    });
    return frames > 0;
  };
  let waiting = consumers.filter((c) => c.kind === 'video' && !c.closed);
  while (waiting.length && Date.now() < until) {
    const done = await Promise.all(waiting.map(decoding));
    waiting = waiting.filter((c, i) => !done[i] && !c.closed);
    if (waiting.length) await new Promise((r) => setTimeout(r, 100));
  }
}

// `page` gives: `request(method, data)`, `createTransport(direction)`, `transports()` ({send,
// recv}), `setTransports({send, recv})`, `consumeQueued(list)` (consumes on the receive
// transport, in order), `producers` (id -> Producer), `remote`, `chat`, `controls`, and
// `check()` (throws once the room is gone on this side).
export async function moveMedia(page, peers) {
  const old = page.transports();
  // From now on a newProducer waits for the new receive transport instead of being consumed
  // on the old one, which is about to close.
  page.setTransports({ send: old.send, recv: null });
  const oldConsumers = [...page.remote.consumers.keys()];
  const oldChat = page.chat.moveTo(null);
  const recv = await page.createTransport('recv');
  page.check();
  page.setTransports({ send: old.send, recv });
  await page.chat.useRecvTransport(recv);
  const listed = [];
  for (const peer of peers || []) {
    for (const p of peer.producers || []) listed.push({ producerId: p.producerId, peerId: peer.peerId, appData: p.appData });
    for (const d of peer.dataProducers || []) page.chat.consume(d.dataProducerId, peer.peerId);
  }
  await page.consumeQueued(listed);
  page.check();
  const send = await page.createTransport('send');
  page.check();
  const before = [...page.producers.values()].filter((p) => !p.closed);
  page.setTransports({ send, recv });
  for (const was of before) {
    const screen = was.appData?.source === 'screen';
    const producer = await send.produce({
      track: was.track,
      stopTracks: false,
      appData: was.appData,
      ...(was.kind === 'video' && !screen ? SIMULCAST : {}),
    });
    page.check();
    if (was.paused) {
      producer.pause();
      await page.request('pauseProducer', { producerId: producer.id });
    }
    page.producers.delete(was.id);
    page.producers.set(producer.id, producer);
    if (page.controls.screen === was) page.controls.screen = producer;
  }
  await page.chat.open(send);
  page.check();
  // Break, once the new consumers show frames and the others had time to take our new
  // producers: what the old transports carried.
  const fresh = [...page.remote.consumers.entries()]
    .filter(([id]) => !oldConsumers.includes(id))
    .map(([, entry]) => entry.consumer);
  await Promise.all([firstFrames(fresh, FIRST_FRAME_MS), new Promise((r) => setTimeout(r, LINGER_MS))]);
  page.check();
  for (const id of oldConsumers) page.remote.removeConsumer(id);
  for (const { consumer } of oldChat) consumer.close();
  for (const transport of [old.send, old.recv]) {
    if (!transport) continue;
    await page.request('closeTransport', { transportId: transport.id }).catch(() => {});
    transport.close();
  }
}
