#!/usr/bin/env python3
"""Compare a `delinea demo` run's median DSC with the README's replicates.

Usage: demo_spread.py README.md DEMO/results.json

The README's demo block is the `summary.md` of `delinea demo --replicates 3`: per domain and
method, the mean (smallest-largest) of the replicates' medians. This run's replicate 0 (what
`delinea demo` computes) is checked cell by cell against that range, and the cells outside are
listed. They are not failed on: on another CPU (or one of the same name with other cache sizes,
which change how the matrix products block their sums) the floating-point detail differs, and
three replicates' range is not a bound on a fourth draw. On the README's own machine replicate 0
is one of the replicates and every cell lies in its range.

Exit 1 when the README block cannot be read, or names other domains or methods than the demo.
"""

import json
import re
import sys

START, END = "<!-- demo-summary:start -->", "<!-- demo-summary:end -->"
CELL = re.compile(r"^(-?[0-9.]+|inf) \((-?[0-9.]+|inf)–(-?[0-9.]+|inf)\)")


def fail(message):
    print(f"demo_spread: {message}", file=sys.stderr)
    sys.exit(1)


def readme_block(path):
    text = open(path, encoding="utf-8").read()
    if START not in text or END not in text:
        fail(f"{path}: no {START} … {END} block")
    return text.split(START, 1)[1].split(END, 1)[0]


def readme_ranges(block):
    """{(domain, method): (mean, low, high)} from the block's first table, and its CPU."""
    cpu = re.search(r" on (.+?); source ", block)
    lines = [l for l in block.splitlines() if l.startswith("|")]
    if len(lines) < 3:
        fail("README demo block: no table")
    methods = [c.strip() for c in lines[0].strip("|").split("|")][1:]
    ranges = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == "domain":
            break  # the next table (what each query labelled)
        if len(cells) != len(methods) + 1:
            break
        for method, cell in zip(methods, cells[1:]):
            m = CELL.match(cell)
            if not m:
                fail(f"README demo block: {cells[0]} {method}: {cell!r} is not `mean (low–high)`")
            ranges[(cells[0], method)] = tuple(float(x) for x in m.groups())
    if not ranges:
        fail("README demo block: no `mean (low–high)` cells")
    return ranges, cpu.group(1) if cpu else None


def demo_medians(path):
    results = json.load(open(path, encoding="utf-8"))
    medians = {}
    for d in results["domains"]:
        for m in d["methods"]:
            summary = m["metrics"][0]["summary"]
            medians[(d["domain"]["id"], m["method"])] = None if summary is None else float(summary["median"])
    return medians, results["cpu"]


def main():
    if len(sys.argv) != 3:
        fail(__doc__.strip().splitlines()[2])
    ranges, readme_cpu = readme_ranges(readme_block(sys.argv[1]))
    medians, cpu = demo_medians(sys.argv[2])
    if set(ranges) != set(medians):
        fail(f"README cells {sorted(set(ranges) ^ set(medians))} are not both in the README and the demo")
    outside = []
    for key in sorted(ranges):
        _, low, high = ranges[key]
        value = medians[key]
        # The README rounds to 3 decimals: allow that rounding.
        if value is None or not (low - 0.0005 <= value <= high + 0.0005):
            outside.append(f"{key[0]} {key[1]}: {value} outside {low:.3f}–{high:.3f}")
    print(
        f"demo_spread: {len(ranges) - len(outside)} of {len(ranges)} median DSCs of this demo lie within the "
        f"README's range over its replicates (README: {readme_cpu}; here: {cpu})"
    )
    for line in outside:
        print(f"  {line}")
    if outside:
        print("demo_spread: cells outside the range are listed, not failed on (see the script's doc)")


if __name__ == "__main__":
    main()
