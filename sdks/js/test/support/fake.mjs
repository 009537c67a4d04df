// A scripted stand-in for the server behind an injected WebSocket class: the state machine's
// tests drive every close code and answer without a network or a clock of their own.

export const LOGIN_OK = { heartbeat_ms: 30_000, timeout_ms: 90_000, token_expire: 2_000_000_000, server_time_ms: 0 };

export class FakeServer {
  constructor() {
    /** Every socket the SDK opened, in order. */
    this.sockets = [];
    /**
     * What a new socket does: 'accept' (open, answer login with login_ok) or 'refuse' (close
     * 1006), or a function of the URL returning one of them.
     */
    this.mode = 'accept';
    /** Extra fields for the next login_ok (e.g. `{ recovered: true }`), or a function of the socket. */
    this.loginOk = {};
    /** Answer every ping with a pong at once. */
    this.autoPong = false;
    /** Called with (socket, loginFrame) instead of answering login_ok, when set. */
    this.onLogin = undefined;
    this.waiters = [];
    const server = this;
    this.WebSocket = class FakeWebSocket {
      constructor(url, protocols) {
        this.url = url;
        this.protocols = protocols;
        this.readyState = 0;
        this.sent = [];
        this.closedByClient = undefined;
        this.onopen = this.onmessage = this.onclose = this.onerror = null;
        server.sockets.push(this);
        server.notify();
        const mode = typeof server.mode === 'function' ? server.mode(url) : server.mode;
        setTimeout(() => (mode === 'refuse' ? this.serverClose(1006, '') : this.open()), 0);
      }
      open() {
        this.readyState = 1;
        this.onopen?.({});
      }
      send(data) {
        if (this.readyState !== 1) throw new Error('not open');
        const frame = JSON.parse(data);
        this.sent.push(frame);
        server.notify();
        // A very fast network: the pong is there before send returns.
        if (frame.t === 'ping' && server.autoPong) this.serverSend({ t: 'pong', id: frame.id });
        if (frame.t === 'login') {
          // Answered on a later turn, as a network would.
          setTimeout(() => {
            if (this.readyState !== 1) return;
            if (server.onLogin) return server.onLogin(this, frame);
            this.serverSend({ t: 'login_ok', id: frame.id, session_id: String(server.sockets.length), ...LOGIN_OK, ...server.loginOk });
          }, 0);
        }
      }
      close(code) {
        if (this.readyState === 3) return;
        this.closedByClient = code ?? 1005;
        this.readyState = 3;
        setTimeout(() => this.onclose?.({ code: code ?? 1005, reason: '' }), 0);
        server.notify();
      }
      /** The server sends a frame. */
      serverSend(frame) {
        this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
      }
      /** The server (or the network) closes the socket. */
      serverClose(code, reason = '') {
        if (this.readyState === 3) return;
        this.readyState = 3;
        this.onclose?.({ code, reason });
        server.notify();
      }
    };
  }

  get last() {
    return this.sockets[this.sockets.length - 1];
  }

  notify() {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when `probe()` is truthy; rejects after `timeoutMs` (a hang guard). */
  async until(what, probe, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = probe();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`fake server: timed out waiting for ${what}`);
      await new Promise((r) => {
        this.waiters.push(r);
        setTimeout(r, 10);
      });
    }
  }

  /** The next frame of type `t` the SDK sent on `socket` after the first `skip` of them. */
  frame(socket, t, skip = 0) {
    return this.until(`a ${t} frame`, () => socket.sent.filter((f) => f.t === t)[skip]);
  }
}

/** Records an instance's events so a test can wait for them in order. */
export function record(zim) {
  const events = [];
  const states = [];
  const messages = [];
  const errors = [];
  zim.on('connectionStateChanged', (_z, data) => {
    events.push(['state', data]);
    states.push([data.state, data.event]);
  });
  zim.on('broadcastMessageReceived', (_z, { message }) => {
    events.push(['message', message]);
    messages.push(message);
  });
  zim.on('tokenWillExpire', (_z, data) => events.push(['tokenWillExpire', data]));
  zim.on('error', (_z, data) => {
    events.push(['error', data]);
    errors.push(data);
  });
  const until = async (what, probe, timeoutMs = 5000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = probe();
      if (v) return v;
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what}; states so far ${JSON.stringify(states)}`);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  return {
    events,
    states,
    messages,
    errors,
    until,
    /** Waits until the states seen so far end with `[state, event]`. */
    state(state, event, timeoutMs) {
      return until(`state ${state}/${event}`, () => {
        const lastState = states[states.length - 1];
        return lastState && lastState[0] === state && (event === undefined || lastState[1] === event);
      }, timeoutMs);
    },
  };
}
