// The demo page's signaling connection (docs/protocol.md): one WebSocket at a time, numbered
// requests answered through promises, notifications handed on. What to do when it closes
// (resume the session, join again) is the page's decision, told through `onClose`.

// The signaling URL: `?ws=` (absolute, or relative to the page, e.g. behind a reverse proxy
// at a path: ?ws=/api/conference), else /ws of the page's server.
export function signalingUrl(params, pageUrl) {
  const url = new URL(params.get('ws') || '/ws', pageUrl);
  if (url.protocol === 'https:') url.protocol = 'wss:';
  else if (url.protocol === 'http:') url.protocol = 'ws:';
  return url.href;
}

// The host to try after `current` (docs/protocol.md, "Several hosts"): the next of `hosts`
// in turn, the first when `current` is not listed; null when there is no other.
export function nextHost(hosts, current) {
  const others = hosts.filter((u) => u !== current);
  if (!others.length) return null;
  const at = hosts.indexOf(current);
  return at < 0 ? others[0] : hosts[(at + 1) % hosts.length];
}

export class Signaling {
  // `onState(state)`: 'connecting', 'open' or 'closed'; `onNotification(name, data)`;
  // `onClose(event)` once a connection that opened (or tried to) has closed.
  constructor(url, { onState, onNotification, onClose }) {
    this.url = url;
    this.handlers = { onState, onNotification, onClose };
    this.ws = null;
    this.hosts = []; // in a cluster: every host's signaling URL
    this.nextId = 1;
    this.pending = new Map(); // request id -> { resolve, reject }
  }

  // Opens the connection unless it is open or opening; resolves once it is open.
  connect() {
    const { ws } = this;
    if (ws && ws.readyState <= WebSocket.OPEN) {
      return ws.readyState === WebSocket.OPEN ? Promise.resolve() : new Promise((ok, ko) => {
        ws.addEventListener('open', () => ok(), { once: true });
        ws.addEventListener('close', () => ko(new Error('cannot connect to the server')), { once: true });
      });
    }
    this.handlers.onState('connecting');
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url);
      this.ws = socket;
      let opened = false;
      socket.onopen = () => {
        opened = true;
        this.handlers.onState('open');
        resolve();
      };
      socket.onmessage = (event) => this.onFrame(event.data);
      socket.onclose = (event) => {
        if (this.ws !== socket) return;
        this.ws = null;
        for (const { reject: fail } of this.pending.values()) fail(new Error('connection closed'));
        this.pending.clear();
        reject(new Error('cannot connect to the server'));
        // Its host cannot be reached: the next try goes to another host of the cluster.
        if (!opened) this.failover();
        this.handlers.onState('closed');
        this.handlers.onClose(event);
      };
    });
  }

  // In a cluster: the hosts' signaling URLs (join and resume answers, `hostsChanged`).
  setHosts(urls) {
    this.hosts = Array.isArray(urls) ? urls.filter((u) => typeof u === 'string' && u) : [];
  }

  // Moves to the next host of the list after this one; whether there was another.
  failover() {
    const next = nextHost(this.hosts, this.url);
    if (!next) return false;
    this.url = next;
    return true;
  }

  // Sends a request; its answer's `data`, or an error with the answer's `code`.
  request(method, data = {}) {
    const { ws } = this;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error('connection closed'));
    }
    const id = this.nextId++;
    ws.send(JSON.stringify({ id, method, data }));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  onFrame(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg.notification) {
      this.handlers.onNotification(msg.notification, msg.data || {});
      return;
    }
    const waiter = this.pending.get(msg.id);
    if (!waiter) {
      if (msg.ok === false) console.warn('server error', msg.error);
      return;
    }
    this.pending.delete(msg.id);
    if (msg.ok) waiter.resolve(msg.data || {});
    else {
      const error = new Error(msg.error?.message || 'request failed');
      error.code = msg.error?.code || 'unknown';
      waiter.reject(error);
    }
  }
}
