// hub-client.js: the browser client of the hub (ES module, no build step; docs/frontend.md).
//
// Guarantees: `entries` follow the server exactly (live frames replace, move, delete and
// archive groups; counts come only from the server); after any disconnect the feed resumes
// with `since` = the last cursor seen, so every change is applied once and in order, then
// re-reads the loaded window over HTTP once (the replay carries entries and deletions, not
// marks or archives made elsewhere meanwhile; a `complete: false` replay is covered too);
// the token is refreshed before it expires and after a 4001 close; one tab per browser
// holds the connection (Web Locks) and the others receive its frames through a
// BroadcastChannel; websockets fall back to server-sent events (hub-link.js).

import { Link, claims } from "./hub-link.js";

export { claims };

const PAGE = 25;

export class HubClient {
  constructor({ url, token, refreshToken } = {}) {
    this.url = (url || location.origin).replace(/\/$/, "");
    this.token = token;
    this._refreshToken = refreshToken;
    this._feeds = new Map();
    this._refreshing = null;
    this._timer = null;
    const c = claims(token);
    this.app = c.app;
    this.user = c.sub;
    this._schedule();
  }

  /** The token's user's feed of `group` (one object per group). */
  feed(group) {
    if (!this._feeds.has(group)) this._feeds.set(group, new Feed(this, group));
    return this._feeds.get(group);
  }

  /** fetch with the bearer token; a 401 refreshes the token once and retries. */
  async fetch(path, init = {}, retried = false) {
    const headers = { Authorization: "Bearer " + this.token, "Content-Type": "application/json" };
    const r = await fetch(this.url + path, { ...init, headers: { ...headers, ...(init.headers || {}) } });
    if (r.status === 401 && !retried && this._refreshToken) {
      await this.refresh();
      return this.fetch(path, init, true);
    }
    if (!r.ok) throw new HubError(r.status, await r.json().catch(() => ({})));
    return r.status === 204 ? {} : r.json();
  }

  /** A new token from `refreshToken()`; one call at a time. Connections are moved onto it. */
  refresh() {
    if (!this._refreshToken) return Promise.reject(new Error("token expired and no refreshToken"));
    if (!this._refreshing) {
      this._refreshing = (async () => {
        try {
          this.token = await this._refreshToken();
          this._schedule();
          for (const f of this._feeds.values()) f._link.tokenChanged();
        } finally {
          this._refreshing = null;
        }
      })();
    }
    return this._refreshing;
  }

  // Refresh a quarter of the remaining life (at most 60 s) before `exp`.
  _schedule() {
    clearTimeout(this._timer);
    const exp = claims(this.token).exp;
    if (!exp || !this._refreshToken || this._closed) return;
    const left = exp * 1000 - Date.now();
    const delay = Math.max(0, left - Math.min(60000, left / 4));
    this._timer = setTimeout(() => this.refresh().catch(() => {}), delay);
  }

  close() {
    this._closed = true;
    clearTimeout(this._timer);
    for (const f of this._feeds.values()) f._close();
    this._feeds.clear();
  }
}

export class HubError extends Error {
  constructor(status, body) {
    super((body.error && body.error.message) || "HTTP " + status);
    this.status = status;
    this.code = body.error && body.error.code;
  }
}

class Feed {
  constructor(hub, group) {
    this.hub = hub;
    this.group = group;
    this.id = group + ":" + hub.user;
    this.path = "/v1/feeds/" + encodeURIComponent(group) + "/" + encodeURIComponent(hub.user);
    this.filter = "all";
    this.entries = [];
    this.unseen = 0;
    this.unread = 0;
    this.next = null;
    this.status = "connecting";
    this.cursor = null;
    this._listeners = new Set();
    this._held = null; // frames that arrived while a page was being read
    this._gen = 0;
    this._link = new Link(this);
    this.reload();
    this._link.start();
  }

  get state() {
    return { entries: this.entries.slice(), unseen: this.unseen, unread: this.unread,
             hasMore: this.next !== null, status: this.status, filter: this.filter };
  }

  subscribe(fn) {
    this._listeners.add(fn);
    fn(this.state);
    return () => this._listeners.delete(fn);
  }

  _emit() {
    const s = this.state;
    for (const fn of this._listeners) {
      try { fn(s); } catch (e) { setTimeout(() => { throw e; }); }
    }
  }

  _query(extra) {
    const q = new URLSearchParams({ limit: String(PAGE), ...extra });
    if (this.filter !== "all") q.set("filter", this.filter);
    return this.path + "?" + q;
  }

  /** Re-read the first page of the current view (`keep`: as many entries as are loaded, up to
   *  100); frames arriving meanwhile apply after it. */
  async reload(keep = false) {
    const gen = ++this._gen;
    this._held = this._held || [];
    const limit = keep ? Math.min(100, Math.max(PAGE, this.entries.length)) : PAGE;
    try {
      const body = await this.hub.fetch(this._query({ limit: String(limit) }));
      if (gen !== this._gen) return;
      this.entries = body.results;
      this.next = body.next || null;
      this._counts(body);
    } catch (e) {
      if (gen !== this._gen) return; // offline: the next subscribe reads again
    }
    const held = this._held;
    this._held = null;
    for (const f of held) this._apply(f);
    this._emit();
  }

  async loadMore() {
    if (this.next === null || this._held) return;
    const gen = this._gen;
    const body = await this.hub.fetch(this._query({ id_lt: this.next }));
    if (gen !== this._gen) return;
    const have = new Set(this.entries.map((e) => e.id));
    this.entries = this.entries.concat(body.results.filter((e) => !have.has(e.id)));
    this.next = body.next || null;
    this._emit();
  }

  setFilter(filter) {
    if (!["all", "unread", "unseen", "archived"].includes(filter)) throw new Error("bad filter " + filter);
    if (filter === this.filter) return Promise.resolve();
    this.filter = filter;
    this.entries = [];
    this.next = null;
    this._emit();
    return this.reload();
  }

  markRead(ids) { return this._mark("read", ids); }
  markSeen(ids) { return this._mark("seen", ids); }
  archive(ids) { return this._mark("archive", ids); }
  unarchive(ids) { return this._mark("unarchive", ids); }

  // The HTTP call, then its result to every tab (the server's own frame may come too: applying twice is harmless).
  async _mark(kind, ids) {
    const all = ids === "all";
    const body = await this.hub.fetch(this.path + "/" + kind,
      { method: "POST", body: JSON.stringify(all ? { all: true } : { ids }) });
    const frame = { op: kind === "archive" ? "archived" : kind === "unarchive" ? "unarchived" : "marked",
                    kind, ids: all ? "all" : ids, unseen: body.unseen, unread: body.unread, feed: this.id };
    this._link.share(frame);
    return body;
  }

  _counts(f) {
    if (typeof f.unseen === "number") this.unseen = f.unseen;
    if (typeof f.unread === "number") this.unread = f.unread;
  }

  // A frame from the connection (this tab's or the holder's) or a local action.
  _frame(f) {
    if (f.cursor) this.cursor = f.cursor;
    if (this._held) { this._held.push(f); return; }
    this._apply(f);
    this._emit();
  }

  _apply(f) {
    const ids = Array.isArray(f.ids) ? new Set(f.ids) : null;
    const drop = () => { this.entries = this.entries.filter((e) => !ids.has(e.id)); };
    switch (f.op) {
      case "subscribed":
        for (const e of f.missed || []) this._upsert(e);
        this._counts(f);
        // Every subscribe is followed by one re-read of the loaded window: the server's replay
        // holds entries and deletions only (marks and archives made elsewhere while this
        // browser was away are not in it), and a first subscribe has nothing to resume from
        // (what changed between the page's first read and it). Frames arriving meanwhile
        // are held and applied after the read, so none is lost.
        setTimeout(() => this.reload(true));
        break;
      case "entry": this._upsert(f.entry); this._counts(f); break;
      case "updated": this.entries = this.entries.map((e) => (e.id === f.entry.id ? f.entry : e)); break;
      case "deleted": drop(); break;
      case "counts": this._counts(f); this._syncFlags(); break;
      case "archived":
        this._counts(f);
        if (this.filter === "archived") setTimeout(() => this.reload());
        else if (ids) drop();
        else if (f.ids === "all") this.entries = [];
        break;
      case "unarchived": this._counts(f); setTimeout(() => this.reload()); break;
      case "marked": this._marked(f); break;
    }
  }

  // A group that changed goes to the top; a new activity brings an archived group back.
  _upsert(entry) {
    const rest = this.entries.filter((e) => e.id !== entry.id);
    this.entries = this.filter === "archived" ? rest : [entry].concat(rest);
  }

  _marked(f) {
    const hit = (e) => f.ids === "all" || f.ids.includes(e.id);
    const read = f.kind === "read";
    this.entries = this.entries
      .map((e) => (hit(e) ? { ...e, is_seen: true, ...(read ? { is_read: true } : {}) } : e))
      .filter((e) => !(hit(e) && ((this.filter === "unread" && read) || this.filter === "unseen")));
    this._counts(f);
  }

  // Counts changed by a mark made elsewhere (another device): zero is exact, otherwise re-read.
  _syncFlags() {
    if (this.unread === 0) this.entries = this.entries.map((e) => ({ ...e, is_read: true, is_seen: true }));
    else if (this.unseen === 0) this.entries = this.entries.map((e) => ({ ...e, is_seen: true }));
    const want = [this.unseen, this.unread].join();
    const have = [this.entries.filter((e) => !e.is_seen).length, this.entries.filter((e) => !e.is_read).length].join();
    if (want !== have && this.next === null) {
      clearTimeout(this._sync);
      this._sync = setTimeout(() => this.reload(), 200);
    }
  }

  _setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this._emit();
  }

  _close() {
    this._gen++;
    this._listeners.clear();
    this._link.close();
  }
}
