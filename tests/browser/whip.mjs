// WHIP and WHEP in Chromium, while a WHIP publisher (GStreamer) publishes in SFU_ROOM:
// 1. the demo page joins SFU_ROOM and must decode the video and receive the audio of the
//    peer named "WHIP publisher";
// 2. a WHEP player, a page using the browser's own RTCPeerConnection and fetch (no library),
//    POSTs an offer to /whep/SFU_ROOM, must decode its video and receive its audio, then
//    DELETEs its session (200);
// 3. Chromium itself publishes with WHIP (three simulcast layers of its fake camera) into
//    SFU_ROOM-simulcast, and a demo page there must decode it;
// 4. a WHEP player of that publisher must decode a layer of it.
//
//   SFU_URL=http://127.0.0.1:8000 SFU_ROOM=room1 node whip.mjs
//
// SFU_SAVE_OFFERS=dir: also writes Chromium's offers there (a WHIP offer with three simulcast
// layers and a WHEP offer), the whip crate's test fixtures. Exits non-zero on failure.
import { writeFileSync } from 'node:fs';
import { launch } from './chromium.mjs';

const base = process.env.SFU_URL;
const room = process.env.SFU_ROOM;
if (!base || !room) {
  console.error('set SFU_URL and SFU_ROOM');
  process.exit(2);
}
const WANT = 30;
const timeoutMs = Number(process.env.SFU_CALL_TIMEOUT_MS || 45_000);

const browser = await launch();
let failed = null;
try {
  const context = await browser.newContext();

  // 1. A room member on the demo page.
  const member = await context.newPage();
  await member.goto(`${base}/?room=${room}&name=Member`);
  await member.click('[data-testid=join]');
  const deadline = Date.now() + timeoutMs;
  let got = null;
  for (;;) {
    const stats = await member.evaluate(() => window.demo?.stats?.()).catch(() => null);
    got = stats?.byPeer?.['WHIP publisher'];
    if (got && got.framesDecoded > WANT && got.audioPacketsReceived > WANT) break;
    if (Date.now() > deadline) throw new Error(`the demo page did not receive the WHIP publisher: ${JSON.stringify(got)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  console.log(`demo page: WHIP publisher decoded ${got.framesDecoded} frames, ${got.audioPacketsReceived} audio packets, ${got.frameWidth} px wide`);

  // 2. A WHEP player on the SFU's origin (so that fetch needs no CORS).
  const player = await context.newPage();
  await player.goto(`${base}/`);
  const outcome = await player.evaluate(async ({ room, want, timeoutMs, save }) => {
    const offers = {};
    if (save) {
      // Chromium's WHIP offer with simulcast: what an encoder in a browser sends.
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 1280, height: 720 } });
      const pc = new RTCPeerConnection();
      pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly' });
      pc.addTransceiver(stream.getVideoTracks()[0], {
        direction: 'sendonly',
        sendEncodings: [{ rid: 'q', scaleResolutionDownBy: 4 }, { rid: 'h', scaleResolutionDownBy: 2 }, { rid: 'f' }],
      });
      await pc.setLocalDescription(await pc.createOffer());
      offers.whip = pc.localDescription.sdp;
      pc.close();
      stream.getTracks().forEach((t) => t.stop());
    }
    const pc = new RTCPeerConnection();
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    offers.whep = pc.localDescription.sdp;
    const response = await fetch(`/whep/${room}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: pc.localDescription.sdp,
    });
    const answer = await response.text();
    if (response.status !== 201) return { error: `WHEP POST: ${response.status} ${answer}`, offers };
    const session = new URL(response.headers.get('Location'), new URL(`/whep/${room}`, window.location.href)).href;
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    const end = Date.now() + timeoutMs;
    let frames = 0;
    let audio = 0;
    while (Date.now() < end) {
      const report = await pc.getStats();
      frames = 0;
      audio = 0;
      report.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        if (s.kind === 'video') frames += s.framesDecoded || 0;
        else audio += s.packetsReceived || 0;
      });
      if (frames > want && audio > want) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const deleted = (await fetch(session, { method: 'DELETE' })).status;
    const again = (await fetch(session, { method: 'DELETE' })).status;
    const ice = pc.iceConnectionState;
    pc.close();
    return { frames, audio, deleted, again, session, offers, ice };
  }, { room, want: WANT, timeoutMs, save: Boolean(process.env.SFU_SAVE_OFFERS) });
  if (process.env.SFU_SAVE_OFFERS) {
    for (const [name, sdp] of Object.entries(outcome.offers || {})) {
      writeFileSync(`${process.env.SFU_SAVE_OFFERS}/chromium-${name}.sdp`, sdp);
    }
  }
  if (outcome.error) throw new Error(outcome.error);
  console.log(`WHEP player: ICE ${outcome.ice}, decoded ${outcome.frames} frames, ${outcome.audio} audio packets; DELETE ${outcome.deleted}, again ${outcome.again}`);
  if (!(outcome.frames > WANT && outcome.audio > WANT)) throw new Error('the WHEP player did not decode the publisher');
  if (outcome.deleted !== 200 || outcome.again !== 404) throw new Error('DELETE did not end the session');

  // 3. Chromium as a WHIP publisher, with simulcast.
  const encoder = await context.newPage();
  await encoder.goto(`${base}/`);
  const simulcastRoom = `${room}-simulcast`;
  const published = await encoder.evaluate(async ({ room }) => {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 1280, height: 720 } });
    const pc = new RTCPeerConnection();
    window.whipPc = pc;
    pc.addTransceiver(stream.getAudioTracks()[0], { direction: 'sendonly' });
    pc.addTransceiver(stream.getVideoTracks()[0], {
      direction: 'sendonly',
      sendEncodings: [{ rid: 'q', scaleResolutionDownBy: 4 }, { rid: 'h', scaleResolutionDownBy: 2 }, { rid: 'f' }],
    });
    await pc.setLocalDescription(await pc.createOffer());
    const response = await fetch(`/whip/${room}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: pc.localDescription.sdp,
    });
    const answer = await response.text();
    if (response.status !== 201) return { error: `WHIP POST: ${response.status} ${answer}` };
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    return { ok: true };
  }, { room: simulcastRoom });
  if (published.error) throw new Error(published.error);
  const viewer = await context.newPage();
  await viewer.goto(`${base}/?room=${simulcastRoom}&name=Viewer`);
  await viewer.click('[data-testid=join]');
  const until = Date.now() + timeoutMs;
  let seen = null;
  for (;;) {
    const stats = await viewer.evaluate(() => window.demo?.stats?.()).catch(() => null);
    seen = stats?.byPeer?.['WHIP publisher'];
    if (seen && seen.framesDecoded > WANT && seen.audioPacketsReceived > WANT) break;
    if (Date.now() > until) throw new Error(`the demo page did not receive Chromium's WHIP simulcast: ${JSON.stringify(seen)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  const layers = await encoder.evaluate(async () => {
    const report = await window.whipPc.getStats();
    const sent = [];
    report.forEach((s) => { if (s.type === 'outbound-rtp' && s.kind === 'video') sent.push(`${s.rid}:${s.framesEncoded || 0}`); });
    return sent.sort().join(' ');
  });
  console.log(`Chromium WHIP simulcast (${layers}): the demo page decoded ${seen.framesDecoded} frames, ${seen.frameWidth} px wide`);

  // 4. A WHEP player of that simulcast publisher: mediasoup picks the layer its bandwidth
  //    estimate allows.
  const simulcastPlayer = await context.newPage();
  await simulcastPlayer.goto(`${base}/`);
  const played = await simulcastPlayer.evaluate(async ({ room, want, timeoutMs }) => {
    const pc = new RTCPeerConnection();
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addTransceiver('video', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    const response = await fetch(`/whep/${room}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: pc.localDescription.sdp,
    });
    const answer = await response.text();
    if (response.status !== 201) return { error: `WHEP POST: ${response.status} ${answer}` };
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    const end = Date.now() + timeoutMs;
    let frames = 0;
    let width = 0;
    while (Date.now() < end) {
      (await pc.getStats()).forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') {
          frames = s.framesDecoded || 0;
          width = Math.max(width, s.frameWidth || 0);
        }
      });
      // A few seconds of it: the layer may step up as the estimate grows.
      if (frames > 3 * want) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    return { frames, width };
  }, { room: simulcastRoom, want: WANT, timeoutMs });
  if (played.error) throw new Error(played.error);
  console.log(`WHEP player of the simulcast publisher: decoded ${played.frames} frames, up to ${played.width} px wide`);
  if (!(played.frames > WANT)) throw new Error('the WHEP player did not decode the simulcast publisher');
} catch (e) {
  failed = e;
} finally {
  await browser.close();
}
if (failed) {
  console.error(`FAILED: ${failed.message}`);
  process.exit(1);
}
console.log('ok');
