"""Smoke test of `hub bench`: each scenario runs (quick) and prints positive figures.

Not a timed test: the figures depend on the machine; docs/benchmarks.md has them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from hub.services import ManagedService
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def run_bench(scenario: str, *args: str, **extra_env: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_BENCH_")} | extra_env
    p = subprocess.run(
        [sys.executable, "-m", "cli.main", "--config", str(ROOT / "config.toml"), "bench", scenario,
         *(args or ["--quick"])],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, f"hub bench {scenario} exited {p.returncode}:\n{p.stdout}\n{p.stderr[-3000:]}"
    return p.stdout


def number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in:\n{text}"
    return float(m.group(1).replace(",", ""))


def test_bench_fanout_quick(running_services: list[ManagedService]) -> None:
    out = run_bench("fanout")
    assert number(r"entries written: ([\d,]+)", out) == 500 * 5 * 2
    assert number(r"elapsed: ([\d.]+) s", out) > 0
    assert number(r"fan-out: ([\d,]+) entries/s", out) > 0
    assert number(r"ceiling \(Python-to-Redis pipelined ZADD.*?\): ([\d,]+) entries/s", out) > 0
    assert number(r"ratio: ([\d.]+) of the ceiling", out) > 0


def test_bench_intake_quick(running_services: list[ManagedService]) -> None:
    out = run_bench("intake")
    assert number(r"batches of 100.*?: ([\d,]+) activities/s accepted", out) > 0
    assert number(r"ceiling: GET /healthz at 4 clients: ([\d,]+) requests/s", out) > 0
    assert number(r"single activity.*?: p50 ([\d.]+) ms", out) > 0
    assert number(r"single activity.*?p99 ([\d.]+) ms", out) > 0
    assert number(r"GET /healthz from wrk at 20 connections: p50 [\d.]+ ms, p99 ([\d.]+) ms", out) > 0
    assert number(r"aiohttp client \(signing as it goes\): p50 ([\d.]+) ms", out) > 0
    assert "errors" not in out.split("(b)")[1].split("\n")[0]  # wrk saw only 202s
    assert number(r"IF NOT EXISTS ([\d,]+)/s", out) > 0


def test_bench_read_quick(running_services: list[ManagedService]) -> None:
    out = run_bench("read", HUB_BENCH_READ_SECONDS="1")
    assert number(r"static GET /healthz \(ceiling\)\s+([\d,]+) req/s", out) > 0
    assert number(r"timeline page of 25, hot\s+([\d,]+) req/s", out) > 0
    assert number(r"notification page of 25, hot\s+([\d,]+) req/s", out) > 0
    assert number(r"timeline page of 25, cold.*?p99\s+([\d.]+) ms", out) > 0
    assert "errors 0" in out


def test_bench_push_quick(running_services: list[ManagedService]) -> None:
    out = run_bench("push")
    # A frame may beat its 202 (the feed is written before the answer): 0 ms is allowed.
    assert number(r"202-to-frame p50 ([\d.]+) ms", out) >= 0
    assert number(r"from sending the POST to the frame: p50 ([\d.]+) ms", out) > 0
    assert number(r"([\d]+) entry frames", out) == number(r"([\d]+) activities posted", out) > 0
    assert number(r"deliveries: ([\d]+) of", out) > 0
    assert number(r"frames at ([\d,]+)/s", out) > 0
    assert number(r"sockets, ([\d.]+) KiB RSS each", out) > 0
    assert number(r"([\d,]+) messages/s received at most", out) > 0
    # Two gateways: every frame delivered, each gateway its own half.
    assert number(r"two gateways: ([\d]+) of", out) == number(r"two gateways: [\d]+ of ([\d]+)", out) > 0
    assert number(r"together \(([\d,]+)/s, ", out) > 0 and number(r"/s, ([\d,]+)/s each\)", out) > 0


def test_bench_memory(running_services: list[ManagedService]) -> None:
    out = run_bench("memory")
    entries = number(r"flat timeline, ([\d]+) entries", out)
    assert entries == 1000
    assert number(r"entries: ([\d,]+) bytes", out) > 0
    assert number(r"([\d.]+) B per entry \(order", out) >= number(r"same ids\): ([\d.]+) B per entry", out) > 0
    assert number(r"([\d]+) groups of", out) == 250
    assert number(r"([\d]+) B per group", out) > 0


def test_bench_inbox_quick(running_services: list[ManagedService]) -> None:
    out = run_bench("inbox")
    assert number(r"painted in <hub-inbox>: p50 ([\d.]+) ms", out) > 0
    assert number(r"over ([\d]+) posts", out) == 20
    assert number(r"answer -> painted in the same Chromium: p50 ([\d.]+) ms", out) > 0
    assert number(r"websocket ([-\d.]+) KiB, SSE", out) != 0
    assert "KiB per connection" in out


def test_bench_soak_short(running_services: list[ManagedService]) -> None:
    """24 s at low rates: a line per 8 s interval with numbers in every column, then the
    summary with the ceilings and the three targets checked (met or not: the figures are
    the machine's)."""
    out = run_bench("soak", "--minutes", "0.4", "--interval", "8", "--posts", "10", "--reads", "20",
                    "--sockets", "20")
    lines = [x for x in out.splitlines() if re.match(r"\s+\d+s  post", x)]
    assert len(lines) == 3, out
    for line in lines:
        # ">": requests still unanswered when the line was printed, counted at their age.
        assert number(r"post \d+/s p50 >?([\d.]+) p99", line) > 0
        assert number(r"post \d+/s p50 >?[\d.]+ p99 >?([\d.]+)", line) > 0
        assert number(r"read \d+/s p50 >?([\d.]+) p99", line) > 0
        assert number(r"read \d+/s p50 >?[\d.]+ p99 >?([\d.]+)", line) > 0
        for lag in ("fan-out lag", "push lag"):
            assert number(rf"{lag} p50 >?([\d.]+) p99", line) >= 0
            assert number(rf"{lag} p50 >?[\d.]+ p99 >?([\d.]+) ms", line) >= 0
            assert number(rf"{lag} .*?\((\d+) samples", line) > 0
        assert number(r"queue high (\d+) low \d+ max \d+", line) >= 0
        assert number(r"healthz p50 >?([\d.]+) p99", line) > 0
        for proc in ("server", "worker0", "worker1", "redis", "cassandra"):
            assert number(rf" {proc} [\d.]+/([\d.]+)", line) > 0  # RSS in MiB
    assert number(r"posted (\d+)", out) > 0
    assert number(r"fan-out samples: (\d+)", out) > 0
    assert number(r"in every follower feed: (\d+)", out) >= 0
    assert re.search(r"^logged: ", out, re.M), out
    assert number(r"largest group in a follower's timeline_aggregated at the end: (\d+)", out) > 0
    assert number(r"ceiling before: GET /healthz .*? p99 ([\d.]+) ms", out) > 0
    assert number(r"ceiling after: .*?pipelined ZADD ([\d,]+)/s", out) > 0
    assert number(r"post +first minute p50 ([\d.]+)", out) > 0
    assert number(r"read +first minute .*?: x([\d.]+) /", out) > 0
    for target in ("fan-out lag p99", "queue depth bounded", "last minute's post and read"):
        assert re.search(rf"target {target}.*: (met|NOT met)", out), out
