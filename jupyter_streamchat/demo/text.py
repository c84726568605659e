"""The demo model's words: a seeded Markov chain over a small public-domain corpus.

``corpus.txt`` holds excerpts from *Alice's Adventures in Wonderland* (Lewis
Carroll, 1865) and *Pride and Prejudice* (Jane Austen, 1813), both in the
public domain, with quotation marks left out so any excerpt reads cleanly.

A reply is a sequence of *pieces* shaped like BPE tokens: a word with its
leading space (``" Alice"``), punctuation on its own (``","``), contractions
split off (``" didn"``, ``"'t"``) and long words split in two
(``" disappoint"``, ``"ment"``).  Concatenated, the pieces read as prose.

Everything here is pure and deterministic: the same :func:`request_seed`
gives the same pieces, on every door and every run.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Final

__all__ = [
    "Chain",
    "corpus_chain",
    "count_tokens",
    "generate",
    "pieces_of",
    "request_seed",
]

_WORD: Final = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*|[0-9]+|[.,;:!?]")
_PUNCT: Final = frozenset(".,;:!?")
_SENTENCE_END: Final = frozenset(".!?")
# Split off like a BPE vocabulary would, when what is left is a word of its own.
_SUFFIXES: Final = ("ment", "ness", "tion", "ing", "ful", "ous", "ly", "ed")
_LONG_WORD: Final = 7
_VERY_LONG_WORD: Final = 10
_MIN_STEM: Final = 4


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def pieces_of(word: str, *, first: bool) -> list[str]:
    """The BPE-like pieces of one corpus word (or punctuation mark)."""
    if word in _PUNCT:
        return [word]
    space = "" if first else " "
    stem, apostrophe, rest = word.partition("'")
    tail = [f"'{rest}"] if apostrophe else []
    if len(stem) > _LONG_WORD:
        for suffix in _SUFFIXES:
            if stem.endswith(suffix) and len(stem) - len(suffix) >= _MIN_STEM:
                return [space + stem[: -len(suffix)], suffix, *tail]
        if len(stem) > _VERY_LONG_WORD:
            half = len(stem) // 2
            return [space + stem[:half], stem[half:], *tail]
    return [space + stem, *tail]


def count_tokens(text: str) -> int:
    """How many pieces ``text`` makes (the demo's prompt token count)."""
    return sum(len(pieces_of(w, first=i == 0)) for i, w in enumerate(_words(text)))


@dataclass(frozen=True, slots=True)
class Chain:
    """An order-2 word-level Markov chain: ``(w1, w2) -> possible next words``."""

    successors: dict[tuple[str, str], tuple[str, ...]]
    starts: tuple[tuple[str, str], ...]
    """States that begin a sentence (the word pair after a full stop)."""

    @classmethod
    def from_text(cls, text: str) -> Chain:
        words = _words(text)
        table: dict[tuple[str, str], list[str]] = {}
        starts: list[tuple[str, str]] = []
        for i in range(len(words) - 2):
            state = (words[i], words[i + 1])
            table.setdefault(state, []).append(words[i + 2])
            if (i == 0 or words[i - 1] in _SENTENCE_END) and state[0][0].isupper():
                starts.append(state)
        if not starts:
            raise ValueError("corpus has no sentence start to begin a reply with")
        return cls({k: tuple(v) for k, v in table.items()}, tuple(starts))

    def words(self, rng: random.Random) -> Iterator[str]:
        """An endless walk; at a dead end it starts a new sentence."""
        while True:  # endless by design; every consumer stops after max_tokens pieces
            w1, w2 = rng.choice(self.starts)
            yield w1
            yield w2
            nexts = self.successors.get((w1, w2))
            while nexts:
                w3 = rng.choice(nexts)
                yield w3
                w1, w2 = w2, w3
                nexts = self.successors.get((w1, w2))
            if w2 not in _SENTENCE_END:
                yield "."


@cache
def corpus_chain() -> Chain:
    """The chain over the bundled corpus, built once."""
    text = files(__package__).joinpath("corpus.txt").read_text(encoding="utf-8")
    return Chain.from_text(text)


def request_seed(messages: Sequence[tuple[str, str]], seed: int | None = None) -> int:
    """A 64-bit seed from the conversation (not the model string) and a seed option."""
    blob = json.dumps([[role, content] for role, content in messages], ensure_ascii=False)
    digest = hashlib.sha256(f"{blob}\x00{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def generate(
    seed: int, n: int, *, complete: bool = False, chain: Chain | None = None
) -> Iterator[str]:
    """Exactly ``n`` pieces of text, lazily.

    With ``complete`` the last piece ends a sentence (a reply that stopped on
    its own); without it the text is cut wherever ``n`` falls (``length``).
    """
    rng = random.Random(seed)
    walk = (chain or corpus_chain()).words(rng)
    pending: list[str] = []
    first = True
    for i in range(n):
        if not pending:
            pending = pieces_of(next(walk), first=first)
            pending.reverse()
            first = False
        piece = pending.pop()
        if complete and i == n - 1 and piece not in _SENTENCE_END:
            piece = "."
        yield piece
