// The live inbox: reads the notification feed over HTTP, follows it over the websocket,
// and resumes with `since` after the network drops (docs/api.md, Routes and Websocket).
(function () {
  "use strict";
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || "";
  const $ = (id) => document.getElementById(id);
  const state = { groups: new Map(), order: [], cursor: null, ws: null, retry: 0, unseen: 0, unread: 0 };

  function claims(t) {
    try {
      const b = t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const json = decodeURIComponent(Array.from(atob(b + "===".slice((b.length + 3) % 4)),
        (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""));
      return JSON.parse(json);
    } catch (e) { return {}; }
  }
  const user = claims(token).sub;
  const feed = "notification:" + user;
  const api = "/v1/feeds/notification/" + encodeURIComponent(user);
  const auth = { "Authorization": "Bearer " + token, "Content-Type": "application/json" };

  const PAST = { like: "liked", comment: "commented on", follow: "followed", share: "shared", mention: "mentioned you in",
                 post: "posted", reply: "replied to" };
  function sentence(g) {
    const who = g.actors[0] || "someone";
    const others = g.actor_count - 1;
    const subject = others > 0 ? who + " and " + others + " other" + (others > 1 ? "s" : "") : who;
    const verb = PAST[g.verb] || (g.verb.endsWith("e") ? g.verb + "d" : g.verb + "ed");
    const obj = g.activities.length ? g.activities[0].object : "";
    return subject + " " + verb + " " + obj;
  }

  function setCounts(c) {
    if (typeof c.unseen === "number") state.unseen = c.unseen;
    if (typeof c.unread === "number") state.unread = c.unread;
    const bell = $("bell-count");
    bell.textContent = String(state.unread);
    bell.className = "count" + (state.unread ? "" : " zero");
    $("unseen-count").textContent = String(state.unseen);
    $("unread-count").textContent = String(state.unread);
  }

  function render() {
    const ul = $("groups");
    ul.textContent = "";
    for (const id of state.order) {
      const g = state.groups.get(id);
      const li = document.createElement("li");
      li.className = "group" + (g.is_read ? "" : " unread") + (g.is_seen ? "" : " unseen");
      li.dataset.id = g.id;
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = sentence(g);
      const when = document.createElement("time");
      when.textContent = new Date(g.updated_at).toLocaleString();
      text.appendChild(when);
      li.appendChild(text);
      if (!g.is_read) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "mark-read";
        b.textContent = "Mark read";
        b.addEventListener("click", () => markRead(g.id));
        li.appendChild(b);
      }
      ul.appendChild(li);
    }
    $("empty").style.display = state.order.length ? "none" : "";
  }

  function upsert(g) {            // an entry that changed moves to the top
    state.groups.set(g.id, g);
    state.order = [g.id].concat(state.order.filter((x) => x !== g.id));
  }
  function remove(ids) {
    for (const id of ids) state.groups.delete(id);
    state.order = state.order.filter((x) => state.groups.has(x));
  }

  async function load() {
    let r;
    try { r = await fetch(api + "?limit=50", { headers: auth }); }
    catch (e) { state.stale = true; return; }  // offline: re-read once the socket is back
    state.stale = false;
    if (!r.ok) { status("error " + r.status); return; }
    const body = await r.json();
    state.groups = new Map(body.results.map((g) => [g.id, g]));
    state.order = body.results.map((g) => g.id);
    setCounts(body);
    render();
  }

  async function post(path, payload) {
    let r;
    try { r = await fetch(api + path, { method: "POST", headers: auth, body: JSON.stringify(payload) }); }
    catch (e) { status("offline"); return false; }
    if (r.ok) setCounts(await r.json());
    return r.ok;
  }
  async function markRead(id) {
    if (await post("/read", { ids: [id] })) {
      const g = state.groups.get(id);
      if (g) { g.is_read = true; g.is_seen = true; }
      render();
    }
  }
  async function markAllSeen() {
    if (await post("/seen", { all: true })) {
      for (const g of state.groups.values()) g.is_seen = true;
      render();
    }
  }

  function status(text, live) {
    const s = $("status");
    s.textContent = text;
    s.className = "status" + (live ? " live" : "");
  }

  let reloadTimer = null;
  function reloadSoon() {           // counts changed elsewhere (another tab): refresh read states
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(load, 150);
  }

  function onFrame(f) {
    if (f.cursor) state.cursor = f.cursor;
    switch (f.op) {
      case "subscribed":
        for (const g of f.missed) upsert(g);
        if (!f.complete || state.stale) load();  // more was missed than the log replays
        setCounts(f);
        render();
        status("live", true);
        state.retry = 0;
        break;
      case "entry": upsert(f.entry); setCounts(f); render(); break;
      case "deleted": remove(f.ids); render(); break;
      case "counts": setCounts(f); reloadSoon(); break;
      case "error": status("error: " + f.code); break;
    }
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(proto + location.host + "/v1/realtime?token=" + encodeURIComponent(token));
    state.ws = ws;
    ws.onopen = () => {
      const msg = { op: "subscribe", feed: feed };
      if (state.cursor) msg.since = state.cursor;
      ws.send(JSON.stringify(msg));
    };
    ws.onmessage = (ev) => onFrame(JSON.parse(ev.data));
    ws.onclose = (ev) => {
      state.ws = null;
      if (ev.code === 4001) { status("token expired: reload with a new token"); return; }
      const delay = Math.min(10000, 500 * Math.pow(2, state.retry++)) * (0.75 + Math.random() / 2);
      status("reconnecting in " + Math.round(delay / 1000) + " s");
      setTimeout(connect, delay);
    };
  }
  window.addEventListener("online", () => { if (!state.ws) { state.retry = 0; connect(); } });
  // For tests and curious people: the inbox's state.
  window.inbox = state;

  $("mark-all-seen").addEventListener("click", markAllSeen);
  if (!token || !user) { status("no token"); return; }
  // Subscribe first, then read: an entry arriving in between is applied twice at worst
  // (idempotent upsert), never missed.
  connect();
  load();
})();
