"""The pseudoword generator: exact lengths, never a real word, pronounceable, seeded."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

wordfreq = pytest.importorskip("wordfreq", reason="the generator needs wordfreq")

from topobrain.pseudowords import (  # noqa: E402
    MIN_LENGTH,
    PseudowordGenerator,
    generate,
    is_real_word,
    segment,
    split_parts,
)

VOWEL_RUN = re.compile(r"[aeiouy]+")


@pytest.fixture(scope="module")
def lexicon():
    """The real-word list, loaded here independently of the module under test."""
    return set(wordfreq.top_n_list("en", 100_000))


@pytest.fixture(scope="module")
def english_orthotactics():
    """Consonant clusters by position and letter trigrams of 30,000 frequent English words,
    computed here with a plain regex split (a second, simpler reading of English spelling)."""
    words = [w for w in wordfreq.top_n_list("en", 30_000) if re.fullmatch(r"[a-z]{3,}", w)]
    initial, final, medial, trigrams = Counter(), Counter(), Counter(), Counter()
    for w in words:
        parts = re.split(r"[aeiouy]+", w)
        initial[parts[0]] += 1
        final[parts[-1]] += 1
        for p in parts[1:-1]:
            medial[p] += 1
        padded = f"^{w}$"
        for i in range(len(padded) - 2):
            trigrams[padded[i:i + 3]] += 1
    return initial, final, medial, trigrams


@pytest.fixture(scope="module")
def sample():
    lengths = [L for L in range(3, 13) for _ in range(30)]
    return generate(lengths=lengths, seed=11), lengths


def test_lengths_are_exact(sample):
    words, lengths = sample
    assert [len(w) for w in words] == lengths


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(MIN_LENGTH, 14), min_size=1, max_size=12), st.integers(0, 2**31))
def test_lengths_exact_property(lengths, seed):
    words = generate(lengths=lengths, seed=seed)
    assert [len(w) for w in words] == lengths
    assert len(set(words)) == len(words)
    assert all(re.fullmatch(r"[a-z]+", w) for w in words)


def test_never_a_real_word(sample, lexicon):
    words, _ = sample
    real = [w for w in words if w in lexicon]
    assert real == []
    assert not any(is_real_word(w) for w in words)
    # and the list really is a large list of words, so the check means something
    assert len(lexicon) >= 90_000 and {"banana", "justice", "chew"} <= lexicon


def test_pronounceable(sample, english_orthotactics):
    initial, final, medial, trigrams = english_orthotactics
    words, _ = sample
    for w in words:
        assert VOWEL_RUN.search(w), w
        assert re.search(r"(.)\1\1", w) is None, w
        parts = re.split(r"[aeiouy]+", w)
        # every consonant cluster occurs in the same position in real English words
        assert initial[parts[0]] >= 1, (w, parts[0])
        assert final[parts[-1]] >= 1, (w, parts[-1])
        for p in parts[1:-1]:
            assert medial[p] >= 1, (w, p)
        padded = f"^{w}$"
        for i in range(len(padded) - 2):
            assert trigrams[padded[i:i + 3]] >= 3, (w, padded[i:i + 3])


def test_seeded_and_no_global_state():
    a = generate(20, lengths=6, seed=5)
    np.random.seed(0)
    b = generate(20, lengths=6, seed=5)
    assert a == b
    assert generate(20, lengths=6, seed=6) != a
    gen1, gen2 = PseudowordGenerator(np.random.default_rng(9)), PseudowordGenerator(9)
    assert gen1.generate(10) == gen2.generate(10)


def test_unique_within_generator_and_balanced_reuse_of_short_words():
    gen = PseudowordGenerator(seed=2)
    first = gen.generate(lengths=[5] * 40)
    second = gen.generate(lengths=[5] * 40)
    assert len(set(first) | set(second)) == 80
    pool = gen.pool(3)
    assert len(pool) >= 30 and all(len(w) == 3 and gen.accepts(w) for w in pool)
    draws = [gen.one(3, unique=False) for _ in range(3 * len(pool))]
    counts = Counter(draws)
    assert set(counts) == set(pool) and set(counts.values()) == {3}
    # unique=True exhausts the small 3-letter pool with a clear error
    with pytest.raises(RuntimeError, match="3-letter pseudowords are used"):
        PseudowordGenerator(seed=1).generate(lengths=[3] * (len(pool) + 1))


def test_default_lengths_follow_real_words():
    words = generate(300, seed=3)
    lengths = np.array([len(w) for w in words])
    assert lengths.min() >= 3 and lengths.max() <= 10
    assert 5.0 < lengths.mean() < 8.0


def test_exclude_and_accepts():
    pool = PseudowordGenerator(seed=0).pool(3)
    gen = PseudowordGenerator(seed=0, exclude=pool[:-1])
    assert gen.generate(lengths=[3], unique=False) == [pool[-1]]
    assert not gen.accepts("banana") and not gen.accepts("xqzv")
    assert gen.accepts("blorter") and not gen.accepts("blorshiter")  # blocked substring


def test_segmentation():
    assert segment("queen") == ["qu", "ee", "n"]
    assert segment("yes") == ["y", "e", "s"]
    assert segment("gym") == ["g", "y", "m"]
    assert split_parts("strength") == ("str", ["e"], "ngth")
    assert split_parts("area") == ("", ["a", "r", "ea"], "")
    assert split_parts("psst") is None


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"n": 2, "lengths": 2}, ValueError, "outside 3-16 letters"),
    ({"lengths": [4, 20]}, ValueError, "outside 3-16"),
    ({"lengths": [4.5]}, TypeError, "integer number of letters"),
    ({"lengths": "5"}, TypeError, "int or a sequence"),
    ({"n": 3, "lengths": [4, 5]}, ValueError, "lengths has 2 entries"),
    ({}, ValueError, "Pass n"),
    ({"lengths": 5}, ValueError, "pass n"),
    ({"n": -1}, ValueError, "non-negative integer"),
])
def test_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        generate(seed=0, **kwargs)


def test_constructor_errors():
    with pytest.raises(ValueError, match="min_count must be"):
        PseudowordGenerator(min_count=0)
    with pytest.raises(ValueError, match="power must be"):
        PseudowordGenerator(power=-1)
    with pytest.raises(TypeError, match="not one string"):
        PseudowordGenerator(exclude="blick")
    with pytest.raises(TypeError, match="seed must be"):
        PseudowordGenerator(seed="x")
    with pytest.raises(ValueError, match="lengths 3 and 4 only"):
        PseudowordGenerator(seed=0).pool(5)
