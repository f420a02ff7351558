"""bench/against.py: the figures read from a bench report and the comparison printed."""

from __future__ import annotations

from bench.against import parse_rates, report

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
