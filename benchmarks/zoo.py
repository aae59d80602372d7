"""Analyze every model of a library at a resolution and print a table.

    python benchmarks/zoo.py torchvision|keras [--res 224] [--only NAME ...] [--json FILE]

Columns: model, r, max resolution, unproductive count, build seconds and encode seconds
(torchvision: trace + walk + analysis; keras: JSON to graph + analysis; building the model
is timed apart). Failures are listed with their reason.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings


def torchvision_models() -> list[tuple[str, callable]]:
    """(name, builder) of every torchvision classification and segmentation model."""
    import torch  # noqa: F401 - torch before torchvision
    import torchvision.models as models

    names = models.list_models(module=models) + models.list_models(module=models.segmentation)
    out = []
    for name in names:
        def build(name=name):
            builder = models.get_model_builder(name)
            try:
                return builder(weights=None, weights_backbone=None)
            except TypeError:
                return builder(weights=None)
        out.append((f"torchvision:{name}", build))
    return out


def keras_models() -> list[tuple[str, callable]]:
    """(name, builder of the model's JSON) of every keras.applications model."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    names = sorted(n for n in dir(keras.applications) if n[:1].isupper()
                   and callable(getattr(keras.applications, n)))
    return [(f"keras:{n}", lambda n=n: getattr(keras.applications, n)(weights=None).to_json())
            for n in names]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", choices=["torchvision", "keras"])
    parser.add_argument("--res", default="224", help="input resolution (default 224)")
    parser.add_argument("--only", nargs="*", help="only these model names (without prefix)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()

    from rfa_toolbox import analyze

    warnings.filterwarnings("ignore")
    if args.library == "keras":
        from rfa_toolbox.encoders.keras_json import graph_from_keras_json

        models = keras_models()

        def encode_one(name, built):
            return analyze(graph_from_keras_json(built, name=name), args.res)
    else:
        import torch
        from rfa_toolbox.encoders.torch_jit import encode
        from rfa_toolbox.encoders.torch_models import input_signature
        from rfa_toolbox.resolution import parse_resolution

        torch.set_grad_enabled(False)
        models = torchvision_models()

        def encode_one(name, built):
            model = built.eval()
            channels, ndim = input_signature(model)
            x = torch.rand(1, channels, *parse_resolution(args.res, ndim))
            return analyze(encode(model, x, name=name), args.res)
    if args.only:
        models = [(n, b) for n, b in models if n.split(":", 1)[1] in args.only]
    rows, failures = [], []
    print(f"{'model':34s} {'r':>9s} {'max res':>9s} {'unprod':>6s} {'build s':>8s} {'encode s':>8s}")
    for name, build in models:
        try:
            t0 = time.perf_counter()
            built = build()
            t1 = time.perf_counter()
            report = encode_one(name, built)
            t2 = time.perf_counter()
        except Exception as exc:  # noqa: BLE001 - list every failure with its reason
            failures.append((name, f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"))
            print(f"{name:34s} FAILED: {failures[-1][1]}", flush=True)
            continue
        row = {"model": name, "r": report.r[0], "max_resolution": report.max_resolution[0],
               "unproductive": len(report.unproductive), "underutilized": len(report.underutilized),
               "build_s": round(t1 - t0, 2), "encode_s": round(t2 - t1, 2),
               "unknown_ops": report.unknown_ops}
        rows.append(row)
        print(f"{name:34s} {row['r']!s:>9s} {row['max_resolution']!s:>9s} {row['unproductive']:>6d}"
              f" {row['build_s']:>8.2f} {row['encode_s']:>8.2f}"
              + (f"  unknown: {', '.join(report.unknown_ops)}" if report.unknown_ops else ""), flush=True)
        del built
    print(f"\n{len(rows)} analyzed, {len(failures)} failed")
    for name, reason in failures:
        print(f"  {name}: {reason}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "failures": failures}, f, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
