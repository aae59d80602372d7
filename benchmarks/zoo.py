"""Analyze every model of a library and print a table with build and encode times.

    python benchmarks/zoo.py torchvision|keras|timm [--res 224] [--only NAME ...] [--json FILE]

The same scan as `rfa zoo`, with the timings in the table: build seconds (constructing the
model without weights) and encode seconds (torch: trace + walk + analysis; keras: JSON to
graph + analysis). Exits with 1 when a model fails.
"""

import argparse
import json
import sys

from rfa_toolbox.encoders import zoo_scan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", choices=zoo_scan.LIBRARIES)
    parser.add_argument("--res", default="224", help="input resolution (default 224)")
    parser.add_argument("--only", nargs="*", help="only these model names (without prefix)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per model")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    names = zoo_scan.model_names(args.library)
    if args.only:
        names = [n for n in names if n.split(":", 1)[1] in args.only]
    rows, failures = zoo_scan.scan(names, args.res, args.timeout, progress="none")
    print(f"{'model':42s} {'r':>7s} {'max res':>8s} {'unprod':>6s} {'build s':>8s} {'encode s':>8s}")
    for row in sorted(rows, key=lambda row: row.model):
        r, top = "x".join(map(str, row.r)), "x".join(map(str, row.max_resolution))
        print(f"{row.model:42s} {r:>7s} {top:>8s} {row.unproductive:>6d}"
              f" {row.build_s:>8.2f} {row.encode_s:>8.2f}"
              + (f"  unknown: {', '.join(row.unknown_ops)}" if row.unknown_ops else ""))
    print(f"\n{len(rows)} analyzed, {len(failures)} failed")
    for name, reason in failures:
        print(f"  {name}: {reason}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": [r.to_dict() for r in rows], "failures": failures}, f, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
