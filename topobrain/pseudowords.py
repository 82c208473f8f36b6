"""English-like pseudowords: pronounceable, length-matched, seeded, never a real word.

Words are assembled from sub-syllabic parts of real English words (the ``wordfreq``
list): a word-initial consonant cluster (onset, possibly empty), vowel nuclei, the
consonant clusters found between vowels inside words, and a word-final cluster (coda,
possibly empty), each drawn with its type frequency. A candidate is kept only when

- it has exactly the target length in letters,
- every letter trigram, with word boundaries (``^bl``, ``ck$``), occurs in real words,
- it is not a real word: not among the 100,000 most frequent English words of
  ``wordfreq`` (the word list, not a frequency threshold, is the criterion),
- it is new within the call (``unique=True``),
- it holds no obscene or offensive substring (a short block list).

This follows the logic of Wuggy (Keuleers & Brysbaert, 2010: sub-syllabic segments and
their transition frequencies) in a simpler, orthographic form.

Examples
--------
>>> from topobrain.pseudowords import generate
>>> words = generate(lengths=[5, 7, 4], seed=0)
>>> [len(w) for w in words]
[5, 7, 4]

References
----------
Keuleers, E., & Brysbaert, M. (2010). Wuggy: A multilingual pseudoword generator.
Behavior Research Methods, 42(3), 627-633.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

from ._utils._validation import check_random_state

__all__ = ["PseudowordGenerator", "generate", "is_real_word", "real_words", "segment",
           "split_parts", "MIN_LENGTH", "MAX_LENGTH"]

#: Shortest length served: every pronounceable 1- or 2-letter string is in the word list.
MIN_LENGTH = 3
#: Longest length served.
MAX_LENGTH = 16

_VOWELS = frozenset("aeiou")
# Pseudowords are shown to participants and readers: none may contain an obscenity or a
# slur. Whole real words are excluded by the word list already; these catch substrings.
_BLOCKED = re.compile(
    "fuck|shit|cunt|piss|cock|dick|slut|whore|nigg|fag|rape|porn|tits|twat|wank|bitch|"
    "kike|spic|chink|dyke|homo|nazi|jizz|cum|anus|anal|poo|sex|kill"
)
_WORD = re.compile(r"^[a-z]+$")
_SEGMENT = re.compile(r"[aeiouy]+|[^aeiouy]+")


def _require_wordfreq():
    try:
        import wordfreq
    except ImportError:  # pragma: no cover - wordfreq is in the stimuli and dev extras
        raise ImportError("The pseudoword generator needs the 'wordfreq' package: "
                          "pip install 'topobrain[stimuli]'.") from None
    return wordfreq


@lru_cache(maxsize=4)
def real_words(n_words: int = 100_000) -> frozenset:
    """The real-word list: the ``n_words`` most frequent English words of ``wordfreq``.

    Returns
    -------
    frozenset of str
        Lower-case words (with and without apostrophes removed).
    """
    wordfreq = _require_wordfreq()
    words = wordfreq.top_n_list("en", int(n_words))
    out = set(words)
    out.update(w.replace("'", "") for w in words)
    return frozenset(w.lower() for w in out)


def is_real_word(word: str, n_words: int = 100_000) -> bool:
    """True when ``word`` (case-insensitive) is in :func:`real_words`."""
    return str(word).lower() in real_words(n_words)


def _groups(word: str):
    """Consonant/vowel groups of a lower-case word and whether each is a vowel group."""
    kinds = []
    for i, ch in enumerate(word):
        if ch == "y":
            nxt = word[i + 1] if i + 1 < len(word) else ""
            vowel = nxt not in _VOWELS
        elif ch == "u" and i > 0 and word[i - 1] == "q":
            vowel = False
        else:
            vowel = ch in _VOWELS
        kinds.append(vowel)
    groups, flags, start = [], [], 0
    for i in range(1, len(word) + 1):
        if i == len(word) or kinds[i] != kinds[start]:
            groups.append(word[start:i])
            flags.append(kinds[start])
            start = i
    return groups, flags


def segment(word: str) -> list[str]:
    """Split a word into alternating consonant and vowel groups (lower-cased).

    ``y`` counts as a consonant before a vowel (``yes``, ``beyond``) and as a vowel
    otherwise (``gym``, ``day``); ``u`` after ``q`` belongs to the consonant (``qu``).

    Examples
    --------
    >>> segment("queen"), segment("beyond"), segment("strength")
    (['qu', 'ee', 'n'], ['b', 'e', 'y', 'o', 'nd'], ['str', 'e', 'ngth'])
    """
    return _groups(str(word).lower())[0]


def split_parts(word: str):
    """The sub-syllabic parts of a word: ``(onset, core, coda)``, or None without vowel.

    ``core`` alternates vowel nuclei and word-internal consonant clusters, starting and
    ending with a nucleus; ``onset`` and ``coda`` may be ``""``.

    Examples
    --------
    >>> split_parts("planet")
    ('pl', ['a', 'n', 'e'], 't')
    """
    groups, flags = _groups(str(word).lower())
    if not any(flags):
        return None
    onset = "" if flags[0] else groups[0]
    coda = "" if flags[-1] else groups[-1]
    core = groups[(0 if flags[0] else 1): (len(groups) if flags[-1] else len(groups) - 1)]
    return onset, core, coda


@lru_cache(maxsize=4)
def _tables(n_train: int, min_count: int):
    """Part frequencies and attested trigrams from the ``n_train`` most frequent words."""
    wordfreq = _require_wordfreq()
    top = wordfreq.top_n_list("en", n_train)
    # contractions written without the apostrophe ("couldnt") are not English spellings
    contractions = {w.replace("'", "") for w in top if "'" in w}
    words = [w for w in top if _WORD.match(w) and len(w) >= 3 and w not in contractions]
    onsets, codas, clusters = Counter(), Counter(), Counter()
    nuclei, final_nuclei = Counter(), Counter()
    n_nuclei_by_len = defaultdict(Counter)
    trigrams = Counter()
    for w in words:
        parts = split_parts(w)
        if parts is None:
            continue
        onset, core, coda = parts
        onsets[onset] += 1
        codas[coda] += 1
        vowels = core[0::2]
        for j, v in enumerate(vowels):
            if j == len(vowels) - 1 and coda == "":
                final_nuclei[v] += 1
            else:
                nuclei[v] += 1
        for c in core[1::2]:
            clusters[c] += 1
        n_nuclei_by_len[len(w)][len(vowels)] += 1
        padded = f"^{w}$"
        for i in range(len(padded) - 2):
            trigrams[padded[i:i + 3]] += 1

    def keep(counter):
        items = [(k, v) for k, v in counter.items() if v >= min_count]
        items.sort()
        return items

    return {
        "onsets": keep(onsets), "codas": keep(codas),
        "clusters": [(k, v) for k, v in keep(clusters) if len(k) <= 3],
        "nuclei": [(k, v) for k, v in keep(nuclei) if len(k) <= 2],
        "final_nuclei": [(k, v) for k, v in keep(final_nuclei) if len(k) <= 2],
        "n_nuclei_by_len": {L: dict(c) for L, c in n_nuclei_by_len.items()},
        "trigrams": frozenset(t for t, v in trigrams.items() if v >= min_count),
        "lengths": Counter(len(w) for w in words),
    }


class _Table:
    """Weighted choice among strings, also restricted to one length."""

    def __init__(self, items, power: float):
        self.parts = [k for k, _ in items]
        w = np.array([v for _, v in items], dtype=float) ** power
        self.p = w / w.sum()
        self.by_len = defaultdict(list)
        for i, k in enumerate(self.parts):
            self.by_len[len(k)].append(i)
        self.by_len_p = {L: self.p[idx] / self.p[idx].sum() for L, idx in self.by_len.items()}

    def draw(self, rng) -> str:
        return self.parts[rng.choice(len(self.parts), p=self.p)]

    def draw_len(self, rng, length: int) -> str | None:
        idx = self.by_len.get(length)
        if not idx:
            return None
        return self.parts[idx[rng.choice(len(idx), p=self.by_len_p[length])]]


class PseudowordGenerator:
    """A seeded source of English-like pseudowords.

    Parameters
    ----------
    seed : int or numpy.random.Generator, optional
        Seeds all draws (via ``np.random.default_rng``); the same seed gives the same
        words in the same order.
    n_train : int, default=30000
        Number of most frequent ``wordfreq`` words whose parts and trigrams are learned.
    n_lexicon : int, default=100000
        Size of the real-word list that candidates must avoid.
    min_count : int, default=10
        A part or trigram must occur in at least this many real words to be used.
    power : float, default=1.0
        Parts are drawn with probability proportional to type count ** power (below 1
        flattens the distribution, for variety).
    exclude : iterable of str, optional
        Extra strings never to produce (e.g. items of another list).

    Examples
    --------
    >>> gen = PseudowordGenerator(seed=1)
    >>> w = gen.generate(3, lengths=6)
    >>> len(w), all(len(x) == 6 for x in w), any(is_real_word(x) for x in w)
    (3, True, False)
    """

    def __init__(self, seed=None, *, n_train: int = 30_000, n_lexicon: int = 100_000,
                 min_count: int = 10, power: float = 1.0, exclude: Iterable[str] = ()):
        for nm, v, lo in (("n_train", n_train, 1000), ("n_lexicon", n_lexicon, 1000),
                          ("min_count", min_count, 1)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{nm} must be an integer >= {lo}; got {v!r}.")
        if not (isinstance(power, (int, float)) and 0 < power <= 2):
            raise ValueError(f"power must be a number in (0, 2]; got {power!r}.")
        if isinstance(exclude, str):
            raise TypeError("exclude must be an iterable of strings, not one string; "
                            "wrap it in a list.")
        self._rng = check_random_state(seed)
        self._tab = _tables(int(n_train), int(min_count))
        self._lexicon = real_words(int(n_lexicon))
        self._exclude = frozenset(str(w).lower() for w in exclude)
        self._onsets = _Table(self._tab["onsets"], power)
        self._codas = _Table(self._tab["codas"], power)
        self._clusters = _Table(self._tab["clusters"], power)
        self._nuclei = _Table(self._tab["nuclei"], power)
        self._final = _Table(self._tab["final_nuclei"], power)
        self._seen: set[str] = set()
        self._uses: Counter = Counter()
        self._pools: dict = {}

    # ------------------------------------------------------------------ checks
    def is_real_word(self, word: str) -> bool:
        """True when ``word`` is in this generator's real-word list."""
        return word.lower() in self._lexicon

    def is_legal(self, word: str) -> bool:
        """True when every boundary-padded letter trigram of ``word`` is attested."""
        padded = f"^{word.lower()}$"
        tri = self._tab["trigrams"]
        return all(padded[i:i + 3] in tri for i in range(len(padded) - 2))

    def accepts(self, word: str) -> bool:
        """True when ``word`` passes every check: legal trigrams, not a real word, not
        excluded, no letter three times in a row, no obscene or offensive substring."""
        w = word.lower()
        return (_WORD.match(w) is not None and self.is_legal(w)
                and w not in self._lexicon and w not in self._exclude
                and re.search(r"(.)\1\1", w) is None and _BLOCKED.search(w) is None)

    # --------------------------------------------------------------- generating
    def _n_nuclei(self, length: int) -> int:
        table = self._tab["n_nuclei_by_len"].get(length)
        if not table:
            return max(1, round(length / 3))
        ks = sorted(table)
        p = np.array([table[k] for k in ks], dtype=float)
        return int(ks[self._rng.choice(len(ks), p=p / p.sum())])

    def _candidate(self, length: int) -> str | None:
        rng = self._rng
        k = self._n_nuclei(length)
        parts = [self._onsets.draw(rng)]
        for j in range(k):
            if j > 0:
                parts.append(self._clusters.draw(rng))
            parts.append(self._nuclei.draw(rng) if j < k - 1 else None)
        used = sum(len(p) for p in parts if p)
        remaining = length - used
        if remaining < 1:
            return None
        # the last nucleus and the coda share the remaining letters
        if rng.random() < 0.45:
            last = self._final.draw_len(rng, remaining)
            coda = ""
            if last is None:
                return None
        else:
            vlen = 1 if remaining == 1 else int(rng.choice([1, 2], p=[0.75, 0.25]))
            last = self._nuclei.draw_len(rng, vlen)
            coda = self._codas.draw_len(rng, remaining - vlen) if remaining > vlen else ""
            if last is None or coda is None:
                return None
        parts[-1] = last
        return "".join(parts) + coda

    def one(self, length: int, *, unique: bool = True, avoid: Iterable[str] = (),
            max_tries: int = 20_000) -> str:
        """One pseudoword of ``length`` letters.

        Parameters
        ----------
        length : int
            Letters (3-16).
        unique : bool, default=True
            Never return a word this generator returned before.
        avoid : iterable of str, optional
            Words not to return this time (e.g. the rest of a list).
        max_tries : int, default=20000
            Candidates to try before giving up with a RuntimeError.
        """
        length = _check_length(length)
        avoid = set(avoid)
        if length == MIN_LENGTH:
            # the 3-letter space is small: draw from the full list of valid ones, always
            # among the least used so far, so that repeats (unique=False) are balanced
            options = [w for w in self.pool(length) if w not in avoid
                       and not (unique and w in self._seen)]
            if not options:
                raise RuntimeError(
                    f"All {len(self.pool(length))} valid {length}-letter pseudowords are "
                    f"used; allow repeats (unique=False)."
                )
            least = min(self._uses[w] for w in options)
            options = [w for w in options if self._uses[w] == least]
            w = options[int(self._rng.integers(len(options)))]
            self._seen.add(w)
            self._uses[w] += 1
            return w
        for _ in range(max_tries):
            w = self._candidate(length)
            if w is None or len(w) != length or w in avoid or (unique and w in self._seen):
                continue
            if self.accepts(w):
                self._seen.add(w)
                self._uses[w] += 1
                return w
        raise RuntimeError(f"No new pseudoword of length {length} found in {max_tries} "
                           f"tries; allow repeats (unique=False) or lower min_count.")

    def pool(self, length: int = MIN_LENGTH) -> list:
        """Every valid pseudoword of a short length (3 or 4 letters), sorted.

        One onset, one nucleus and one coda (3 letters) or also two nuclei around a
        word-internal cluster (4 letters), each attested in real words, passing
        :meth:`accepts`.
        """
        length = _check_length(length)
        if length > 4:
            raise ValueError(f"pool() enumerates lengths 3 and 4 only; got {length}. Use "
                             f"generate() for longer words.")
        if length not in self._pools:
            nuclei = sorted(set(self._nuclei.parts) | set(self._final.parts))
            found = set()
            for o in self._onsets.parts:
                for n in nuclei:
                    for c in self._codas.parts:
                        w = o + n + c
                        if len(w) == length:
                            found.add(w)
                    if length == 4 and len(o) + len(n) < 4:
                        for m in self._clusters.parts:
                            for n2 in self._final.parts:
                                w = o + n + m + n2
                                if len(w) == length:
                                    found.add(w)
            self._pools[length] = sorted(w for w in found if self.accepts(w))
        return list(self._pools[length])

    def generate(self, n: int | None = None, *, lengths=None, unique: bool = True) -> list:
        """Draw pseudowords.

        Parameters
        ----------
        n : int, optional
            How many. Optional when ``lengths`` is a sequence (one word per entry).
        lengths : int or sequence of int, optional
            Target length in letters of each word (3-16), or one length for all. By
            default lengths follow the real words' length distribution (3-10 letters).
        unique : bool, default=True
            Never repeat a word within this generator's lifetime. With ``False``, words
            still differ within one call.

        Returns
        -------
        list of str
            Lower-case pseudowords, ``len(result) == n``, in the order of ``lengths``.
        """
        if lengths is None:
            if n is None:
                raise ValueError("Pass n (how many words) or lengths (one per word).")
            counts = self._tab["lengths"]
            Ls = [L for L in sorted(counts) if MIN_LENGTH <= L <= 10]
            p = np.array([counts[L] for L in Ls], dtype=float)
            lengths = [int(L) for L in self._rng.choice(Ls, size=_check_n(n), p=p / p.sum())]
        elif isinstance(lengths, (int, np.integer)) and not isinstance(lengths, bool):
            if n is None:
                raise ValueError("With a single length, pass n (how many words).")
            lengths = [int(lengths)] * _check_n(n)
        else:
            if isinstance(lengths, (str, bytes)) or not isinstance(lengths, (Sequence,
                                                                            np.ndarray)):
                raise TypeError(f"lengths must be an int or a sequence of ints; got "
                                f"{type(lengths).__name__}.")
            lengths = [_check_length(L) for L in lengths]
            if n is not None and _check_n(n) != len(lengths):
                raise ValueError(f"n={n} but lengths has {len(lengths)} entries; pass one "
                                 f"length per word or omit n.")
        out: list[str] = []
        for L in lengths:
            out.append(self.one(L, unique=unique, avoid=out))
        return out


def _check_n(n) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative integer; got {n!r}.")
    return int(n)


def _check_length(L) -> int:
    if not isinstance(L, (int, np.integer)) or isinstance(L, bool):
        raise TypeError(f"A target length must be an integer number of letters; got {L!r}.")
    if not MIN_LENGTH <= L <= MAX_LENGTH:
        raise ValueError(
            f"Target length {L} is outside {MIN_LENGTH}-{MAX_LENGTH} letters. Every "
            f"pronounceable string of 1-2 letters is in the real-word list, so match short "
            f"words with {MIN_LENGTH}-letter pseudowords (and shorten a long one to keep the "
            f"total), or split longer targets."
        )
    return int(L)


def generate(n: int | None = None, *, lengths=None, seed=None, unique: bool = True,
             exclude: Iterable[str] = ()) -> list:
    """Draw pseudowords with a fresh seeded :class:`PseudowordGenerator`.

    Parameters
    ----------
    n : int, optional
        How many (optional when ``lengths`` is a sequence).
    lengths : int or sequence of int, optional
        Target length(s) in letters (3-16).
    seed : int or numpy.random.Generator, optional
        Same seed, same words.
    unique : bool, default=True
        No repeats within the call.
    exclude : iterable of str, optional
        Strings never to produce.

    Returns
    -------
    list of str

    Examples
    --------
    >>> generate(2, lengths=4, seed=3) == generate(2, lengths=4, seed=3)
    True
    """
    return PseudowordGenerator(seed, exclude=exclude).generate(n, lengths=lengths,
                                                               unique=unique)
