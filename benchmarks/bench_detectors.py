"""Every detection model of torchvision, analyzed without a hand-written file: per level, its
stride, r_min and r_max of the features and of each dense head, the largest anchor and
whether the head's field covers it; with the build and analysis times.

    python benchmarks/bench_detectors.py                   # at 800x1333 (SSD 300, SSDlite 320, the
                                                           # 320 MobileNet R-CNN 320x544)
    python benchmarks/bench_detectors.py --res 512 --only retinanet_resnet50_fpn

Exits with 1 when a model fails.
"""

from __future__ import annotations

import argparse
import sys
import time

#: Models trained at a fixed size other than 800x1333 (their transform resizes to it).
DEFAULT_SIZE = {"ssd300_vgg16": "300", "ssdlite320_mobilenet_v3_large": "320",
                "fasterrcnn_mobilenet_v3_large_320_fpn": "320x544"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", default=None, help="resolution for every model (default: 800x1333,"
                        " or the model's fixed size)")
    parser.add_argument("--only", nargs="*", help="only these model names")
    args = parser.parse_args()

    import torch  # noqa: F401 - torch before anything that may import tensorflow
    import torchvision

    import rfa_toolbox as rfa
    from rfa_toolbox.formats import axes

    names = torchvision.models.list_models(module=torchvision.models.detection)
    names = [n for n in names if not args.only or n in args.only]
    failures = []
    for name in names:
        res = args.res or DEFAULT_SIZE.get(name, "800x1333")
        start = time.perf_counter()
        try:
            model = torchvision.models.get_model(name, weights=None, weights_backbone=None)
            built = time.perf_counter()
            report = rfa.analyze(model, res)
        except Exception as exc:  # a benchmark lists what fails and goes on
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        done = time.perf_counter()
        print(f"\n{name} at {res}: build {built - start:.1f} s, trace + analysis {done - built:.1f} s,"
              f" {len(report.layers)} layers")
        print(f"  {'output':26s} {'stride':>7s} {'r_min':>7s} {'r_max':>7s} {'anchor':>8s} covers")
        for out in report.outputs():
            anchor = "" if out.anchor is None else axes(tuple(round(a) for a in out.anchor))
            covers = "" if out.covers is None else "yes" if out.covers else "NO"
            print(f"  {out.label:26s} {axes(out.stride):>7s} {axes(out.r_min):>7s} {axes(out.r_max):>7s}"
                  f" {anchor:>8s} {covers}")
        for note in report.notes:
            if not note.startswith("after upsampling"):  # said of every FPN: exact values
                print(f"  note: {note}")
    print(f"\n{len(names) - len(failures)} of {len(names)} detection models analyzed")
    for failure in failures:
        print(f"  FAILED {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
