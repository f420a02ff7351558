// <hub-inbox token="..." feed="notification" locale="en">: a bell and a notification panel
// built on hub-client.js (docs/frontend.md). Shadow DOM, themed with CSS custom properties.
import { HubClient } from "./hub-client.js";

const PAST = { like: "liked", comment: "commented on", follow: "followed", share: "shared",
               mention: "mentioned you in", post: "posted", reply: "replied to" };
const TABS = [["all", "All"], ["unread", "Unread"], ["archived", "Archived"]];

const CSS = `
:host { --hub-font: system-ui, sans-serif; --hub-fg: #1d1d1f; --hub-muted: #505055; --hub-bg: #fff;
  --hub-accent: #0b57d0; --hub-accent-fg: #fff; --hub-unread-bg: #eef3fd; --hub-border: #d0d0d5;
  --hub-radius: 8px; --hub-width: 380px;
  font-family: var(--hub-font); color: var(--hub-fg); position: relative; display: inline-block; }
button { font: inherit; color: inherit; cursor: pointer; }
.bell { position: relative; background: none; border: 1px solid transparent; border-radius: 50%; padding: 6px; line-height: 0; }
.bell:focus-visible, button:focus-visible, li:focus-visible { outline: 2px solid var(--hub-accent); outline-offset: 2px; }
.bell svg { fill: var(--hub-fg); }
.count { position: absolute; top: -2px; right: -4px; min-width: 18px; padding: 0 4px; border-radius: 9px;
  background: var(--hub-accent); color: var(--hub-accent-fg); font-size: 12px; line-height: 18px; text-align: center; }
.count[hidden] { display: none; }
.panel { position: absolute; right: 0; top: calc(100% + 6px); width: var(--hub-width); max-height: 70vh; overflow: auto;
  background: var(--hub-bg); border: 1px solid var(--hub-border); border-radius: var(--hub-radius);
  box-shadow: 0 6px 24px rgba(0,0,0,.15); z-index: 1000; }
.panel[hidden] { display: none; }
.head { display: flex; justify-content: space-between; align-items: center; padding: 8px 12px; border-bottom: 1px solid var(--hub-border); }
h2 { font-size: 16px; margin: 0; }
.tabs { display: flex; gap: 4px; padding: 6px 12px; }
.tabs button { background: none; border: 0; border-bottom: 2px solid transparent; padding: 4px 8px; color: var(--hub-muted); }
.tabs button[aria-selected="true"] { border-color: var(--hub-accent); color: var(--hub-fg); font-weight: 600; }
ul { list-style: none; margin: 0; padding: 0; }
li { display: flex; gap: 8px; align-items: flex-start; padding: 10px 12px; border-top: 1px solid var(--hub-border); }
li.unread { background: var(--hub-unread-bg); }
li .open { flex: 1; text-align: left; background: none; border: 0; padding: 0; }
li.unread .text { font-weight: 600; }
time { display: block; font-size: 12px; color: var(--hub-muted); margin-top: 2px; }
.archive { background: none; border: 1px solid var(--hub-border); border-radius: 4px; font-size: 12px; padding: 2px 6px; color: var(--hub-muted); }
.empty { padding: 24px 12px; text-align: center; color: var(--hub-muted); margin: 0; }
.status { font-size: 12px; color: var(--hub-muted); }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.more { height: 1px; }`;

const BELL = '<svg aria-hidden="true" width="24" height="24" viewBox="0 0 24 24"><path d="M12 22a2.5 2.5 0 0 0 ' +
  '2.45-2h-4.9A2.5 2.5 0 0 0 12 22zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1z"/></svg>';

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

export class HubInbox extends HTMLElement {
  static get observedAttributes() { return ["token", "feed", "locale"]; }

  /** Sentences per verb: `(ctx) => string`, ctx = {subject, actor, others, count, object, verb, entry, locale}. */
  static templates = {};

  /** English words; set `HubInbox.words` for another language (the plural forms follow Intl.PluralRules). */
  static words = { others: { one: "other", other: "others" }, and: "and", someone: "someone",
                   title: "Notifications", empty: "You're all caught up.", archive: "Archive",
                   announce: { one: "# new notification", other: "# new notifications" },
                   bell: { one: "Notifications, # unread", other: "Notifications, # unread" } };

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
    this.refreshToken = null; // set from JavaScript: async () => newToken
    this.state = null;
    this.lastUnread = null;
  }

  connectedCallback() { this._build(); this._start(); }
  disconnectedCallback() { this._stop(); }
  attributeChangedCallback(name, old, value) {
    if (!this.bell || old === value) return; // before connectedCallback: it starts
    if (name === "locale") { if (this.state) this._render(this.state); return; }
    if (this.isConnected) { this._stop(); this._start(); }
  }

  get locale() { return this.getAttribute("locale") || "en"; }

  /** The sentence of one group (templates per verb, plural rules of `locale`). */
  sentence(entry) {
    const w = HubInbox.words;
    const actor = entry.actors && entry.actors[0] ? entry.actors[0] : w.someone;
    const others = Math.max(0, (entry.actor_count || 1) - 1);
    const plural = new Intl.PluralRules(this.locale).select(others);
    const subject = others > 0 ? `${actor} ${w.and} ${others} ${w.others[plural] || w.others.other}` : actor;
    const first = (entry.activities && entry.activities[0]) || entry;
    const ctx = { subject, actor, others, count: entry.activity_count || 1, object: first.object || "",
                  verb: entry.verb || first.verb, entry, locale: this.locale };
    const tpl = HubInbox.templates[ctx.verb];
    if (tpl) return tpl(ctx);
    const past = PAST[ctx.verb] || (ctx.verb.endsWith("e") ? ctx.verb + "d" : ctx.verb + "ed");
    return `${subject} ${past} ${ctx.object}`.trim();
  }

  /** "3 minutes ago" in `locale`. */
  when(iso) {
    const s = (Date.parse(iso) - Date.now()) / 1000;
    const rtf = new Intl.RelativeTimeFormat(this.locale, { numeric: "auto" });
    for (const [unit, size] of [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
                                ["hour", 3600], ["minute", 60]]) {
      if (Math.abs(s) >= size) return rtf.format(Math.round(s / size), unit);
    }
    return rtf.format(Math.min(0, Math.round(s)), "second");
  }

  _count(forms, n) {
    const form = forms[new Intl.PluralRules(this.locale).select(n)] || forms.other;
    return form.replace("#", new Intl.NumberFormat(this.locale).format(n));
  }

  _build() {
    if (this.bell) return;
    const w = HubInbox.words;
    this.root.appendChild(el("style", {}, CSS));
    this.bell = el("button", { type: "button", class: "bell", part: "bell", "aria-haspopup": "dialog",
                               "aria-expanded": "false", "aria-controls": "panel" });
    this.bell.innerHTML = BELL;
    this.badge = el("span", { class: "count", "aria-hidden": "true", hidden: "" }, "0");
    this.bell.appendChild(this.badge);
    this.live = el("div", { class: "sr", role: "status", "aria-live": "polite" });
    this.panel = el("div", { id: "panel", class: "panel", part: "panel", role: "dialog", "aria-label": w.title, hidden: "" });
    const head = el("div", { class: "head" });
    head.append(el("h2", {}, w.title), this.statusEl = el("span", { class: "status" }));
    this.tabs = el("div", { class: "tabs", role: "tablist", "aria-label": w.title });
    for (const [f, label] of TABS) {
      const b = el("button", { type: "button", role: "tab", id: "tab-" + f, "data-filter": f,
                               "aria-selected": String(f === "all"), "aria-controls": "list", tabindex: f === "all" ? "0" : "-1" }, label);
      b.addEventListener("click", () => this._tab(f));
      this.tabs.appendChild(b);
    }
    this.listBox = el("div", { id: "list", role: "tabpanel", "aria-labelledby": "tab-all" });
    this.list = el("ul", { "aria-label": w.title });
    this.empty = el("p", { class: "empty", hidden: "" }, w.empty);
    this.more = el("div", { class: "more", "aria-hidden": "true" });
    this.listBox.append(this.list, this.empty, this.more);
    this.panel.append(head, this.tabs, this.listBox);
    this.root.append(this.bell, this.live, this.panel);
    this.bell.addEventListener("click", () => this.toggle());
    this.panel.addEventListener("keydown", (e) => this._key(e));
    this.tabs.addEventListener("keydown", (e) => this._tabKey(e));
    this.observer = new IntersectionObserver((es) => {
      if (es.some((e) => e.isIntersecting) && this.feed && this.state && this.state.hasMore) this.feed.loadMore().catch(() => {});
    }, { root: this.panel });
    this.observer.observe(this.more);
  }

  _start() {
    const token = this.getAttribute("token");
    if (!token) return;
    const refresh = () => (this.refreshToken ? this.refreshToken() : Promise.reject(new Error("no refreshToken")));
    this.client = new HubClient({ url: this.getAttribute("url") || location.origin, token,
                                  refreshToken: refresh });
    this.feed = this.client.feed(this.getAttribute("feed") || "notification");
    this.unsubscribe = this.feed.subscribe((s) => this._render(s));
  }

  _stop() {
    if (this.unsubscribe) this.unsubscribe();
    if (this.client) this.client.close();
    this.client = this.feed = this.unsubscribe = null;
  }

  get open() { return !this.panel.hidden; }

  toggle(open = !this.open) {
    this.panel.hidden = !open;
    this.bell.setAttribute("aria-expanded", String(open));
    if (open) {
      if (this.state && this.state.unseen > 0) this.feed.markSeen("all").catch(() => {});
      const first = this.tabs.querySelector('[aria-selected="true"]');
      if (first) first.focus();
    }
  }

  _tab(filter) {
    for (const b of this.tabs.children) {
      const on = b.dataset.filter === filter;
      b.setAttribute("aria-selected", String(on));
      b.tabIndex = on ? 0 : -1;
    }
    this.listBox.setAttribute("aria-labelledby", "tab-" + filter);
    if (this.feed) this.feed.setFilter(filter).catch(() => {});
  }

  _tabKey(e) {
    const tabs = [...this.tabs.children];
    const i = tabs.indexOf(this.root.activeElement);
    if (i < 0 || !["ArrowLeft", "ArrowRight"].includes(e.key)) return;
    const next = tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    next.focus();
    next.click();
  }

  _key(e) {
    if (e.key === "Escape") { this.toggle(false); this.bell.focus(); return; }
    if (!["ArrowDown", "ArrowUp", "Home", "End"].includes(e.key)) return;
    const items = [...this.list.querySelectorAll("button.open")];
    if (!items.length) return;
    const i = items.indexOf(this.root.activeElement);
    const j = e.key === "Home" ? 0 : e.key === "End" ? items.length - 1
      : Math.max(0, Math.min(items.length - 1, i + (e.key === "ArrowDown" ? 1 : -1)));
    items[j].focus();
    e.preventDefault();
  }

  _render(s) {
    this.state = s;
    this.dataset.status = s.status;
    const w = HubInbox.words;
    if (this.lastUnread !== null && s.unread > this.lastUnread) {
      this.live.textContent = this._count(w.announce, s.unread - this.lastUnread);
    }
    this.lastUnread = s.unread;
    this.badge.textContent = String(s.unread);
    this.badge.hidden = s.unread === 0;
    this.bell.setAttribute("aria-label", this._count(w.bell, s.unread));
    this.statusEl.textContent = s.status === "live" ? "" : s.status;
    const focused = this.root.activeElement && this.root.activeElement.closest("li");
    const focusId = focused && focused.dataset.id;
    const focusCls = this.root.activeElement && this.root.activeElement.className;
    this.list.textContent = "";
    for (const e of s.entries) this.list.appendChild(this._item(e, s.filter));
    this.empty.hidden = s.entries.length > 0 || s.hasMore;
    if (focusId) {
      const li = this.list.querySelector(`li[data-id="${CSS_escape(focusId)}"]`);
      const target = li && (li.querySelector("." + focusCls) || li.querySelector("button.open"));
      if (target) target.focus();
    }
  }

  _item(e, filter) {
    const li = el("li", { "data-id": e.id, class: e.is_read === false ? "unread" : "" });
    const open = el("button", { type: "button", class: "open" });
    open.append(el("span", { class: "text" }, this.sentence(e)),
                el("time", { datetime: e.updated_at, title: new Date(e.updated_at).toLocaleString(this.locale) },
                   this.when(e.updated_at)));
    open.addEventListener("click", () => {
      if (e.is_read === false) this.feed.markRead([e.id]).catch(() => {});
      this.dispatchEvent(new CustomEvent("hub-open", { detail: e, bubbles: true, composed: true }));
    });
    li.appendChild(open);
    if (filter !== "archived") {
      const arch = el("button", { type: "button", class: "archive", "aria-label": HubInbox.words.archive + ": " + this.sentence(e) },
                      HubInbox.words.archive);
      arch.addEventListener("click", () => this.feed.archive([e.id]).catch(() => {}));
      li.appendChild(arch);
    }
    return li;
  }
}

function CSS_escape(s) { return window.CSS && window.CSS.escape ? window.CSS.escape(s) : s.replace(/"/g, '\\"'); }

if (!customElements.get("hub-inbox")) customElements.define("hub-inbox", HubInbox);
