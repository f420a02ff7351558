// hub-link.js: the connection behind hub-client.js (ES module; docs/frontend.md).
//
// One tab per browser holds the connection of a feed (a Web Lock); it shares every frame
// and its status with the other tabs through a BroadcastChannel. The holder connects
// over a websocket, else server-sent events, resumes with `since` and backs off with jitter.

const OPS = ["subscribed", "entry", "deleted", "counts", "archived", "unarchived", "updated", "error"];

/** The claims of a JWT (no verification: the server does that). */
export function claims(token) {
  try {
    const b = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b + "===".slice((b.length + 3) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch (e) {
    return {};
  }
}

// Which tab holds the connection: the one holding the Web Lock; the lock passes to a
// waiting tab as soon as the holder's page goes away.
export class Link {
  constructor(feed) {
    this.feed = feed;
    const hub = feed.hub;
    this.name = ["hub-client", hub.url, hub.app, hub.user, feed.group].join("|");
    this.bc = typeof BroadcastChannel === "function" ? new BroadcastChannel(this.name) : null;
    this.transport = null;
    this.abort = new AbortController();
  }

  start() {
    const locks = typeof navigator !== "undefined" && navigator.locks;
    if (!locks || !this.bc) { this._hold(); return; }
    this.bc.onmessage = (e) => this._message(e.data);
    locks.request(this.name, { signal: this.abort.signal }, () => new Promise((release) => {
      this.release = release;
      this._hold();
    })).catch(() => {});
    this.bc.postMessage({ t: "hello" });
  }

  get holder() { return this.transport !== null; }

  _hold() {
    if (this.closed) { if (this.release) this.release(); return; }
    this.transport = new Transport(this.feed, (f) => this.share(f), (s) => this._status(s));
    this.transport.start();
  }

  _message(m) {
    if (m.t === "frame") this.feed._frame(m.frame);
    else if (m.t === "status" && !this.holder) this.feed._setStatus(m.status);
    else if (m.t === "hello" && this.holder) this.bc.postMessage({ t: "status", status: this.feed.status });
  }

  _status(s) {
    this.feed._setStatus(s);
    if (this.bc) this.bc.postMessage({ t: "status", status: s });
  }

  /** A frame for this tab and every other. */
  share(frame) {
    this.feed._frame(frame);
    if (this.bc) this.bc.postMessage({ t: "frame", frame });
  }

  tokenChanged() { if (this.transport) this.transport.reconnect(); }

  close() {
    this.closed = true;
    if (this.transport) this.transport.close();
    this.transport = null;
    this.abort.abort();
    if (this.release) this.release();
    if (this.bc) this.bc.close();
  }
}

// The holder's connection: a websocket, else server-sent events; backoff with jitter.
class Transport {
  constructor(feed, onFrame, onStatus) {
    this.feed = feed;
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.attempt = 0;
    this.sse = false;
    this.wsWorked = false;
    this.sock = null;
    this.timer = null;
    this.online = () => { this.attempt = 0; this.connect(); };
    this.offline = () => { this.drop(); this.onStatus("offline"); };
  }

  start() {
    addEventListener("online", this.online);
    addEventListener("offline", this.offline);
    if (navigator.onLine === false) this.onStatus("offline");
    else this.connect();
  }

  connect() {
    this.drop();
    if (this.closed) return;
    const hub = this.feed.hub;
    if (this.sse) this.openSse(hub); else this.openWs(hub);
  }

  /** Move onto a new token now (the old one is about to expire): resume with `since`. */
  reconnect() { if (!this.closed && navigator.onLine !== false) this.connect(); }

  openWs(hub) {
    const url = hub.url.replace(/^http/, "ws") + "/v1/realtime?token=" + encodeURIComponent(hub.token);
    const ws = new WebSocket(url);
    let subscribed = false;
    this.sock = ws;
    ws.onopen = () => {
      const msg = { op: "subscribe", feed: this.feed.id };
      if (this.feed.cursor) msg.since = this.feed.cursor;
      ws.send(JSON.stringify(msg));
      this.ping = setInterval(() => ws.send('{"op":"ping"}'), 25000);
    };
    ws.onmessage = (e) => {
      const f = JSON.parse(e.data);
      if (f.op === "pong" || (f.feed && f.feed !== this.feed.id)) return;
      if (f.op === "subscribed") { subscribed = true; this.wsWorked = true; this.live(); }
      if (f.op === "error") this.onStatus("error");
      this.onFrame(f);
    };
    ws.onclose = (e) => {
      clearInterval(this.ping);
      if (this.sock !== ws) return; // replaced on purpose
      this.sock = null;
      if (e.code === 4001) { this.afterRefresh(); return; }
      if (!subscribed && !this.wsWorked) this.sse = true; // refused: try server-sent events
      this.retry(!subscribed && this.sse && this.attempt === 0);
    };
  }

  openSse(hub) {
    const q = new URLSearchParams({ token: hub.token, feed: this.feed.id });
    if (this.feed.cursor) q.set("since", this.feed.cursor);
    const es = new EventSource(hub.url + "/v1/realtime/sse?" + q);
    let subscribed = false;
    this.sock = es;
    for (const op of OPS) {
      es.addEventListener(op, (e) => {
        const f = JSON.parse(e.data);
        if (op === "subscribed") { subscribed = true; this.live(); }
        this.onFrame(f);
      });
    }
    es.addEventListener("close", (e) => { // the server ends the stream: 4001 at token expiry
      if (this.sock !== es) return;
      this.sock = null;
      es.close();
      if (JSON.parse(e.data).code === 4001) this.afterRefresh(); else this.retry(false);
    });
    es.onerror = () => {
      if (this.sock !== es) return;
      // EventSource retries by itself with Last-Event-ID; a refused request (401) closes it.
      if (es.readyState !== EventSource.CLOSED) { this.onStatus("connecting"); return; }
      this.sock = null;
      if (!subscribed) this.sse = false; // neither works yet: alternate
      if (claims(hub.token).exp * 1000 <= Date.now() + 1000) this.afterRefresh();
      else this.retry(false);
    };
  }

  live() { this.attempt = 0; this.onStatus("live"); }

  afterRefresh() {
    this.feed.hub.refresh().then(() => this.connect(), () => this.onStatus("error"));
  }

  retry(now) {
    if (this.closed) return;
    if (navigator.onLine === false) { this.onStatus("offline"); return; }
    this.onStatus("connecting");
    const base = Math.min(30000, 500 * 2 ** this.attempt++);
    const delay = now ? 0 : base / 2 + Math.random() * base / 2; // jitter: spread reconnecting tabs
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  drop() {
    clearTimeout(this.timer);
    clearInterval(this.ping);
    const s = this.sock;
    this.sock = null;
    if (s) s.close();
  }

  close() {
    this.closed = true;
    removeEventListener("online", this.online);
    removeEventListener("offline", this.offline);
    this.drop();
  }
}
