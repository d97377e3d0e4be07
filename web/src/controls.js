// The page's own controls: microphone and camera on and off (pausing the producer, so
// nothing is sent and the others see it muted), screen sharing (a second video producer
// marked `{"source":"screen"}`), and the choice of camera and microphone.

export class Controls {
  // `page` gives what the controls act on: `request(method, data)`, `producerOf(kind)`,
  // `sendTransport()`, `localStream()`, `localMarks`, `render()`, `fail(what, error)` (shows
  // an error unless it is moot), and `element(id)`.
  constructor(page) {
    this.page = page;
    this.screen = null; // the screen share's producer, while sharing
  }

  // Mute/unmute the microphone (`audio`) or turn the camera (`video`) off/on.
  async toggle(kind) {
    const { page } = this;
    const producer = page.producerOf(kind);
    if (!producer) return;
    const pause = !producer.paused;
    const mark = kind === 'audio' ? page.localMarks.micOff : page.localMarks.camOff;
    // At once on this side (a mute must not wait for the server); the others see it when
    // the server has paused the producer.
    const apply = (paused) => {
      if (paused) producer.pause();
      else producer.resume();
      mark.hidden = !paused;
      page.render();
    };
    apply(pause);
    try {
      await page.request(pause ? 'pauseProducer' : 'resumeProducer', { producerId: producer.id });
    } catch (e) {
      if (!producer.closed) apply(!pause);
      page.fail(pause ? 'mute' : 'unmute', e);
    }
  }

  // Starts sharing the screen, or stops.
  async toggleScreen() {
    const { page } = this;
    if (this.screen) {
      this.stopScreen();
      return;
    }
    const transport = page.sendTransport();
    if (!transport) return;
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: true });
      const track = stream.getVideoTracks()[0];
      this.screen = await transport.produce({ track, appData: { source: 'screen' } });
      // The browser's own "Stop sharing" ends the track.
      track.addEventListener('ended', () => this.stopScreen());
    } catch (e) {
      page.fail('share the screen', e);
    }
    page.render();
  }

  stopScreen() {
    const producer = this.screen;
    if (!producer) return;
    this.screen = null;
    this.page.request('closeProducer', { producerId: producer.id }).catch(() => {});
    producer.close();
    producer.track?.stop();
    this.page.render();
  }

  // The room is gone on this side (its transports closed the share's producer).
  forget() {
    this.screen?.track?.stop();
    this.screen = null;
    this.page.localMarks.micOff.hidden = this.page.localMarks.camOff.hidden = true;
  }

  // Lists the cameras and microphones (their names once permission is given).
  async listDevices() {
    const { page } = this;
    const devices = await navigator.mediaDevices?.enumerateDevices?.().catch(() => []) ?? [];
    for (const [select, kind] of [['camera-select', 'videoinput'], ['mic-select', 'audioinput']]) {
      const current = page.localStream()?.getTracks()
        .find((t) => `${t.kind}input` === kind)?.getSettings().deviceId;
      page.element(select).replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) => {
        const name = d.label || `${kind === 'videoinput' ? 'camera' : 'microphone'} ${i + 1}`;
        const option = new Option(name, d.deviceId);
        option.selected = d.deviceId === current;
        return option;
      }));
    }
  }

  // Switches to another camera or microphone: the producer sends the new track from now on.
  async useDevice(kind, deviceId) {
    const { page } = this;
    const local = page.localStream();
    if (!local) return;
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ [kind]: { deviceId: { exact: deviceId } } });
      const track = stream.getTracks()[0];
      const old = local.getTracks().find((t) => t.kind === kind);
      await page.producerOf(kind)?.replaceTrack({ track });
      if (old) {
        local.removeTrack(old);
        old.stop();
      }
      local.addTrack(track);
      if (kind === 'video') page.element('local-video').srcObject = local;
    } catch (e) {
      page.fail(`switch the ${kind === 'video' ? 'camera' : 'microphone'}`, e);
    }
  }
}
