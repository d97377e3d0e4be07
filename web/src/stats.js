// What a page receives, from each consumer's getStats: frames decoded and audio packets in
// total and per remote peer (by display name), the widest frame per peer, screen shares
// apart. For tests and curious users (window.demo.stats()).

export async function receptionStats(consumers, peers, state) {
  let framesDecoded = 0;
  let audioPacketsReceived = 0;
  let videoConsumers = 0;
  let audioConsumers = 0;
  const byPeer = {};
  const screens = {};
  for (const { consumer, peerId, screen } of [...consumers.values()]) {
    if (consumer.closed) continue;
    const name = peers.get(peerId)?.displayName ?? peerId;
    const report = await consumer.getStats().catch(() => new Map());
    if (screen) {
      report.forEach((s) => {
        if (s.type === 'inbound-rtp') screens[name] = (screens[name] || 0) + (s.framesDecoded || 0);
      });
      continue;
    }
    if (consumer.kind === 'video') videoConsumers++;
    else audioConsumers++;
    // Per consumer too: a peer's stream moves to a new consumer in a drain, whose count
    // starts from zero (a gap shows as no consumer of the peer advancing).
    const mine = byPeer[name] ??= { framesDecoded: 0, audioPacketsReceived: 0, frameWidth: 0, videoConsumers: {} };
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') {
        framesDecoded += s.framesDecoded || 0;
        mine.framesDecoded += s.framesDecoded || 0;
        mine.videoConsumers[consumer.id] = s.framesDecoded || 0;
        mine.frameWidth = Math.max(mine.frameWidth, s.frameWidth || 0);
      } else {
        audioPacketsReceived += s.packetsReceived || 0;
        mine.audioPacketsReceived += s.packetsReceived || 0;
      }
    });
  }
  return {
    framesDecoded, audioPacketsReceived, videoConsumers, audioConsumers, byPeer, screens,
    joined: state.joined, joins: state.joins, resumes: state.resumes, moves: state.moves,
  };
}

// The candidate pair `transport` uses: its local candidate's type (host, srflx, relay) and
// protocol, e.g. `relay/udp via tls` (TURN over TLS), `host/tcp` (ICE-TCP); null before ICE
// has one.
export async function candidatePath(transport) {
  if (!transport || transport.closed) return null;
  const report = await transport.getStats().catch(() => new Map());
  let pairId = null;
  report.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
  });
  const pair = pairId && report.get(pairId);
  const local = pair && report.get(pair.localCandidateId);
  if (!local) return null;
  const relayed = local.candidateType === 'relay' && local.relayProtocol ? ` via ${local.relayProtocol}` : '';
  return `${local.candidateType}/${local.protocol}${relayed}`;
}
