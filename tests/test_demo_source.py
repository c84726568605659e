"""The demo model's token source without any socket: text, profiles, faults, pacing core."""

from __future__ import annotations

import asyncio
import itertools
import re
import statistics
from collections.abc import AsyncIterator

import pytest

from jupyter_streamchat.demo import PROFILES, DemoConfig, DemoModel, DemoRequest, Rejection
from jupyter_streamchat.demo.faults import (
    MAX_FAULT_COUNT,
    AttemptLedger,
    ModelSpec,
    ModelSpecError,
    parse_model,
)
from jupyter_streamchat.demo.model import Generation
from jupyter_streamchat.demo.text import corpus_chain, count_tokens, generate, request_seed
from jupyter_streamchat.errors import ConfigError

HELLO = (("user", "hello"),)


def text(seed: int, n: int = 64, *, complete: bool = False) -> str:
    return "".join(generate(seed, n, complete=complete))


# -- text ------------------------------------------------------------------------------------


def test_same_seed_same_pieces() -> None:
    seed = request_seed(HELLO)
    assert list(generate(seed, 300)) == list(generate(seed, 300))


def test_seed_depends_on_messages_and_seed_option_only() -> None:
    assert request_seed(HELLO) == request_seed((("user", "hello"),))
    assert request_seed(HELLO) != request_seed((("user", "hello!"),))
    assert request_seed(HELLO) != request_seed((("system", "hello"),))
    assert request_seed(HELLO, 1) != request_seed(HELLO, 2)
    assert text(request_seed(HELLO, 1)) != text(request_seed(HELLO, 2))


@pytest.mark.parametrize("n", [1, 2, 17, 64, 4096])
def test_exactly_n_pieces(n: int) -> None:
    assert sum(1 for _ in generate(12345, n)) == n


def test_pieces_look_like_bpe_tokens() -> None:
    pieces = list(generate(request_seed(HELLO), 2000))
    assert pieces[0][0].isupper()
    assert not pieces[0].startswith(" ")
    for piece in pieces:
        assert re.fullmatch(r" ?[A-Za-z0-9]+|'[A-Za-z]+|[A-Za-z]+|[.,;:!?]", piece), piece
    assert any(p.startswith(" ") for p in pieces)
    assert "," in pieces
    assert "." in pieces
    assert len({p for p in pieces if p.isalpha()}) > 5, "some long words are split into pieces"


def test_concatenation_reads_as_prose() -> None:
    reply = text(request_seed(HELLO), 200)
    assert "  " not in reply
    assert " ," not in reply
    assert " ." not in reply
    words = re.findall(r"[A-Za-z']+", reply)
    assert len(words) > 120
    # Words come from the bundled public-domain corpus.
    assert {"Alice", "Rabbit", "Bennet", "she", "the"} & set(words)


def test_complete_reply_ends_a_sentence() -> None:
    for seed in range(20):
        assert list(generate(seed, 33, complete=True))[-1] in {".", "!", "?"}


def test_corpus_chain_is_loaded_once_and_has_sentence_starts() -> None:
    chain = corpus_chain()
    assert chain is corpus_chain()
    assert len(chain.starts) > 20
    assert len(chain.successors) > 500


def test_count_tokens() -> None:
    assert count_tokens("") == 0
    assert count_tokens("Hello, world.") == 4
    assert count_tokens("Alice's") == 2


# -- model names -----------------------------------------------------------------------------

VALID = [
    ("steady", ModelSpec("steady")),
    ("", ModelSpec("fast")),
    ("slow:drop@5", ModelSpec("slow", "drop", 5)),
    ("instant:malformed@3", ModelSpec("instant", "malformed", 3)),
    ("steady:http429", ModelSpec("steady", "http429")),
    ("jittery:http500@2", ModelSpec("jittery", "http500", 2)),
    (":stall@0", ModelSpec("fast", "stall", 0)),
    ("fast:stall", ModelSpec("fast", "stall")),
]


@pytest.mark.parametrize(("model", "expected"), VALID)
def test_parse_model(model: str, expected: ModelSpec) -> None:
    assert parse_model(model, PROFILES, "fast") == expected


def test_model_spec_round_trips_and_means() -> None:
    spec = parse_model("slow:drop@5", PROFILES, "steady")
    assert str(spec) == "slow:drop@5"
    assert spec.fail_after == 5
    assert parse_model("steady:http429", PROFILES, "steady").failing_attempts is None
    assert parse_model("steady:stall", PROFILES, "steady").fail_after == 0


INVALID = [
    ("gpt-4", "unknown profile 'gpt-4'"),
    ("steady:explode", "unknown fault 'explode'"),
    ("steady:", "unknown fault ''"),
    ("steady:drop@x", "fault count 'x'"),
    ("steady:drop@", "fault count ''"),
    ("steady:drop@-1", "fault count '-1'"),
    ("steady@3", "is not PROFILE[:FAULT[@N]]"),
    ("steady:drop:3", "is not PROFILE[:FAULT[@N]]"),
    (f"steady:drop@{MAX_FAULT_COUNT + 1}", f"over the limit of {MAX_FAULT_COUNT}"),
]


@pytest.mark.parametrize(("model", "message"), INVALID)
def test_parse_model_errors_name_the_problem(model: str, message: str) -> None:
    with pytest.raises(ModelSpecError) as info:
        parse_model(model, PROFILES, "steady")
    assert message in str(info.value)
    if "limit" not in message:
        for name in [*PROFILES, "http500", "http429", "stall", "drop", "malformed"]:
            assert name in str(info.value)


def test_attempt_ledger_counts_per_request_and_forgets_the_oldest() -> None:
    ledger = AttemptLedger(max_keys=2)
    spec = ModelSpec("steady", "http500", 2)
    fails = [ledger.should_fail("openai", spec, "steady:http500@2", HELLO) for _ in range(4)]
    assert fails == [True, True, False, False]
    # Another door, other messages: counted apart.
    assert ledger.should_fail("grpc", spec, "steady:http500@2", HELLO)
    assert ledger.should_fail("openai", spec, "steady:http500@2", (("user", "bye"),))
    # max_keys=2: the first key was forgotten, so it fails again from the start.
    assert ledger.should_fail("openai", spec, "steady:http500@2", HELLO)
    always = ModelSpec("steady", "http429")
    assert all(ledger.should_fail("openai", always, "steady:http429", HELLO) for _ in range(5))
    assert not ledger.should_fail("openai", ModelSpec("steady", "drop", 1), "x", HELLO)


# -- profiles --------------------------------------------------------------------------------


def test_profiles_are_data() -> None:
    assert set(PROFILES) == {"instant", "steady", "slow", "jittery", "fast"}
    assert PROFILES["steady"].tokens_per_s == pytest.approx(50)
    assert PROFILES["slow"].tokens_per_s == pytest.approx(8)
    assert PROFILES["fast"].tokens_per_s == pytest.approx(200)
    assert PROFILES["instant"].tokens_per_s is None
    with pytest.raises(TypeError):
        PROFILES["new"] = PROFILES["slow"]  # type: ignore[index]


@pytest.mark.parametrize("name", ["instant", "steady", "slow", "fast"])
def test_regular_offsets_are_absolute(name: str) -> None:
    profile = PROFILES[name]
    offsets = list(itertools.islice(profile.offsets(seed=1), 1000))
    assert offsets == [profile.ttft_ms + i * profile.gap_ms for i in range(1000)]


def test_jittery_is_seeded_irregular_and_about_30_per_second() -> None:
    profile = PROFILES["jittery"]
    a = list(itertools.islice(profile.offsets(seed=7), 3000))
    assert a == list(itertools.islice(profile.offsets(seed=7), 3000))
    assert a != list(itertools.islice(profile.offsets(seed=8), 3000))
    gaps = [y - x for x, y in itertools.pairwise(a)]
    assert 1000 / 40 < statistics.mean(gaps) < 1000 / 22
    assert sum(g >= 150 for g in gaps) > 30, "pauses of a few hundred ms"
    assert sum(g <= 2 for g in gaps) > 200, "bursts"
    assert all(g >= 0 for g in gaps)


# -- admission -------------------------------------------------------------------------------


async def test_admit_lengths_and_finish_reasons() -> None:
    model = DemoModel(DemoConfig(default_max_tokens=10, max_tokens_cap=50))
    default = model.admit("openai", DemoRequest("instant", HELLO))
    assert (default.n_tokens, default.finish_reason) == (10, "stop")
    assert default.text().endswith(".")
    given = model.admit("openai", DemoRequest("instant", HELLO, max_tokens=50))
    assert (given.n_tokens, given.finish_reason) == (50, "length")
    with pytest.raises(Rejection) as info:
        model.admit("openai", DemoRequest("instant", HELLO, max_tokens=51))
    assert info.value.status == 400
    assert "cap of 50" in info.value.message
    assert "got 51" in info.value.message
    with pytest.raises(Rejection, match="got 0"):
        model.admit("openai", DemoRequest("instant", HELLO, max_tokens=0))
    assert model.stats["openai"].requests == 4


def test_same_text_whatever_the_profile_or_fault() -> None:
    model = DemoModel()
    texts = {
        model.admit("openai", DemoRequest(name, HELLO, max_tokens=40)).text()
        for name in ["instant", "slow", "jittery:drop@3", ":stall@1"]
    }
    assert len(texts) == 1


def test_config_errors_name_the_value() -> None:
    with pytest.raises(ConfigError, match=r"'warp'.*valid profiles: fast, instant"):
        DemoConfig(default_profile="warp")
    with pytest.raises(ConfigError, match=r"max_tokens_cap \(10\), got 11"):
        DemoConfig(default_max_tokens=11, max_tokens_cap=10)
    with pytest.raises(ConfigError, match="got -1"):
        DemoConfig(stall_timeout_s=-1)


# -- pacing core -----------------------------------------------------------------------------


async def test_instant_yields_to_the_event_loop_between_tokens() -> None:
    model = DemoModel()
    reply = model.admit("openai", DemoRequest("instant", HELLO, max_tokens=500))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(10_000):
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    with model.open("openai", reply) as generation:
        tokens = [t async for t in _tokens(generation)]
    task.cancel()
    assert len(tokens) == 500
    assert ticks >= 400


async def _tokens(generation: Generation) -> AsyncIterator[tuple[int, str]]:
    for _ in range(10_000):
        token = await generation.next_token()
        if token is None:
            return
        yield token


async def test_cancel_wakes_a_sleeping_generation_at_once() -> None:
    model = DemoModel()
    reply = model.admit("openai", DemoRequest("slow", HELLO, max_tokens=50))
    loop = asyncio.get_running_loop()
    with model.open("openai", reply) as generation:
        assert model.stats["openai"].open_streams == 1
        loop.call_later(0.05, generation.cancel)
        t0 = loop.time()
        assert await generation.next_token() is None  # would have slept 600 ms
        assert loop.time() - t0 < 0.3
    stats = model.stats["openai"]
    assert (stats.open_streams, stats.cancelled, stats.tokens) == (0, 1, 0)


async def test_shutdown_stops_open_generations() -> None:
    model = DemoModel()
    reply = model.admit("grpc", DemoRequest("slow", HELLO))

    async def run() -> None:
        with model.open("grpc", reply) as generation:
            while await generation.next_token() is not None:
                pass

    task = asyncio.create_task(run())
    await asyncio.sleep(0.01)
    assert model.live == 1
    await asyncio.wait_for(model.shutdown(), 1.0)
    await task
    assert model.live == 0
    assert model.stats["grpc"].failed == 1
