// The chat panel: messages travel on data channels through the SFU (docs/protocol.md,
// `produceData` and `consumeData`). This page sends on one data producer labelled `chat` and
// receives every other peer's; who wrote a message is the peer of the data producer it came
// on, which the server vouches for, so a name cannot be forged in the text.

const MAX_LENGTH = 1000; // characters; the SFU takes messages up to 16 KiB by default
const MAX_LINES = 200; // the log keeps the latest

export class Chat {
  // `page` gives `request(method, data)`, `peerName(peerId)`, `ownName()`, `element(id)` and
  // `fail(what, error)` (shows an error unless it is moot).
  constructor(page) {
    this.page = page;
    this.producer = null; // our mediasoup-client DataProducer
    this.consumers = new Map(); // dataConsumerId -> { consumer, peerId }
    this.queued = []; // { dataProducerId, peerId } announced before the receive transport
    this.asked = new Set(); // dataProducerIds being consumed or consumed: each once
    this.recvTransport = null;
    const $ = page.element;
    this.log = $('chat-log');
    this.input = $('chat-input');
    this.send = $('chat-send');
    this.note = $('chat-note');
    this.input.maxLength = MAX_LENGTH;
    $('chat-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.sendMessage();
    });
    this.enable(false);
  }

  enable(on) {
    this.input.disabled = !on;
    this.send.disabled = !on;
  }

  // The transports of a (re-)joined room: open our channel, receive those queued meanwhile.
  async open(sendTransport) {
    try {
      const producer = await sendTransport.produceData({ label: 'chat', ordered: true });
      this.producer = producer;
      // Not when an old one closes after a move (moveMedia) opened this one.
      producer.on('close', () => this.producer === producer && this.enable(false));
      this.enable(true);
    } catch (e) {
      if (e.code === 'forbidden') {
        // A join token without canPublish: this page may read the chat, not write.
        this.note.textContent = 'Read-only chat: your join token does not allow sending.';
        this.note.hidden = false;
        return;
      }
      this.page.fail('open the chat', e);
    }
  }

  useRecvTransport(transport) {
    this.recvTransport = transport;
    const queued = this.queued;
    this.queued = [];
    return Promise.all(queued.map(({ dataProducerId, peerId }) => this.consume(dataProducerId, peerId)));
  }

  // Another peer's data producer (newDataProducer, or the join/resume answer).
  async consume(dataProducerId, peerId) {
    const transport = this.recvTransport;
    if (!transport) {
      this.queued.push({ dataProducerId, peerId });
      return;
    }
    // A resume's list and a newDataProducer can name the same one at once.
    if (this.asked.has(dataProducerId)) return;
    this.asked.add(dataProducerId);
    try {
      const info = await this.page.request('consumeData', { transportId: transport.id, dataProducerId });
      if (transport !== this.recvTransport) return; // torn down meanwhile
      const consumer = await transport.consumeData({
        id: info.dataConsumerId,
        dataProducerId: info.dataProducerId,
        sctpStreamParameters: info.sctpStreamParameters,
        label: info.label,
        protocol: info.protocol,
      });
      this.consumers.set(consumer.id, { consumer, peerId });
      consumer.on('message', (data) => {
        if (typeof data === 'string') this.append(this.page.peerName(peerId), data);
      });
    } catch (e) {
      this.asked.delete(dataProducerId);
      if (transport !== this.recvTransport || transport.closed) return; // torn down: moot
      this.page.fail('receive a chat', e);
    }
  }

  // This page's media moves (moveMedia): from now on receive on `transport` (null: queue
  // until useRecvTransport). The old consumers are returned, for the caller to close once
  // the new ones are made.
  moveTo(transport) {
    const old = [...this.consumers.values()];
    this.consumers.clear();
    this.asked.clear();
    this.recvTransport = transport;
    return old;
  }

  closed(dataConsumerId) {
    const entry = this.consumers.get(dataConsumerId);
    if (!entry) return;
    entry.consumer.close();
    this.asked.delete(entry.consumer.dataProducerId);
    this.consumers.delete(dataConsumerId);
  }

  // A resume: keep the data consumers the server still has, receive what came meanwhile.
  reconcile(info) {
    const alive = new Set((info.dataConsumers || []).map((c) => c.dataConsumerId));
    for (const id of [...this.consumers.keys()]) if (!alive.has(id)) this.closed(id);
    for (const peer of info.peers || []) {
      for (const d of peer.dataProducers || []) this.consume(d.dataProducerId, peer.peerId);
    }
  }

  throttled(data) {
    this.note.textContent = `Sending too fast (over ${data.maxMessagesPerSec} messages a second): ` +
      `what you send in the next ${data.pausedMs / 1000} s is dropped.`;
    this.note.hidden = false;
    setTimeout(() => {
      this.note.hidden = true;
    }, data.pausedMs);
  }

  sendMessage() {
    const text = this.input.value.trim();
    if (!text || !this.producer || this.producer.closed) return;
    try {
      this.producer.send(text);
    } catch (e) {
      this.page.fail('send the message', e);
      return;
    }
    this.append(`${this.page.ownName()} (you)`, text);
    this.input.value = '';
    this.input.focus();
  }

  append(name, text) {
    const line = document.createElement('li');
    const who = document.createElement('b');
    who.textContent = `${name}: `;
    line.append(who, document.createTextNode(text));
    this.log.append(line);
    while (this.log.children.length > MAX_LINES) this.log.firstElementChild.remove();
    this.log.scrollTop = this.log.scrollHeight;
  }

  // The room is gone on this side (leave, roomMoved, a transport lost); the log stays.
  forget() {
    this.producer?.close();
    this.producer = null;
    for (const { consumer } of this.consumers.values()) consumer.close();
    this.consumers.clear();
    this.asked.clear();
    this.queued = [];
    this.recvTransport = null;
    this.enable(false);
  }
}
