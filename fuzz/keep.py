"""Chooses what of a target's minimised corpus is committed: every seed (seed-*), then the
smallest other inputs up to 500 files or 1 MiB per target. Run after `fuzz/run.sh` and a merge
(`<target binary> -merge=1 MIN_DIR fuzz/corpus/<target>`); the rest regrows in minutes.

    python3 fuzz/keep.py MIN_DIR TARGET      # replaces fuzz/corpus/TARGET with the choice
"""

import pathlib
import shutil
import sys

MOST_FILES = 500
MOST_BYTES = 1 << 20


def main(merged, target):
    corpus = pathlib.Path(__file__).resolve().parent / "corpus" / target
    seeds = sorted(corpus.glob("seed-*"))
    others = sorted(
        (p for p in pathlib.Path(merged).iterdir() if not p.name.startswith("seed-")),
        key=lambda p: (p.stat().st_size, p.name),
    )
    kept, size = [], 0
    for p in others:
        if len(kept) >= MOST_FILES or size + p.stat().st_size > MOST_BYTES:
            break
        kept.append(p)
        size += p.stat().st_size
    for p in corpus.iterdir():
        if not p.name.startswith("seed-"):
            p.unlink()
    for p in kept:
        shutil.copy(p, corpus / p.name)
    print(f"{target}: {len(seeds)} seeds + {len(kept)} of {len(others)} minimised inputs ({size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
