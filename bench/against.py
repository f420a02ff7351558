"""``hub bench SCENARIO --against REF``: the same scenario on an older commit, in the same run.

A refactor must not slow the hot paths down. Comparing against a figure from another day
compares two machines' moods, so this checks REF out into a temporary ``git worktree``
and runs the scenario alternately on it and on this tree (old, new, old, new...), each
run a separate ``hub bench`` process on the same services. Per line (e.g. "timeline page
of 25, hot") it prints the median rate of each side and their ratio.

Both sides use this virtualenv: the old tree's modules come first on ``PYTHONPATH``, so
a REF whose dependencies differ from today's may not run.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A figure: "<rate> <unit>/s", the first on its line ("12,345 req/s", "964 activities/s").
_RATE = re.compile(r"(?P<rate>\d[\d,]*(?:\.\d+)?) (?P<unit>[a-z]*/s)\b")
# What is not a figure: a target's threshold, a ratio, a CPU line.
_NOT_FIGURES = ("target", "ratio", "cpu")
# A run's own length in a figure's name ("..., 1.2 s"): not part of what it names.
_LENGTH = re.compile(r",\s*\d+(?:\.\d+)? s$")


def parse_rates(output: str) -> dict[str, float]:
    """Every figure line of a bench report, by name, in the report's order.

    Two layouts are read: bench/read.py's "<name>   12,345 req/s ...", and "<name>: ...
    964 activities/s ..." (intake's), where the name is what comes before the last ": "
    ahead of the figure, without the run's length."""
    rates: dict[str, float] = {}
    for raw in output.splitlines():
        line = raw.strip()
        m = _RATE.search(line)
        if m is None or line.startswith(_NOT_FIGURES):
            continue
        head = line[:m.start()]
        name = head.rsplit(": ", 1)[0] if ": " in head else head
        rates[_LENGTH.sub("", name.strip())] = float(m["rate"].replace(",", ""))
    return rates


def ceilings(names: Sequence[str]) -> dict[str, str]:
    """The ceiling each figure is set against: the first ceiling line after it (intake
    prints each figure's own below it), else the last one before it (read prints one
    first for all)."""
    tops = [i for i, n in enumerate(names) if "ceiling" in n]
    paired: dict[str, str] = {}
    for i, name in enumerate(names):
        if i in tops or not tops:
            continue
        after = [t for t in tops if t > i]
        paired[name] = names[after[0]] if after else names[[t for t in tops if t < i][-1]]
    return paired


def _bench(tree: Path, scenario: str, quick: bool) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())", "bench", scenario]
    if quick:
        cmd.append("--quick")
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"hub bench {scenario} in {tree} failed ({done.returncode}): {done.stderr[-2000:]}")
    return parse_rates(done.stdout)


def report(ref: str, rounds: Sequence[tuple[dict[str, float], dict[str, float]]]) -> str:
    """The medians of each side and new/old per figure line both sides printed."""
    old: dict[str, list[float]] = defaultdict(list)
    new: dict[str, list[float]] = defaultdict(list)
    for o, n in rounds:
        for name, rate in o.items():
            old[name].append(rate)
        for name, rate in n.items():
            new[name].append(rate)
    # Each run's rate over its own ceiling (the scenario's "ceiling" lines) cancels part
    # of what other processes on the machine took from that run.
    paired = ceilings([name for name in new if name in old])

    def relative(runs: Sequence[dict[str, float]], name: str) -> float:
        top = paired[name]
        return statistics.median(r[name] / r[top] for r in runs if r.get(top) and name in r)

    w = max([40, *(len(name) for name in old if name in new)])
    lines = [f"{'median of ' + str(len(rounds)) + ' runs each':<{w}} {ref[:12]:>12} {'this tree':>12}  new/old"
             + ("  new/old of rate/ceiling" if paired else "")]
    for name in old:
        if name in new:
            a, b = statistics.median(old[name]), statistics.median(new[name])
            line = f"{name:<{w}} {a:>12,.0f} {b:>12,.0f}  {b / a if a else 0:7.2f}"
            if name in paired:
                ra, rb = relative([o for o, _ in rounds], name), relative([n for _, n in rounds], name)
                line += f"  {rb / ra if ra else 0:7.2f}"
            lines.append(line)
    return "\n".join(lines)


def run_against(ref: str, scenario: str, *, rounds: int = 3, quick: bool = False) -> int:
    with tempfile.TemporaryDirectory(prefix="hub-against-") as tmp:
        tree = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(tree), ref], check=True)
        try:
            results = []
            for i in range(rounds):
                print(f"round {i + 1}/{rounds}: {ref} ...", flush=True)
                o = _bench(tree, scenario, quick)
                print(f"round {i + 1}/{rounds}: this tree ...", flush=True)
                results.append((o, _bench(ROOT, scenario, quick)))
            if not any(o.keys() & n.keys() for o, n in results):
                raise RuntimeError("no figure line printed by both trees (bench/against.py parse_rates)")
            print(report(ref, results), flush=True)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print(f"hub bench {scenario} --against {ref}: {e}", file=sys.stderr)
            return 1
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    return 0
