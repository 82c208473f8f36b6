"""StimulusSet, loaders, validation, the bundled sets and the ``stimuli`` CLI."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scipy import stats

import topobrain.contrast
from topobrain.cli import main
from topobrain.stimuli import (
    FUNCTION_WORDS,
    StimulusSet,
    available_stimuli,
    bundled_path,
    jabberwocky,
    load_stimuli,
    nonword_lists,
    parse_contrast,
    read_langloc,
    read_table,
    word_lists,
)

BUNDLED = ["langloc", "noun-verb", "noun-verb-phrases", "swjn"]


def small_table():
    return pd.DataFrame({
        "item_id": ["a1", "a2", "b1", "b2", "c1"],
        "condition": ["S", "S", "N", "N", "S"],
        "text": ["the cat sat", "dogs ran fast", "blor fep", "nif tarp", "a bird sang"],
        "run": [1, 1, 2, 2, 1],
    })


# ---------------------------------------------------------------------- the table
def test_basic_accessors_and_no_mutation():
    df = small_table()
    before = df.copy()
    s = StimulusSet(df, name="toy")
    pd.testing.assert_frame_equal(df, before)
    assert s.name == "toy" and len(s) == 5
    assert s.item_ids == ["a1", "a2", "b1", "b2", "c1"]
    assert s.texts[0] == "the cat sat"
    assert s.conditions == ["S", "N"]
    assert s.counts == {"S": 3, "N": 2}
    assert s.labels.dtype == object and list(s.labels) == ["S", "S", "N", "N", "S"]
    assert s.columns == ["item_id", "condition", "text", "run"]
    # copies out: editing them changes nothing inside
    frame = s.to_frame()
    frame.loc[0, "text"] = "changed"
    s.labels[0] = "X"
    s.column("run")[0] = 99
    assert s.texts[0] == "the cat sat" and s.labels[0] == "S" and s.column("run")[0] == 1
    df.loc[0, "text"] = "changed too"
    assert s.texts[0] == "the cat sat"
    with pytest.raises(AttributeError, match="read-only"):
        s.name = "other"
    assert "toy: 5 items (S: 3, N: 2)" in repr(s)


def test_item_id_generated_and_columns_reordered():
    s = StimulusSet({"text": ["x y", "y z", "z w", "w v"], "cond": [1, 1, 2, 2],
                     "condition": ["A", "A", "B", "B"]})
    assert s.item_ids == ["1", "2", "3", "4"]
    assert s.columns[:3] == ["item_id", "condition", "text"]


def test_subset_and_where():
    s = StimulusSet(small_table())
    sub = s.subset("S")
    assert sub.item_ids == ["a1", "a2", "c1"] and sub.conditions == ["S"]
    assert s.subset(["N", "S"]).item_ids == s.item_ids  # original order kept
    w = s.where(run=2)
    assert w.item_ids == ["b1", "b2"]
    assert s.where(run=[1, 2], condition="S").item_ids == ["a1", "a2", "c1"]
    assert s.where(run=np.array([2])).item_ids == ["b1", "b2"]
    with pytest.raises(ValueError, match="Unknown condition 'SS'.*Did you mean 'S'"):
        s.subset(["SS"])
    with pytest.raises(ValueError, match="needs at least one condition"):
        s.subset([])
    with pytest.raises(ValueError, match="No column 'rn'.*Did you mean 'run'"):
        s.where(rn=1)
    with pytest.raises(ValueError, match="No item matches"):
        s.where(run=3)
    with pytest.raises(ValueError, match="at least one column=value"):
        s.where()


def test_contrast_uses_the_shared_parser():
    import topobrain.stimuli as stimuli_module

    assert stimuli_module.parse_contrast is topobrain.contrast.parse_contrast
    s = StimulusSet(small_table())
    c = s.contrast("S - N")
    assert c.weights == {"S": 1.0, "N": -1.0} and c.is_two_sample
    np.testing.assert_array_equal(c.vector(s.conditions), [1.0, -1.0])
    with pytest.raises(ValueError, match=r"unknown condition\(s\) \['NN'\].*Did you mean 'N'"):
        s.contrast("S - NN")
    swjn = load_stimuli("swjn")
    weights = swjn.contrast("0.5*J + 0.5*W - N").weights
    assert weights == parse_contrast("0.5*J + 0.5*W - N").weights
    with pytest.raises(ValueError, match="Did you mean 'verb'"):
        load_stimuli("noun-verb").contrast("verbs - noun")


def test_identity_is_a_content_hash(tmp_path):
    s = StimulusSet(small_table(), name="a")
    assert re.fullmatch(r"[0-9a-f]{64}", s.identity)
    assert StimulusSet(small_table(), name="b").identity == s.identity
    other = small_table()
    other.loc[4, "text"] = "a bird sang!"
    assert StimulusSet(other).identity != s.identity
    reordered = small_table().iloc[[1, 0, 2, 3, 4]]
    assert StimulusSet(reordered).identity != s.identity
    s.to_tsv(tmp_path / "x.tsv")
    s.to_csv(tmp_path / "x.csv")
    assert read_table(tmp_path / "x.tsv").identity == s.identity
    assert read_table(tmp_path / "x.csv").identity == s.identity
    assert read_table(tmp_path / "x.csv") == s


words = st.one_of(st.text(alphabet=list("abcxyzé'\",;:!?-ñ"), min_size=1, max_size=6),
                 st.sampled_from(["nan", "null", "NA", "None", "-1", "0.50"]))
texts = st.lists(words, min_size=1, max_size=5).map(" ".join)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(texts, min_size=4, max_size=12), st.integers(0, 2**16))
def test_tsv_csv_round_trip_property(tmp_path, items, seed):
    rng = np.random.default_rng(seed)
    conds = ["A", "B"] * (len(items) // 2) + ["A"] * (len(items) % 2)
    df = pd.DataFrame({"condition": conds, "text": items,
                       "score": rng.normal(size=len(items)).round(6),
                       "tag": [f"t{i % 3}" for i in range(len(items))]})
    s = StimulusSet(df)
    for suffix in ("tsv", "csv"):
        path = tmp_path / f"rt.{suffix}"
        getattr(s, f"to_{suffix}")(path)
        back = read_table(path)
        pd.testing.assert_frame_equal(back.to_frame(), s.to_frame(), check_dtype=False)
        assert back.identity == s.identity
        assert not path.read_bytes().startswith(b"\xef\xbb\xbf")


def test_tsv_missing_values_events_style(tmp_path):
    df = small_table()
    df["onset"] = [0.5, np.nan, 2.0, 3.25, np.nan]
    df["note"] = ["x", None, "y", "z", "w"]
    s = StimulusSet(df)
    s.to_tsv(tmp_path / "ev.tsv")
    lines = (tmp_path / "ev.tsv").read_text().splitlines()
    assert lines[0] == "item_id\tcondition\ttext\trun\tonset\tnote"
    assert lines[2] == "a2\tS\tdogs ran fast\t1\tn/a\tn/a"
    back = read_table(tmp_path / "ev.tsv")
    assert np.isnan(back.column("onset")[1]) and back.column("onset")[3] == 3.25
    assert pd.isna(back.column("note")[1]) and back.identity == s.identity


def test_to_tsv_refuses_tabs_in_extra_columns(tmp_path):
    df = small_table()
    df["note"] = ["ok", "has\ttab", "ok", "ok", "ok"]
    with pytest.raises(ValueError, match="Column 'note' holds tabs.*row 2.*to_csv"):
        StimulusSet(df).to_tsv(tmp_path / "x.tsv")


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.assign(text=["the cat sat", "", "blor fep", "nif tarp", "a bird"]),
     r"Column 'text' is empty .* at row 2.*Fill those cells or drop"),
    (lambda d: d.assign(text=["the cat sat", "  ", "blor fep", "nif tarp", "a bird"]),
     r"Column 'text' is empty \(or only whitespace\) at row 2"),
    (lambda d: d.assign(text=["the cat sat", None, "blor fep", "nif tarp", "a bird"]),
     r"Column 'text' is empty at row 2"),
    (lambda d: d.drop(columns="condition"),
     r"no 'condition' column.*columns=\{'<your column>': 'condition'\}"),
    (lambda d: d.rename(columns={"condition": "conditon"}),
     r"no 'condition' column.*Did you mean 'conditon'"),
    (lambda d: d.drop(columns="text"), r"no 'text' column"),
    (lambda d: d.assign(item_id=["a1", "a2", "a1", "b2", "c1"]),
     r"'item_id' repeats 1 id\(s\), e.g. 'a1' at rows 1, 3.*unique id"),
    (lambda d: d.assign(condition=["S", "S", "N", "Q", "S"]),
     r"Condition\(s\) \['N', 'Q'\] have fewer than 2 items \(rows 3, 4\).*Add items, merge"),
    (lambda d: d.assign(text=["the cat sat ", "dogs ran", "blor fep", "nif tarp", "a bird"]),
     r"stray whitespace .* at row 1, e.g. 'the cat sat '.*clean=True"),
    (lambda d: d.assign(text=["the  cat", "dogs ran", "blor fep", "nif tarp", "a bird"]),
     r"stray whitespace"),
    (lambda d: d.assign(text=["the\tcat", "dogs ran", "blor fep", "nif tarp", "a bird"]),
     r"stray whitespace"),
    (lambda d: d.assign(condition=["S ", "S ", "N", "N", "S "]),
     r"Column 'condition' has stray whitespace .* at rows 1, 2, 5"),
    (lambda d: d.assign(text=[1, 2, 3, 4, 5]), r"Column 'text' must hold strings.*astype"),
    (lambda d: d.assign(condition=["S", None, "N", "N", "S"]), r"'condition' is empty at row 2"),
    (lambda d: d.iloc[:0], r"no rows"),
])
def test_validation_errors(mutate, match):
    with pytest.raises(ValueError, match=match):
        StimulusSet(mutate(small_table()))


def test_type_errors():
    with pytest.raises(TypeError, match="pandas DataFrame"):
        StimulusSet([["a", "b"]])
    with pytest.raises(TypeError, match="name must be"):
        StimulusSet(small_table(), name=3)
    with pytest.raises(TypeError, match="bundled name, a path or a StimulusSet"):
        load_stimuli(3)
    with pytest.raises(ValueError, match="repeated column names"):
        StimulusSet(pd.DataFrame([[1, 2]], columns=["a", "a"]))


def test_file_encodings_and_byte_order_marks(tmp_path):
    body = "condition\ttext\nS\tthe café\nS\tla mer\nN\tblor fep\nN\tnif tarp\n"
    # a byte-order mark (Excel's UTF-8, or UTF-16/32) is recognised under any UTF codec
    for bom, codec in [(b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"),
                       (b"\xfe\xff", "utf-16-be"), (b"\xff\xfe\x00\x00", "utf-32-le")]:
        path = tmp_path / f"bom-{codec}.tsv"
        path.write_bytes(bom + body.encode(codec))
        for encoding in ("utf-8", None, "utf-8-sig", "UTF8", "utf-16"):
            got = read_table(path, encoding=encoding)
            assert got.columns == ["item_id", "condition", "text"], (codec, encoding)
            assert got.texts[0] == "the café"
        assert load_stimuli(path).identity == got.identity
        with pytest.raises(ValueError, match=r"starts with a UTF-(8|16|32) byte-order mark, so "
                                             r"it is UTF-\d+, not latin-1; pass encoding="):
            read_table(path, encoding="latin-1")
    latin = tmp_path / "latin.tsv"
    latin.write_bytes(body.encode("latin-1"))
    with pytest.raises(ValueError, match=r"not valid utf-8: byte b'\\xe9' .*\(line 2\).*"
                                         r"encoding='latin-1'"):
        read_table(latin)
    assert read_table(latin, encoding="latin-1").texts[0] == "the café"
    assert load_stimuli(latin, encoding="cp1252").texts[0] == "the café"
    utf16 = tmp_path / "u16.tsv"  # no byte-order mark: NUL bytes everywhere in UTF-8
    utf16.write_bytes(body.encode("utf-16-le"))
    with pytest.raises(ValueError, match=r"holds NUL bytes \(first on line 1\).*"
                                         r"encoding='utf-16'"):
        read_table(utf16)
    assert read_table(utf16, encoding="utf-16-le").texts[0] == "the café"
    with pytest.raises(ValueError, match="Unknown encoding 'klingon'"):
        read_table(latin, encoding="klingon")
    with pytest.raises(ValueError, match="Unknown encoding 'klingon'"):
        load_stimuli("langloc", encoding="klingon")
    with pytest.raises(TypeError, match="encoding must be a string"):
        read_table(latin, encoding=8)


def test_langloc_folder_honours_the_encoding(tmp_path):
    rows = ["item,w1,w2,w3,cond"] + [f"{i},CAFÉ,MER,SOL,S" for i in (1, 2)] + \
        [f"{i},BLOR,FEP,NIF,N" for i in (1, 2)]
    (tmp_path / "langloc_fmri_run1_stim_set1.csv").write_bytes(
        ("\n".join(rows) + "\n").encode("latin-1"))
    with pytest.raises(ValueError, match="not valid utf-8.*encoding='latin-1'"):
        load_stimuli(tmp_path)
    assert load_stimuli(tmp_path, encoding="latin-1").texts[0] == "café mer sol"


def test_file_errors(tmp_path):
    messy = tmp_path / "messy.tsv"
    messy.write_text("condition\ttext\nS\tthe  cat \nS\tdog\nN\tblor\nN\tfep\n", "utf-8")
    with pytest.raises(ValueError, match=r"messy.tsv: Column 'text' has stray whitespace"):
        read_table(messy)
    assert read_table(messy, clean=True).texts[0] == "the cat"
    with pytest.raises(FileNotFoundError, match="No stimulus file"):
        read_table(tmp_path / "absent.tsv")
    with pytest.raises(FileNotFoundError, match="No stimulus file or folder"):
        load_stimuli(tmp_path / "absent.tsv")
    odd = tmp_path / "items.xlsx"
    odd.write_text("x")
    with pytest.raises(ValueError, match="name it .tsv or .csv, or pass sep"):
        read_table(odd)
    with pytest.raises(ValueError, match="sep must be one character"):
        read_table(messy, sep="")
    with pytest.raises(ValueError, match="sep must be one character"):
        read_table(messy, sep='"')
    with pytest.raises(TypeError, match="sep must be a string"):
        read_table(messy, sep=9)
    huge = tmp_path / "huge.tsv"
    huge.write_text("condition\ttext\nS\t" + "word " * 50_000 + "\nS\tb\n")
    with pytest.raises(ValueError, match=r"stray whitespace .* e\.g\. 'word word .*\.\.\.' "
                                         r"\(250000 chars\)") as err:
        read_table(huge)
    assert len(str(err.value)) < 500


@pytest.mark.parametrize("name, content, match", [
    ("empty.csv", "", "is empty"),
    ("ragged.csv", "condition,text\nS,a,b,c\n", "not a well-formed table"),
    ("unnamed.csv", "condition,,text\nS,x,a\nS,y,b\n", "column 2 of the header line has no "
                                                       "name"),
    ("twice.csv", "condition,text,text\nS,a,x\nS,b,y\n", r"repeated column names \['text'\]"),
    ("unclosed.csv", 'condition,text\nS,"a b\nS,c\n', "not a well-formed table .*quotes are "
                                                        "closed"),
])
def test_malformed_files(tmp_path, name, content, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=match) as err:
        read_table(tmp_path / name)
    assert len(str(err.value).splitlines()) == 1


def test_generic_loader_with_column_mapping(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text('sentence,cond,n\n"the cat, the dog",verb,1\nnan,verb,2\n'
                    'null,noun,3\nthe NA one,noun,\n', "utf-8")
    s = load_stimuli(path, columns={"sentence": "text", "cond": "condition"})
    assert s.name == "mine"
    assert s.texts == ["the cat, the dog", "nan", "null", "the NA one"]
    assert s.conditions == ["verb", "noun"]
    col = s.column("n")
    assert col[:3].tolist() == [1, 2, 3] and np.isnan(col[3])
    with pytest.raises(ValueError, match=r"columns= names 'sentense'.*Did you mean 'sentence'"):
        load_stimuli(path, columns={"sentense": "text", "cond": "condition"})
    with pytest.raises(ValueError, match=r"no 'condition' column.*Did you mean 'cond'.*columns="):
        load_stimuli(path)
    with pytest.raises(ValueError, match=r"no 'text' column"):
        load_stimuli(path, columns={"cond": "condition"})
    with pytest.raises(TypeError, match="columns must be a dict"):
        read_table(path, columns=[("sentence", "text")])
    semi = tmp_path / "semi.txt"
    semi.write_text("condition;text\nA;x y\nA;y z\nB;z\nB;w\n", "utf-8")
    assert load_stimuli(semi, sep=";").counts == {"A": 2, "B": 2}


# ---------------------------------------------------------------------- langloc layout
def write_langloc(folder: Path, *, n_files=2, n_items=3, bad=None):
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n_files):
        rows = []
        for cond in ("S", "N"):
            for i in range(n_items):
                words = [f"{cond}W{k}X{i}Y{j}".upper() for j in range(12)]
                rows.append([str(i + 1), *words, cond])
        if bad == "condition":
            rows[0][-1] = "Q"
        if bad == "empty":
            rows[1][5] = ""
        with open(folder / f"langloc_fmri_run{k // 5 + 1}_stim_set{k % 5 + 1}.csv", "w",
                  newline="") as fh:
            w = csv.writer(fh)
            w.writerow([f"stim{j}" for j in range(1, 15)])
            w.writerows(rows)
    return folder


def test_read_langloc_synthetic(tmp_path):
    folder = write_langloc(tmp_path / "ll")
    s = read_langloc(folder)
    assert s.counts == {"S": 6, "N": 6}
    assert s.item_ids[:2] == ["run1_set1_S01", "run1_set1_S02"]
    assert s.texts[0] == " ".join(f"sw0x0y{j}" for j in range(12))
    assert load_stimuli(folder) == s
    frame = s.to_frame()
    assert set(frame["stim_set"]) == {1, 2} and set(frame["n_words"]) == {12}


@pytest.mark.parametrize("bad, match", [
    ("condition", r"last column must be the condition 'S' or 'N'; found 'Q' at row 1"),
    ("empty", r"empty word cell at row 2"),
])
def test_read_langloc_errors(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        read_langloc(write_langloc(tmp_path / "ll", bad=bad))


def test_load_bundled_layout_folder(tmp_path):
    import shutil

    folder = tmp_path / "mine"
    shutil.copytree(bundled_path("noun-verb"), folder)
    (folder / "noun-verb.tsv").rename(folder / "mine.tsv")
    assert load_stimuli(folder) == load_stimuli("noun-verb")
    assert load_stimuli(folder).name == "mine"


def test_read_langloc_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="holds no langloc files"):
        read_langloc(tmp_path)
    with pytest.raises(FileNotFoundError, match="No langloc folder"):
        read_langloc(tmp_path / "nope")
    with pytest.raises(ValueError, match="folder without langloc files"):
        load_stimuli(tmp_path)


def test_read_langloc_real_materials(langloc_dir):
    s = read_langloc(langloc_dir)
    assert s.counts == {"S": 240, "N": 240}
    assert all(len(t.split()) == 12 for t in s.texts)
    assert all(t == t.lower() and "  " not in t for t in s.texts)
    assert len(set(s.texts)) == 480
    # compare with an independent reading of the CSV files
    expected = {}
    for path in sorted(langloc_dir.glob("langloc_fmri_run*_stim_set*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                words = [row[f"stim{j}"] for j in range(2, 14)]
                expected[" ".join(words).lower()] = row["stim14"]
    assert dict(zip(s.texts, s.labels, strict=True)) == expected
    assert s.contrast("S - N").weights == {"S": 1.0, "N": -1.0}


# ---------------------------------------------------------------------- bundled sets
def test_bundled_sets_are_found_from_the_package():
    import topobrain

    assert available_stimuli() == BUNDLED
    pkg = Path(topobrain.__file__).parent
    for name in BUNDLED:
        folder = bundled_path(name)
        assert folder.parent.parent == pkg / "data"
        assert (folder / "README.md").is_file()
        s = load_stimuli(name)
        assert s.name == name
        # the package-data rule in pyproject ships these files
    assert 'topobrain = ["data/**/*"]' in (pkg.parent / "pyproject.toml").read_text()
    with pytest.raises(ValueError, match=r"Unknown stimulus set 'langlok'.*Bundled sets: "
                                         r"\['langloc'.*Did you mean 'langloc'"):
        load_stimuli("langlok")
    with pytest.raises(ValueError, match="No bundled stimulus set"):
        bundled_path("nope")


@pytest.fixture(scope="module")
def real_words():
    wordfreq = pytest.importorskip("wordfreq")
    return set(wordfreq.top_n_list("en", 100_000))


def test_langloc_set(real_words):
    s = load_stimuli("langloc")
    assert s.counts["S"] >= 160 and s.counts["N"] >= 160
    frame = s.to_frame()
    assert all(len(t.split()) == 12 for t in s.texts)
    S, N = frame[frame.condition == "S"], frame[frame.condition == "N"]
    assert all(re.fullmatch(r"[a-z]+( [a-z]+){11}", t) for t in frame.text)
    # every sentence word is a real word; no non-word is
    assert all(w in real_words for t in S.text for w in t.split())
    assert not any(w in real_words for t in N.text for w in t.split())
    # varied syntax and topics
    assert S.structure.nunique() >= 8 and S.structure.value_counts().max() < 0.25 * len(S)
    assert S.topic.nunique() >= 12
    # N lists matched to their sentences' letters
    letters = dict(zip(S.item_id, S.n_letters, strict=True))
    matched = [letters[src] == n for src, n in zip(N.source_item, N.n_letters, strict=True)]
    assert np.mean(matched) > 0.95
    s_len = [len(w) for t in S.text for w in t.split() if len(w) >= 4]
    n_len = [len(w) for t in N.text for w in t.split() if len(w) >= 4]
    assert abs(np.mean(s_len) - np.mean(n_len)) < 0.6
    # long non-words never repeat
    long_n = [w for t in N.text for w in t.split() if len(w) > 3]
    assert len(long_n) == len(set(long_n))
    assert "## Statistics" in (bundled_path("langloc") / "README.md").read_text()


def test_swjn_set(real_words):
    s = load_stimuli("swjn")
    assert s.conditions == ["S", "W", "J", "N"]
    assert min(s.counts.values()) >= 80
    frame = s.to_frame()
    S = frame[frame.condition == "S"].set_index("item_id")
    W = frame[frame.condition == "W"]
    J = frame[frame.condition == "J"]
    langloc = load_stimuli("langloc").to_frame().set_index("item_id")
    assert list(S.text) == list(langloc.loc[S.source_item, "text"])
    # W: the same words as S, each list from 12 different sentences
    assert Counter(w for t in W.text for w in t.split()) == \
        Counter(w for t in S.text for w in t.split())
    assert all(len(set(src.split(";"))) == 12 for src in W.source_item)
    assert not set(W.text) & set(S.text)
    # J: function words kept in place, content words replaced by non-words
    by_source = dict(zip(S.source_item, S.text, strict=True))
    for src, text in zip(J.source_item, J.text, strict=True):
        orig, new = by_source[src].split(), text.split()
        assert len(orig) == len(new) == 12
        for a, b in zip(orig, new, strict=True):
            if a in FUNCTION_WORDS:
                assert a == b
            else:
                assert b not in real_words, (a, b)
    assert "## Statistics" in (bundled_path("swjn") / "README.md").read_text()


def test_noun_verb_set():
    wordfreq = pytest.importorskip("wordfreq")
    s = load_stimuli("noun-verb")
    assert s.conditions == ["noun", "verb"]
    frame = s.to_frame()
    cells = frame.groupby(["condition", "category"])
    assert cells.size().to_dict() == {("noun", "abstract"): 40, ("noun", "concrete"): 40,
                                      ("verb", "abstract"): 40, ("verb", "concrete"): 40}
    assert frame.text.is_unique and all(t.isalpha() and t.islower() for t in frame.text)
    # matched on frequency (recomputed from wordfreq) and length: no pair differs
    zipf = {w: wordfreq.zipf_frequency(w, "en") for w in frame.text}
    np.testing.assert_allclose(frame.zipf, [zipf[w] for w in frame.text], atol=0.006)
    groups = {k: g for k, g in cells}
    keys = list(groups)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            for f in (lambda g: [zipf[w] for w in g.text], lambda g: g.text.str.len()):
                p = stats.ttest_ind(f(groups[a]), f(groups[b]), equal_var=False).pvalue
                assert p > 0.05, (a, b, p)
    conc = frame.groupby("category").concreteness
    assert conc.min()["concrete"] >= 3.5 and conc.max()["abstract"] <= 2.6
    concrete = s.where(category="concrete")
    assert len(concrete) == 80 and concrete.contrast("verb - noun").weights == \
        {"verb": 1.0, "noun": -1.0}
    readme = (bundled_path("noun-verb") / "README.md").read_text()
    assert "Welch" in readme and "ANOVA" in readme and "smallest p" in readme


def test_noun_verb_phrases_set():
    words = load_stimuli("noun-verb").to_frame()
    s = load_stimuli("noun-verb-phrases")
    frame = s.to_frame()
    assert frame.groupby(["condition", "category"]).size().eq(40).all()
    for row in frame.itertuples():
        frame_word = "the" if row.condition == "noun" else "to"
        assert row.text == f"{frame_word} {row.word1} {frame_word} {row.word2}"
        assert row.word1 != row.word2
    cell_of = {(r.text): (r.condition, r.category) for r in words.itertuples()}
    for (cond, cat), g in frame.groupby(["condition", "category"]):
        used = Counter(list(g.word1) + list(g.word2))
        assert set(used.values()) == {2}
        assert all(cell_of[w] == (cond, cat) for w in used)


# ---------------------------------------------------------------------- derived sets
def test_nonword_lists_match_lengths():
    pytest.importorskip("wordfreq")
    texts = ["the gardener planted a row of tomatoes in spring",
             "a cat sat on the old mat"]
    made = nonword_lists(texts, seed=0)
    assert made.conditions == ["N"] and made.item_ids == ["N001", "N002"]
    assert made.to_frame().source_item.tolist() == ["1", "2"]
    first, second = (t.split() for t in made.texts)
    # 1-2 letter words become 3 letters; the longest words pay the 4 extra letters back
    # (lengths 3 8 7 1 3 2 8 2 6 -> 3 6 6 3 3 3 7 3 6, sorted below), same total
    assert sorted(map(len, first)) == [3, 3, 3, 3, 3, 6, 6, 6, 7]
    assert sum(map(len, first)) == sum(len(w) for w in texts[0].split())
    # nothing to shorten: all 3 letters, and no word twice within a list
    assert [len(w) for w in second] == [3] * 7 and len(set(second)) == 7
    assert nonword_lists(texts, seed=0) == made
    assert nonword_lists(texts, seed=1) != made
    stim = StimulusSet({"condition": ["S", "S", "X", "X"],
                        "text": ["the big dog barked", "my cat slept", "ab cd", "ef gh"]})
    assert len(nonword_lists(stim, condition="S", seed=0)) == 2


def test_jabberwocky_keeps_function_words_and_endings():
    pytest.importorskip("wordfreq")
    made = jabberwocky(["the farmer feeds his chickens before the sun comes up",
                        "she was painting walls slowly"], seed=0)
    a = made.texts[0].split()
    assert a[0] == "the" and a[3] == "his" and a[5] == "before" and a[9] == "up"
    assert a[4].endswith("s") and a[2].endswith("s")
    b = made.texts[1].split()
    assert b[:2] == ["she", "was"] and b[2].endswith("ing") and b[4].endswith("ly")
    assert made.to_frame().n_replaced.tolist() == [5, 3]


def test_word_lists_scramble():
    texts = [" ".join(f"w{i}x{j}" for j in range(4)) for i in range(10)]
    made = word_lists(texts, seed=0)
    assert Counter(" ".join(made.texts).split()) == Counter(" ".join(texts).split())
    for t in made.texts:
        sources = [w.split("x")[0] for w in t.split()]
        assert len(set(sources)) == 4
    with pytest.raises(ValueError, match="same number of words"):
        word_lists(["a b", "a b c"])
    with pytest.raises(ValueError, match="at least as many items"):
        word_lists(["a b c", "d e f"])
    with pytest.raises(TypeError, match="not a single string"):
        word_lists("a b c")


# ---------------------------------------------------------------------- CLI
def test_cli_list_and_show(capsys):
    assert main(["stimuli", "list"]) == 0
    out = capsys.readouterr().out
    for name in BUNDLED:
        assert name in out
    assert "380 items (S 190, N 190)" in out
    assert main(["stimuli", "show", "noun-verb", "--head", "1"]) == 0
    out = capsys.readouterr().out
    assert "noun-verb: 160 items" in out and "identity:" in out and "verb (80 items)" in out
    assert main(["stimuli", "show", "langloc", "--readme"]) == 0
    assert "## Statistics" in capsys.readouterr().out


def test_cli_validate(tmp_path, capsys):
    path = tmp_path / "items.csv"
    path.write_text("sentence,cond\nthe cat sat,S\na dog ran,S\nblor fep,N\nnif tarp,N\n")
    assert main(["stimuli", "validate", str(path), "--column", "sentence=text",
                 "--column", "cond=condition", "--contrast", "S - N"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "4 items" in out and "{'S': 1.0, 'N': -1.0}" in out
    assert main(["stimuli", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert re.match(r"topobrain stimuli( validate)?: error:", err)
    assert "no 'condition' column" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["stimuli", "validate", "noun-verb", "--contrast", "verbs - noun"]) == 2
    assert "Did you mean" in capsys.readouterr().err
    assert main(["stimuli", "validate", str(path), "--column", "sentence"]) == 2
    assert "OLD=NEW" in capsys.readouterr().err


def test_cli_make(tmp_path, capsys):
    pytest.importorskip("wordfreq")
    out_path = tmp_path / "j.tsv"
    assert main(["stimuli", "make", "jabberwocky", "langloc", "--condition", "S",
                 "--seed", "3", "--out", str(out_path)]) == 0
    made = load_stimuli(out_path)
    assert made.conditions == ["J"] and len(made) == load_stimuli("langloc").counts["S"]
    prov = json.loads(Path(f"{out_path}.provenance.json").read_text())
    assert prov["seed"] == 3 and prov["source_identity"] == load_stimuli("langloc").identity
    capsys.readouterr()
    assert main(["stimuli", "make", "pseudowords", "--n", "4", "--length", "6",
                 "--seed", "1"]) == 0
    words = capsys.readouterr().out.split()
    assert len(words) == 4 and all(len(w) == 6 for w in words)
    assert main(["stimuli", "make", "nonwords", "langloc", "--condition", "S",
                 "--label", "X"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("X001\tX\t")
    assert main(["stimuli", "make", "wordlists"]) == 2
    assert "needs a SOURCE" in capsys.readouterr().err
    assert main(["stimuli", "make", "pseudowords"]) == 2
    assert "needs --n" in capsys.readouterr().err


def test_bundled_nonwords_reproduce_from_their_seed():
    """The bundled N lists are what the build script's seeded call makes (same wordfreq)."""
    wordfreq = pytest.importorskip("wordfreq")
    from importlib import metadata

    readme = (bundled_path("langloc") / "README.md").read_text()
    built = re.search(r"Built with wordfreq (\S+),", readme).group(1)
    if metadata.version("wordfreq") != built:
        pytest.skip(f"the set was built with wordfreq {built}; "
                    f"{metadata.version('wordfreq')} is installed, whose word list differs")
    assert wordfreq is not None
    langloc = load_stimuli("langloc")
    remade = nonword_lists(langloc.subset("S"), seed=np.random.default_rng(20261123))
    assert remade.texts == langloc.subset("N").texts


def test_derived_sets_are_seeded():
    pytest.importorskip("wordfreq")
    texts = load_stimuli("langloc").subset("S").texts[:24]
    for maker in (jabberwocky, word_lists):
        a, b, c = maker(texts, seed=4), maker(texts, seed=4), maker(texts, seed=5)
        assert a == b and a.texts != c.texts


# ---------------------------------------------------------------------- hostile tables
# Issue 19: any table a user may hand us - in any encoding, with any separator and
# quoting, empty cells, ragged rows, repeated ids or headers, huge items - gives a
# StimulusSet or one clear ValueError (one line), from the loader and from
# ``topobrain stimuli validate`` alike; never another exception.
_HEADERS = ["item_id", "condition", "text", "cond", "sentence", "run", "category", "", " ",
            "text", "condition", "n/a", "é", "a,b", 'q"', "a\tb", "\ufeffitem_id"]
_CELLS = st.one_of(
    st.sampled_from(["", " ", "  ", "S", "N", "S", "N", "the cat sat", "a dog", "n/a", "nan",
                     "NULL", "None", "-1", "0.5", "1e400", '"', '""', '"quoted"', "a,b",
                     "a;b", "a\tb", "a\nb", "a\r\nb", "\\", "é ñ ü", "日本語", "😀",
                     "\ufeff", "x\u2028y", "\x0b", "#comment"]),
    st.text(max_size=12),
    st.integers(1_000, 200_000).map(lambda n: ("word " * n)[: n]),  # huge items
)
_ENCODINGS = ["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16", "utf-16-le", "utf-32"]


@st.composite
def hostile_files(draw):
    if draw(st.booleans()):  # anything at all
        n_cols = draw(st.integers(1, 5))
        header = draw(st.lists(st.sampled_from(_HEADERS), min_size=n_cols, max_size=n_cols))
        n_rows = draw(st.integers(0, 7))
        rows = [draw(st.lists(_CELLS, min_size=max(0, n_cols - 1), max_size=n_cols + 1))
                for _ in range(n_rows)]
    else:  # a proper table with a few hostile cells
        header = draw(st.permutations(["item_id", "condition", "text", "run"]))
        good = {"item_id": st.from_regex(r"[a-z]{1,3}[0-9]{1,2}", fullmatch=True),
                "condition": st.sampled_from(["S", "N"]), "text": texts,
                "run": st.sampled_from(["1", "2", "", "n/a"])}
        rows = [[draw(st.one_of(good[h], _CELLS) if draw(st.integers(0, 9)) == 0
                      else good[h]) for h in header] for _ in range(draw(st.integers(2, 8)))]
    consistent = draw(st.booleans())  # read as written (else: any reading options)
    if not consistent and draw(st.booleans()) and rows:  # repeated ids
        rows = rows + [list(r) for r in rows[:2]]
    sep = draw(st.sampled_from(["\t", ",", ";", "|"]))
    quoting = draw(st.sampled_from(["minimal", "all", "none", "naive"]))
    terminator = draw(st.sampled_from(["\n", "\r\n"]))
    buf = io.StringIO()
    if quoting != "naive":
        mode = {"minimal": csv.QUOTE_MINIMAL, "all": csv.QUOTE_ALL, "none": csv.QUOTE_NONE}
        writer = csv.writer(buf, delimiter=sep, quoting=mode[quoting], escapechar="\\",
                            lineterminator=terminator)
        try:
            writer.writerows([header, *rows])
        except csv.Error:  # e.g. a lone empty field cannot be written unquoted
            quoting = "naive"
    if quoting == "naive":
        buf = io.StringIO(terminator.join(sep.join(r) for r in [header, *rows]) + terminator)
    written = draw(st.sampled_from(_ENCODINGS))
    data = buf.getvalue().encode(written, errors="replace")
    if not consistent and draw(st.integers(0, 4)) == 0:  # stray bytes: a damaged file
        data = data + draw(st.binary(min_size=1, max_size=8))
    suffix = draw(st.sampled_from([".tsv", ".csv", ".txt", ".dat"]))
    read_sep = sep if consistent else draw(st.sampled_from([None, sep, "\t", ","]))
    read_encoding = (written if consistent else
                     draw(st.sampled_from([None, written, "utf-8", "latin-1"])))
    clean = draw(st.booleans())
    return data, suffix, read_sep, read_encoding, clean


def _outcome(call):
    """A StimulusSet, or the message of the one ValueError; anything else fails."""
    try:
        return call()
    except ValueError as exc:
        message = str(exc)
        assert message.strip() and len(message.strip().splitlines()) == 1, message
        return message


@settings(max_examples=300, deadline=None)
@given(hostile_files())
def test_hostile_tables_give_a_stimulus_set_or_one_clear_value_error(case):
    import argparse
    import contextlib
    import tempfile

    from topobrain._cli.stimuli import run_validate

    data, suffix, sep, encoding, clean = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"items{suffix}"
        path.write_bytes(data)
        got = _outcome(lambda: load_stimuli(path, sep=sep, encoding=encoding, clean=clean))
        event("loaded" if isinstance(got, StimulusSet) else got.split(": ", 1)[-1][:30])
        if isinstance(got, StimulusSet):
            assert len(got) >= 2 and got.columns[:3] == ["item_id", "condition", "text"]
            assert len(set(got.item_ids)) == len(got)
            assert all(t and t == t.strip() for t in got.texts)
        else:
            assert isinstance(got, str)
        args = argparse.Namespace(source=str(path), column=None, sep=sep,
                                  encoding=encoding, clean=clean, contrast=None)
        with contextlib.redirect_stdout(io.StringIO()) as out:
            cli = _outcome(lambda: run_validate(args))
        if isinstance(got, StimulusSet):
            assert cli == 0 and out.getvalue().startswith(f"OK {path}: {len(got)} items")
        else:
            assert cli == got


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["S", "N", "verb", "noun phrase"]), texts),
                min_size=2, max_size=10),
       st.sampled_from(_ENCODINGS), st.sampled_from(["\t", ",", ";", "|"]),
       st.booleans())
def test_well_formed_tables_load_in_any_encoding_and_separator(rows, encoding, sep, bom):
    """What a spreadsheet or a script writes, read back item for item."""
    import tempfile

    rows = rows + [(cond, text + " again") for cond, text in rows]  # >= 2 per condition
    table = pd.DataFrame({"item_id": [f"it{i}" for i in range(len(rows))],
                          "condition": [c for c, _ in rows], "text": [t for _, t in rows]})
    for col in ("condition", "text"):  # what latin-1 cannot hold becomes '?'
        table[col] = [v.encode(encoding, "replace").decode(encoding) for v in table[col]]
    quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    text = table.to_csv(sep=sep, index=False, lineterminator="\n", quoting=quoting,
                        escapechar=None if sep != "\t" else "\\")
    if sep == "\t" and "\\" in text:
        return  # a TSV carries quotes literally and has no escapes to write
    data = text.encode(encoding)
    if bom and encoding == "utf-8":
        data = b"\xef\xbb\xbf" + data
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "items.txt"
        path.write_bytes(data)
        got = load_stimuli(path, sep=sep, encoding=encoding)
    assert got.item_ids == list(table["item_id"])
    assert list(got.labels) == list(table["condition"])
    assert got.texts == list(table["text"])
