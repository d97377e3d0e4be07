// The demo page's tiles, as DOM only: a remote peer's tile with its marks (simulcast layer,
// microphone muted, camera off, quality), a screen share's tile, and what layer a tile's
// size needs.

// The marks of a tile: the simulcast layer received, microphone muted, camera off, and the
// quality of what arrives (from its video consumer's score). Hidden until known.
export function tileMarks() {
  const marks = document.createElement('div');
  marks.className = 'marks';
  const mark = (text, testid, title) => {
    const span = document.createElement('span');
    span.textContent = text;
    span.dataset.testid = testid;
    span.title = title;
    span.hidden = true;
    marks.append(span);
    return span;
  };
  const layer = mark('L', 'layer', 'simulcast layer received');
  const micOff = mark('🔇', 'muted-audio', 'microphone muted');
  const camOff = mark('📷✕', 'muted-video', 'camera off');
  const quality = mark('●', 'quality', 'quality of what arrives');
  quality.className = 'quality';
  return { marks, layer, micOff, camOff, quality };
}

// A remote peer's tile (not yet in the page): video, audio, name and marks.
export function peerTile(peerId, displayName) {
  const tile = document.createElement('figure');
  tile.className = 'tile';
  tile.dataset.testid = 'remote-tile';
  tile.dataset.peerId = peerId;
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.muted = true; // sound comes from the audio element
  const audio = document.createElement('audio');
  audio.autoplay = true;
  const caption = document.createElement('figcaption');
  caption.textContent = displayName;
  const { marks, layer, micOff, camOff, quality } = tileMarks();
  tile.append(video, audio, caption, marks);
  return { displayName, tile, video, audio, caption, layer, micOff, camOff, quality };
}

// A screen share's tile (not yet in the page), large, showing `track`.
export function screenTile(track, caption) {
  const tile = document.createElement('figure');
  tile.className = 'tile screen';
  tile.dataset.testid = 'screen-tile';
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.muted = true;
  video.srcObject = new MediaStream([track]);
  const figcaption = document.createElement('figcaption');
  figcaption.textContent = caption;
  tile.append(video, figcaption);
  video.play().catch(() => {});
  return tile;
}

// Shows a consumer's score (0–10) on a quality mark.
export function showQuality(mark, score) {
  mark.hidden = false;
  mark.dataset.score = String(score);
  mark.dataset.level = score >= 8 ? 'good' : score >= 5 ? 'fair' : 'poor';
  mark.title = `quality ${score}/10`;
}

// Video in three simulcast layers: each subscriber gets the one its tile needs and its
// bandwidth allows (mediasoup switches), instead of everyone the largest.
export const SIMULCAST = {
  encodings: [
    { rid: 'r0', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
    { rid: 'r1', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
    { rid: 'r2', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
  ],
  codecOptions: { videoGoogleStartBitrate: 1000 },
};

// The simulcast layer a tile `width` CSS pixels wide needs.
export function layerFor(width) {
  const pixels = width * (window.devicePixelRatio || 1);
  return pixels <= 320 ? 0 : pixels <= 640 ? 1 : 2;
}
