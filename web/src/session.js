// The demo page's session decisions, as pure functions (tested with `node --test web/test`):
// what to do when the signaling connection drops, how long to wait before trying again, and
// how to reconcile the page with the state a `resume` answers.

// What to do once the signaling connection closed without the page closing it: take the
// session back (`resume`: only signaling dropped, the media keeps flowing), join again, or
// nothing (the user left).
export function afterClose({ joined, resuming, wantJoined, hasResumeToken }) {
  if ((joined || resuming) && hasResumeToken && wantJoined) return 'resume';
  return wantJoined ? 'rejoin' : 'idle';
}

// The next retry delay: doubled, at most 10 s.
export function nextDelay(delay) {
  return Math.min(delay * 2, 10000);
}

// What to tell the user when the connection closed with `code`.
export function closeMessage(code, wasJoined) {
  if (code === 1009) return 'The server closed the connection: message too big.';
  return wasJoined ? 'Connection lost; reconnecting…' : '';
}

// What changed while the page was away, from a `resume` answer (`info`) and what the page
// holds: its transports' ids, its consumers (id → producer id) and the peers it shows.
// `restart`: one of its transports is gone on the server (start over); otherwise the
// consumers and peers to remove and the producers to consume.
export function reconcile(info, { transportIds, consumers, peerIds }) {
  const mine = new Set((info.transports || []).map((t) => t.transportId));
  if (transportIds.some((id) => !mine.has(id))) {
    return { restart: true, removeConsumers: [], removePeers: [], consume: [] };
  }
  const alive = new Set((info.consumers || []).map((c) => c.consumerId));
  const removeConsumers = [...consumers.keys()].filter((id) => !alive.has(id));
  const present = new Set((info.peers || []).map((p) => p.peerId));
  const removePeers = peerIds.filter((id) => !present.has(id));
  const consumed = new Set(
    [...consumers.entries()].filter(([id]) => alive.has(id)).map(([, producerId]) => producerId),
  );
  const consume = [];
  for (const peer of info.peers || []) {
    for (const p of peer.producers || []) {
      if (!consumed.has(p.producerId)) {
        consume.push({ producerId: p.producerId, peerId: peer.peerId, appData: p.appData });
      }
    }
  }
  return { restart: false, removeConsumers, removePeers, consume };
}
