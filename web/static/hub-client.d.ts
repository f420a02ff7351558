// Types of /static/hub-client.js (docs/frontend.md).

export interface Activity {
  id: string;
  actor: string;
  verb: string;
  object: string;
  target?: string;
  time?: string;
  foreign_id?: string;
  [extra: string]: unknown;
}

/** A group of an aggregated or notification feed (a flat feed's entry is an Activity). */
export interface Entry {
  id: string;
  group: string;
  verb: string;
  activities: Activity[];
  activity_count: number;
  actor_count: number;
  actors: string[];
  created_at: string;
  updated_at: string;
  is_seen: boolean;
  is_read?: boolean;
}

export type Status = "connecting" | "live" | "offline" | "error";
export type Filter = "all" | "unread" | "unseen" | "archived";

export interface FeedState {
  entries: Entry[];
  unseen: number;
  unread: number;
  hasMore: boolean;
  status: Status;
  filter: Filter;
}

export interface Counts {
  unseen: number;
  unread: number;
}

export interface HubClientOptions {
  /** The hub's origin, e.g. location.origin. */
  url?: string;
  /** A user token (JWT with claims app, sub, exp). */
  token: string;
  /** Called before the token expires and after the server closes with 4001. */
  refreshToken?: () => Promise<string>;
}

export interface Feed {
  readonly group: string;
  /** "<group>:<user>" */
  readonly id: string;
  readonly state: FeedState;
  /** Calls `listener` now and on every change; returns the function that stops it. */
  subscribe(listener: (state: FeedState) => void): () => void;
  loadMore(): Promise<void>;
  /** Re-read the first page over HTTP (`keep`: as many entries as are loaded, up to 100). */
  reload(keep?: boolean): Promise<void>;
  markRead(ids: string[] | "all"): Promise<Counts>;
  markSeen(ids: string[] | "all"): Promise<Counts>;
  archive(ids: string[] | "all"): Promise<Counts>;
  unarchive(ids: string[] | "all"): Promise<Counts>;
  setFilter(filter: Filter): Promise<void>;
}

export declare class HubError extends Error {
  readonly status: number;
  readonly code?: string;
}

export declare class HubClient {
  constructor(options: HubClientOptions);
  readonly url: string;
  readonly app: string;
  readonly user: string;
  token: string;
  /** The token's user's feed of `group`. */
  feed(group: string): Feed;
  /** fetch(url + path) with the bearer token; throws HubError on a non-2xx answer. */
  fetch(path: string, init?: RequestInit): Promise<any>;
  refresh(): Promise<void>;
  close(): void;
}

export declare function claims(token: string): { app?: string; sub?: string; exp?: number };
