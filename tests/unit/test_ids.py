from __future__ import annotations

import os
import random
import re

import pytest

from hub.domain import ids
from hub.domain.ids import (
    ID_LENGTH,
    MAX_TIME_MS,
    IdGenerator,
    id_time_ms,
    is_valid_id,
    max_id_for_ms,
    min_id_for_ms,
)
from hub.errors import InvalidRequest

CANONICAL = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


def gen_with(clock_values: list[int], rand_values: list[int]) -> IdGenerator:
    clock, rand = iter(clock_values), iter(rand_values)
    return IdGenerator(clock=lambda: next(clock), randbits=lambda k: next(rand))


def test_format_is_fixed_width_ascii_without_separators() -> None:
    g = IdGenerator()
    for _ in range(200):
        i = g.new()
        assert len(i) == ID_LENGTH == 26
        assert CANONICAL.fullmatch(i), i
        assert ":" not in i and "|" not in i
        assert i.isascii()


def test_known_encoding() -> None:
    g = gen_with([1_700_000_000_123], [0])
    i = g.new()
    # 1700000000123 = 0b00000 00001 10001 01111 00111 11110 01010 11010 00011 11011
    assert i == "01HF7YAT3V" + "0" * 16
    assert id_time_ms(i) == 1_700_000_000_123


def test_monotonic_within_one_millisecond() -> None:
    g = IdGenerator(clock=lambda: 5_000, randbits=random.Random(1).getrandbits)
    made = [g.new() for _ in range(10_000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert {id_time_ms(i) for i in made} == {5_000}


def test_increment_is_by_one_in_the_random_part() -> None:
    g = gen_with([7, 7, 7], [41])
    a, b, c = g.new(), g.new(), g.new()
    assert a[:10] == b[:10] == c[:10]
    assert [ids._decode(x[10:]) for x in (a, b, c)] == [41, 42, 43]


def test_later_millisecond_sorts_after_even_with_smaller_random() -> None:
    top = (1 << 80) - 1
    g = gen_with([1000, 1001], [top, 0])
    a, b = g.new(), g.new()
    assert a < b
    assert (id_time_ms(a), id_time_ms(b)) == (1000, 1001)


def test_string_order_is_time_order() -> None:
    r = random.Random(7)
    pairs = []
    for _ in range(2_000):
        ms = r.randrange(0, MAX_TIME_MS + 1)
        pairs.append((ms, IdGenerator(randbits=r.getrandbits).new(now_ms=ms)))
    for (ms1, id1), (ms2, id2) in zip(pairs, pairs[1:]):
        if ms1 < ms2:
            assert id1 < id2
        elif ms1 > ms2:
            assert id1 > id2


def test_clock_stepping_back_never_makes_a_smaller_id() -> None:
    g = gen_with([10_000, 9_000, 9_500, 10_001], [100, 5, 6, 7])
    made = [g.new() for _ in range(4)]
    assert made == sorted(made) and len(set(made)) == 4
    assert [id_time_ms(i) for i in made] == [10_000, 10_000, 10_000, 10_001]


def test_explicit_now_ms_is_used() -> None:
    g = IdGenerator(clock=lambda: pytest.fail("clock must not be read"))
    assert id_time_ms(g.new(now_ms=123_456)) == 123_456


def test_random_part_overflow_moves_to_next_millisecond() -> None:
    top = (1 << 80) - 1
    g = gen_with([50, 50], [top, 3])
    a, b = g.new(), g.new()
    assert a < b
    assert id_time_ms(a) == 50 and id_time_ms(b) == 51
    assert b == min_id_for_ms(51)[:10] + ids._encode(3, 16)


def test_time_out_of_range_is_refused() -> None:
    g = IdGenerator()
    with pytest.raises(ValueError):
        g.new(now_ms=-1)
    with pytest.raises(ValueError):
        g.new(now_ms=MAX_TIME_MS + 1)
    assert id_time_ms(g.new(now_ms=MAX_TIME_MS)) == MAX_TIME_MS


def test_separate_generators_in_one_millisecond_are_unique() -> None:
    # Two processes share nothing but the clock: uniqueness rests on the 80 random bits.
    made = set()
    for _ in range(50):
        g = IdGenerator(clock=lambda: 42)
        made.update(g.new() for _ in range(20))
    assert len(made) == 1000


def test_forked_child_does_not_continue_the_parents_sequence(monkeypatch: pytest.MonkeyPatch) -> None:
    g = gen_with([9, 9, 9], [100, 777])
    parent = g.new()
    monkeypatch.setattr(os, "getpid", lambda: -12345)
    child = g.new()
    # Incrementing would give 101, exactly what the parent makes next: a collision.
    assert ids._decode(child[10:]) == 777
    assert child != parent


def test_bounds_enclose_every_id_of_their_millisecond() -> None:
    for ms in (0, 1, 1_700_000_000_000, MAX_TIME_MS):
        lo, hi = min_id_for_ms(ms), max_id_for_ms(ms)
        assert len(lo) == len(hi) == ID_LENGTH
        assert is_valid_id(lo) and is_valid_id(hi)
        assert id_time_ms(lo) == id_time_ms(hi) == ms
        for _ in range(50):
            assert lo <= IdGenerator(randbits=random.Random(ms).getrandbits).new(now_ms=ms) <= hi
    assert max_id_for_ms(999) < min_id_for_ms(1000)
    assert IdGenerator().new(now_ms=1000) > max_id_for_ms(999)
    assert IdGenerator().new(now_ms=999) < min_id_for_ms(1000)


def test_bounds_clamp_out_of_range_times() -> None:
    assert min_id_for_ms(-5) == "0" * 26
    assert max_id_for_ms(MAX_TIME_MS + 10) == max_id_for_ms(MAX_TIME_MS)
    assert max_id_for_ms(MAX_TIME_MS) == "7" + "Z" * 25


@pytest.mark.parametrize(
    "bad",
    ["", "0" * 25, "0" * 27, "8" + "0" * 25, "0" * 25 + "I", "0" * 25 + "u", "01hf7yat0v" + "0" * 16, 42, None],
)
def test_invalid_ids(bad: object) -> None:
    assert not is_valid_id(bad)
    with pytest.raises(InvalidRequest) as e:
        id_time_ms(bad)  # type: ignore[arg-type]
    assert e.value.field == "id"
