// A WebRTC transport of the demo client: created on the SFU (`createWebRtcTransport`), then
// in mediasoup-client, wired to the signaling calls that connect it and create producers and
// data producers on it, and restarting ICE by itself when its connection fails.

// Creates the `direction` ('send' or 'recv') transport of `device`; `request` calls the SFU,
// `onState` hears each connection state.
export async function openTransport(device, direction, { request, iceServers, iceTransportPolicy, onState }) {
  // data: the transport carries the chat's data channels too.
  const info = await request('createWebRtcTransport', { direction, data: true });
  const options = {
    id: info.transportId,
    iceParameters: info.iceParameters,
    iceCandidates: info.iceCandidates,
    dtlsParameters: info.dtlsParameters,
    sctpParameters: info.sctpParameters,
    iceServers,
    iceTransportPolicy,
  };
  const transport = direction === 'send' ? device.createSendTransport(options) : device.createRecvTransport(options);
  transport.on('connect', ({ dtlsParameters }, ok, fail) => {
    request('connectWebRtcTransport', { transportId: transport.id, dtlsParameters }).then(() => ok(), fail);
  });
  if (direction === 'send') {
    transport.on('produce', ({ kind, rtpParameters, appData }, ok, fail) => {
      const data = { transportId: transport.id, kind, rtpParameters };
      if (appData && Object.keys(appData).length) data.appData = appData;
      request('produce', data).then(({ producerId }) => ok({ id: producerId }), fail);
    });
    transport.on('producedata', ({ sctpStreamParameters, label, protocol }, ok, fail) => {
      const data = { transportId: transport.id, sctpStreamParameters, label, protocol };
      request('produceData', data).then(({ dataProducerId }) => ok({ id: dataProducerId }), fail);
    });
  }
  transport.on('connectionstatechange', (connectionState) => {
    if (transport.closed) return;
    onState(connectionState);
    if (connectionState === 'failed') {
      request('restartIce', { transportId: transport.id })
        .then(({ iceParameters }) => transport.restartIce({ iceParameters }))
        .catch((e) => console.warn('ICE restart failed', e));
    }
  });
  return transport;
}
