// The other peers as this page shows them: a tile per peer (video, audio, name, muted marks,
// simulcast layer, quality mark), a large tile per screen share, and the consumers feeding
// them. Each video tile asks the SFU for the simulcast layer its size needs.
import { layerFor, peerTile, screenTile, showQuality } from './tiles.js';

export class Remote {
  // `page` gives `request(method, data)`, `container` (the tiles' element), `render()` and
  // `ignorable(error)` (an error not worth a word).
  constructor(page) {
    this.page = page;
    this.peers = new Map(); // peerId -> { displayName, tile, video, audio, caption, marks… }
    this.consumers = new Map(); // consumerId -> { consumer, peerId, preferred, screen }
    this.screenTiles = new Map(); // consumerId -> tile
  }

  name(peerId) {
    return this.peers.get(peerId)?.displayName;
  }

  addPeer(peerId, displayName) {
    const existing = this.peers.get(peerId);
    if (existing) {
      // A newProducer can come before its peerJoined: the tile then has a placeholder name.
      if (displayName !== '…') existing.caption.textContent = existing.displayName = displayName;
      return existing;
    }
    const peer = peerTile(peerId, displayName);
    this.page.container.append(peer.tile);
    this.peers.set(peerId, peer);
    this.page.render();
    return peer;
  }

  // Shows a new consumer of `peerId` (paused on the server until the caller resumes it).
  show(consumer, peerId, info, screen) {
    this.consumers.set(consumer.id, { consumer, peerId, preferred: null, screen });
    const peer = this.peers.get(peerId) || this.addPeer(peerId, '…');
    if (screen) {
      const tile = screenTile(consumer.track, `${peer.displayName}'s screen`);
      this.page.container.prepend(tile);
      this.screenTiles.set(consumer.id, tile);
      return;
    }
    this.showPaused(consumer.id, info.producerPaused);
    if (info.type === 'simulcast') this.followTileSize(consumer.id, peer.video);
    if (consumer.kind === 'video') this.showIfForwarded(peerId, peer);
    const element = consumer.kind === 'video' ? peer.video : peer.audio;
    const stream = element.srcObject || new MediaStream();
    stream.addTrack(consumer.track);
    element.srcObject = stream;
    element.play().catch(() => {}); // autoplay may need a gesture; Join was one
  }

  // Asks for the layer the tile of a video consumer needs, now and whenever the tile resizes.
  followTileSize(consumerId, video) {
    const ask = () => {
      const entry = this.consumers.get(consumerId);
      if (!entry) {
        observer.disconnect();
        return;
      }
      const layer = layerFor(video.clientWidth);
      if (entry.preferred === layer) return;
      entry.preferred = layer;
      this.page.request('setConsumerPreferredLayers', { consumerId, spatialLayer: layer }).catch((e) => {
        if (!this.page.ignorable(e)) console.warn('setConsumerPreferredLayers', e);
      });
    };
    const observer = new ResizeObserver(ask);
    observer.observe(video);
    ask();
  }

  // Shows whether the producer behind a consumer is paused (muted by its peer).
  showPaused(consumerId, paused) {
    const entry = this.consumers.get(consumerId);
    const peer = entry && this.peers.get(entry.peerId);
    if (!peer) return;
    (entry.consumer.kind === 'audio' ? peer.micOff : peer.camOff).hidden = !paused;
  }

  // The simulcast layer a consumer receives now (`consumerLayersChanged`).
  showLayer({ consumerId, spatialLayer }) {
    const peer = this.peerOf(consumerId);
    if (!peer) return;
    peer.layer.hidden = spatialLayer == null;
    peer.layer.textContent = `L${spatialLayer}`;
    peer.layer.title = `receiving simulcast layer ${spatialLayer} of 0–2`;
  }

  // A video consumer's score (`consumerScore`), as the tile's quality mark.
  showScore({ consumerId, score }) {
    const peer = this.peerOf(consumerId);
    if (!peer || this.consumers.get(consumerId).consumer.kind !== 'video') return;
    showQuality(peer.quality, score?.score ?? 0);
  }

  // Last-N: only the tiles of peers whose video is forwarded are shown (a peer without
  // video keeps its tile: its audio and name).
  showForwarded(peerIds) {
    this.forwarded = peerIds;
    for (const [id, peer] of this.peers) this.showIfForwarded(id, peer);
  }

  showIfForwarded(peerId, peer) {
    const hasVideo = [...this.consumers.values()].some(
      (e) => e.peerId === peerId && !e.screen && e.consumer.kind === 'video',
    );
    peer.tile.hidden = Boolean(this.forwarded && hasVideo && !this.forwarded.has(peerId));
  }

  showSpeaker(peerId) {
    for (const [id, peer] of this.peers) peer.tile.classList.toggle('speaking', id === peerId);
  }

  peerOf(consumerId) {
    const entry = this.consumers.get(consumerId);
    return entry && this.peers.get(entry.peerId);
  }

  removePeer(peerId) {
    for (const [id, entry] of this.consumers) if (entry.peerId === peerId) this.removeConsumer(id);
    const peer = this.peers.get(peerId);
    if (!peer) return;
    peer.tile.remove();
    this.peers.delete(peerId);
    this.page.render();
  }

  removeConsumer(consumerId) {
    const entry = this.consumers.get(consumerId);
    if (!entry) return;
    this.consumers.delete(consumerId);
    this.screenTiles.get(consumerId)?.remove();
    this.screenTiles.delete(consumerId);
    const peer = this.peers.get(entry.peerId);
    for (const element of peer ? [peer.video, peer.audio] : []) element.srcObject?.removeTrack(entry.consumer.track);
    entry.consumer.close();
  }

  clear() {
    this.forwarded = null;
    for (const id of [...this.consumers.keys()]) this.removeConsumer(id);
    for (const id of [...this.peers.keys()]) this.removePeer(id);
  }
}
