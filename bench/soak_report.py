"""What ``hub bench soak`` prints (bench/soak.py): a line per interval and the summary,
with the targets of issue 18 checked against the figures of the same run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.common import percentile

USERS, AUTHORS, FOLLOWS = 500, 50, 5
VERBS = ("post", "like", "share")
LAG_TARGET_MS, DRIFT_TARGET = 5000.0, 1.5

@dataclass(frozen=True)
class SoakOptions:
    minutes: float = 10.0
    interval: float = 30.0
    posts: float = 100.0
    reads: float = 200.0
    sockets: int = 200


def _p(xs: list[float], open_: int = 0) -> str:
    """p50/p99; with ``open_`` requests still unanswered (counted at their age), the figures
    are lower bounds: shown with ``>``."""
    m = ">" if open_ else ""
    return f"p50 {m}{percentile(xs, 50):.1f} p99 {m}{percentile(xs, 99):.1f}" + (f" ({open_} open)" if open_ else "")


def _lag(xs: list[float], pending: int) -> str:
    m = ">" if pending else ""
    return (f"p50 {m}{percentile(xs, 50):.0f} p99 {m}{percentile(xs, 99):.0f} ms "
            f"({len(xs)} samples, {pending} pending)")


@dataclass
class Interval:
    end: float
    posts: list[float]
    reads: list[float]
    health: list[float]
    lags: tuple[list[float], int]  # fan-out lags (ms) and how many of them are lower bounds
    push: tuple[list[float], int]  # push lags likewise
    queue: tuple[int, int]
    queue_max: int
    procs: dict[str, tuple[float, float]]
    machine: float
    seconds: float
    open: dict[str, int]  # kind -> requests of the window unanswered when the line was printed

    @property
    def lag_p99(self) -> float:
        return percentile(self.lags[0], 99)

    def line(self) -> str:
        procs = " ".join(f"{n} {c:.0f}/{r:.0f}" for n, (c, r) in self.procs.items())
        return (f"{self.end:5.0f}s  post {len(self.posts) / self.seconds:.0f}/s {_p(self.posts, self.open['post'])} ms  "
                f"read {len(self.reads) / self.seconds:.0f}/s {_p(self.reads, self.open['read'])} ms  "
                f"fan-out lag {_lag(*self.lags)}  push lag {_lag(*self.push)}  "
                f"queue high {self.queue[0]} low {self.queue[1]} max {self.queue_max}  "
                f"healthz {_p(self.health, self.open['health'])} ms  cpu%/rss MiB: {procs}  machine {self.machine:.0f}% busy")


@dataclass
class Ceiling:
    health: list[float]
    pubsub: Any
    zadd: float

    def line(self, when: str) -> str:
        return (f"ceiling {when}: GET /healthz of the same server at the post rate {_p(self.health)} ms; "
                f"Redis PUBLISH to a subscriber p50 {self.pubsub.p50_ms:.2f} p99 {self.pubsub.p99_ms:.2f} ms; "
                f"pipelined ZADD {self.zadd:,.0f}/s")


@dataclass
class SoakResult:
    opts: SoakOptions
    seconds: float
    intervals: list[Interval]
    raw: dict[str, list[tuple[float, float]]]  # kind -> [(seconds since start, ms)]
    counts: dict[str, Any]
    ceilings: list[Ceiling] = field(default_factory=list)
    biggest_group: int = 0

    def window(self, kind: str, first: bool) -> list[float]:
        m = min(60.0, self.seconds / 2)
        lo, hi = (0.0, m) if first else (self.seconds - m, self.seconds)
        return [ms for t, ms in self.raw[kind] if lo <= t < hi]

    def report(self) -> str:
        o, c = self.opts, self.counts
        bound = int(10 * o.posts)
        lags = [(i.end, i.lag_p99) for i in self.intervals]
        worst = max(lags, key=lambda x: x[1] if x[1] == x[1] else float("inf"), default=(0, float("nan")))
        lag_ok = bool(lags) and all(p < LAG_TARGET_MS for _, p in lags)  # nan (no sample) fails too
        deepest = self.intervals[-1].queue_max if self.intervals else 0
        drift, rows = True, []
        for kind in ("post", "read", "health"):
            first, last = self.window(kind, True), self.window(kind, False)
            ratios = [percentile(last, q) / percentile(first, q) for q in (50, 99)]
            if kind != "health":
                drift = drift and all(r <= DRIFT_TARGET for r in ratios)
            rows.append(f"    {kind:<6} first minute {_p(first)} ms, last minute {_p(last)} ms: "
                        f"x{ratios[0]:.2f} / x{ratios[1]:.2f}" + ("  (the machine's floor)" if kind == "health" else ""))
        return "\n".join([
            f"soak: {self.seconds / 60:.1f} min at {o.posts:.0f} posts/s, {o.reads:.0f} reads/s, "
            f"{c['sockets']} sockets; {USERS} users x {FOLLOWS} of {AUTHORS} authors, verbs {'/'.join(VERBS)}, "
            "timeline_aggregated groups {verb}:{day}",
            f"posted {c['posted']} (other answers {c['post_errors'] or 'none'}, skipped {c['post_skipped']}); "
            f"read {c['read']} (other answers {c['read_errors'] or 'none'}, skipped {c['read_skipped']}); "
            f"{c['frames']} frames, {c['closed']} sockets closed by the server",
            f"fan-out samples: {c['samples']}, in every follower feed: {c['resolved']} "
            f"({c['samples'] - c['resolved']} still missing 60 s after the load, from "
            f"{', '.join(f'{n} {g} feeds' for g, n in c['missing'].items())}); "
            f"framed on every follower socket: {c['pushed']}",
            f"logged: {c['logged'] or 'no failed job, nothing left to the sweep'}",
            f"largest group in a follower's timeline_aggregated at the end: {self.biggest_group} activities",
            *(cl.line(w) for cl, w in zip(self.ceilings, ("before", "after"))),
            "latencies, first minute vs last minute (p50 / p99 ratios):", *rows,
            f"target fan-out lag p99 < {LAG_TARGET_MS / 1000:.0f} s in every interval: "
            f"{'met' if lag_ok else 'NOT met'} (worst {worst[1]:.0f} ms, interval ending at {worst[0]:.0f} s)",
            f"target queue depth bounded (deepest in the last interval <= {bound} jobs, 5 s of a plan and a "
            f"chunk job per post): {'met' if deepest <= bound else 'NOT met'} ({deepest})",
            f"target last minute's post and read p50/p99 within {DRIFT_TARGET}x of the first's: "
            f"{'met' if drift else 'NOT met'}",
        ])
