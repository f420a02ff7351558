"""bench/against.py: the figures read from a bench report and the comparison printed."""

from __future__ import annotations

from bench.against import ceilings, parse_rates, report

REPORT = """read: 100 users x 20 follows, 200 entries per timeline, one server process, wrk -t1 -c50 -d3s
static GET /healthz (ceiling)         17,262 req/s   p50   2.82 ms   p99   5.48 ms   errors 0
timeline page of 25, hot               5,179 req/s   p50   9.28 ms   p99  32.41 ms   errors 0
timeline page of 25, cold (1 at a time)        72 req/s   p50  12.60 ms   p99  27.84 ms   errors 0
timeline / static ceiling: 0.30
target hot timeline p99 <= 25 ms and >= 3,000 req/s: NOT met
"""


def test_figure_lines_are_read_and_targets_are_not() -> None:
    assert parse_rates(REPORT) == {
        "static GET /healthz (ceiling)": 17262.0,
        "timeline page of 25, hot": 5179.0,
        "timeline page of 25, cold (1 at a time)": 72.0,
    }


def test_medians_ratio_and_ratio_to_the_ceiling() -> None:
    old = {"x (ceiling)": 100.0, "hot": 50.0}
    rounds = [(old, {"x (ceiling)": 80.0, "hot": 45.0}), (old, {"x (ceiling)": 80.0, "hot": 45.0})]
    lines = report("abcdef", rounds).splitlines()
    assert lines[1].split()[-1] == "0.80"  # the ceiling: new/old only
    assert lines[2].split()[-2:] == ["0.90", "1.12"]  # 45/50, and (45/80)/(50/100)


INTAKE = """intake: signed POST /v1/apps/{app}/activities, a unique foreign_id per activity, 2 worker process(es) running
(a) throughput, batches of 100, 4 clients, 1.2 s: 964 activities/s accepted (10 requests/s, p50 399.9 ms)
    ceiling: GET /healthz at 4 clients: 4,346 requests/s (p50 0.7 ms, p99 4.6 ms)
    target 1,000 activities/s: NOT met
    cpu: server 0.3s (26% of a core); workers 0.4s (30% of a core)
(b) latency, single activity, 20 connections of wrk (precomputed signed requests), 1.0 s: p50 27.3 ms, p99 70.4 ms (666 requests/s)
    ceiling: GET /healthz from wrk at 20 connections: p50 1.3 ms, p99 2.8 ms (15,137 requests/s)
    ratio: 0.04 of the ceiling's request rate
Cassandra from Python, 64 concurrent: foreign_id INSERT ... IF NOT EXISTS 865/s, plain INSERT 4,889/s
"""


def test_figures_after_a_colon_are_named_without_the_runs_length_and_paired_with_their_own_ceiling() -> None:
    rates = parse_rates(INTAKE)
    assert rates == {
        "(a) throughput, batches of 100, 4 clients": 964.0,
        "ceiling: GET /healthz at 4 clients": 4346.0,
        "(b) latency, single activity, 20 connections of wrk (precomputed signed requests)": 666.0,
        "ceiling: GET /healthz from wrk at 20 connections": 15137.0,
    }
    assert ceilings(list(rates)) == {
        "(a) throughput, batches of 100, 4 clients": "ceiling: GET /healthz at 4 clients",
        "(b) latency, single activity, 20 connections of wrk (precomputed signed requests)":
            "ceiling: GET /healthz from wrk at 20 connections",
    }
    assert ceilings(list(parse_rates(REPORT))) == {
        name: "static GET /healthz (ceiling)" for name in ("timeline page of 25, hot", "timeline page of 25, cold (1 at a time)")
    }
