// The WebSocket to /ws (docs/protocol.md): JSON messages, one per frame.

export class SignallingError extends Error {
  constructor(code, message) {
    super(message || code);
    this.code = code;
  }
}

// Whoever watches every server message after it was handled (embedding.js): fn(message, sig).
const taps = [];

export function tapMessages(fn) {
  taps.push(fn);
}

export class Signalling {
  constructor(url = Signalling.defaultUrl()) {
    this.url = url;
    this.ws = null;
    this.handlers = new Map();
    this.pending = new Map();
    this.nextId = 1;
    this.closedByUs = false;
    this.onclose = null;
    this.lastMessageAt = Date.now(); // when the server last said anything
  }

  static defaultUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/ws`;
  }

  /** Resolve once the socket is open; reject with code connection_failed. */
  connect(timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      let settled = false;
      const ws = new WebSocket(this.url);
      this.ws = ws;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        ws.close();
        reject(new SignallingError('connection_failed'));
      }, timeoutMs);
      ws.onopen = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve();
      };
      ws.onerror = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(new SignallingError('connection_failed'));
      };
      ws.onmessage = (event) => this.dispatch(event.data);
      ws.onclose = (event) => {
        clearTimeout(timer);
        for (const { reject: fail } of this.pending.values()) {
          fail(new SignallingError('connection_failed'));
        }
        this.pending.clear();
        if (!settled) {
          settled = true;
          reject(new SignallingError('connection_failed'));
        }
        if (this.onclose) this.onclose(event, this.closedByUs);
      };
    });
  }

  on(type, handler) {
    this.handlers.set(type, handler);
  }

  dispatch(data) {
    this.lastMessageAt = Date.now();
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      console.warn('urok: non-JSON frame from server');
      return;
    }
    if (!message || typeof message.type !== 'string') return;
    this.route(message);
    for (const tap of taps) {
      try {
        tap(message, this);
      } catch (error) {
        console.warn('urok: message tap failed', error);
      }
    }
  }

  route(message) {
    if (message.ref && this.pending.has(message.ref)) {
      const waiter = this.pending.get(message.ref);
      if (message.type === 'error' || waiter.types.includes(message.type)) {
        this.pending.delete(message.ref);
        clearTimeout(waiter.timer);
        if (message.type === 'error') {
          waiter.reject(new SignallingError(message.code, message.message));
        } else {
          waiter.resolve(message);
        }
        return;
      }
    }
    if (!message.ref && message.type !== 'error') {
      // A reply that did not carry its ref back: give it to the oldest waiter for its type.
      for (const [id, waiter] of this.pending) {
        if (waiter.types.includes(message.type)) {
          this.pending.delete(id);
          clearTimeout(waiter.timer);
          waiter.resolve(message);
          return;
        }
      }
    }
    const handler = this.handlers.get(message.type) || this.handlers.get('*');
    if (handler) handler(message);
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** Send `message` with a fresh id (errors it causes come back with it as `ref`); the id, or null. */
  sendWithId(message) {
    const id = `c${this.nextId++}`;
    return this.send({ ...message, id }) ? id : null;
  }

  /**
   * Send `message` with an id and wait for a reply of one of `types` (or an
   * error) carrying it back as `ref`.
   */
  request(message, types, timeoutMs = 20000, withId = true) {
    const id = `c${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SignallingError('timeout'));
      }, timeoutMs);
      this.pending.set(id, { types, resolve, reject, timer });
      if (!this.send(withId ? { ...message, id } : message)) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new SignallingError('connection_failed'));
      }
    });
  }

  close() {
    this.closedByUs = true;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
  }
}
