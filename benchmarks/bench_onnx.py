"""Every classification and segmentation model of torchvision exported to ONNX (PyTorch's
exporter, opset 17) and analyzed by the ONNX encoder, side by side with the JIT encoder: r,
maximal resolution, per-layer agreement (layers matched by name) and the times of the trace,
the export and the ONNX encoder.

    python benchmarks/bench_onnx.py                      # the whole zoo at 224
    python benchmarks/bench_onnx.py --only resnet18 vit_b_16 --opset 13 --no-folding

Exits with 1 when a model disagrees or fails.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path


def _build(torchvision, name: str):
    models = torchvision.models
    if name in models.list_models(module=models.segmentation):
        model = models.get_model(name, weights=None, weights_backbone=None)
    else:
        options = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
        model = models.get_model(name, weights=None, **options)
    return model.eval()


def _unique(layers) -> dict:
    counts = Counter(layer.name.split(":")[0] for layer in layers)
    return {layer.name: layer for layer in layers if counts[layer.name.split(":")[0]] == 1}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--res", type=int, default=224, help="resolution of every model")
    parser.add_argument("--only", nargs="*", help="only these model names")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset of the export")
    parser.add_argument("--no-folding", action="store_true", help="export without constant folding")
    args = parser.parse_args()

    import torch  # torch before anything that may import tensorflow
    import torchvision
    from rfa_toolbox.encoders.onnx import graph_from_onnx

    import rfa_toolbox as rfa

    class Out(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x)["out"]

    names = torchvision.models.list_models(module=torchvision.models) + torchvision.models.list_models(
        module=torchvision.models.segmentation)
    names = [n for n in names if not args.only or n in args.only]
    failures, agree, totals = [], 0, [0.0, 0.0, 0.0]
    print(f"{'model':34s} {'res':>4s} {'r (trace / onnx)':>22s} {'max res':>14s} {'layers':>9s} "
          f"{'trace s':>8s} {'export s':>8s} {'onnx s':>7s}  verdict")
    for name in names:
        res = args.res
        try:
            model = _build(torchvision, name)
            if name in torchvision.models.list_models(module=torchvision.models.segmentation):
                model = Out(model)
            start = time.perf_counter()
            traced = rfa.analyze(model, res)
            t_trace = time.perf_counter() - start
            with tempfile.TemporaryDirectory() as folder:  # models over 2 GB keep weights beside the file
                path = Path(folder) / f"{name}.onnx"
                start = time.perf_counter()
                with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                    warnings.simplefilter("ignore")
                    torch.onnx.export(model, torch.randn(1, 3, res, res), str(path), dynamo=False,
                                      opset_version=args.opset, do_constant_folding=not args.no_folding)
                t_export = time.perf_counter() - start
                start = time.perf_counter()
                report = rfa.analyze(graph_from_onnx(path, res), res)
                t_onnx = time.perf_counter() - start
        except Exception as exc:  # a benchmark reports every model, whatever fails
            failures.append(name)
            print(f"{name:34s} {res:4d} failed: {type(exc).__name__}: {str(exc)[:150]}", flush=True)
            continue
        ours, theirs = _unique(report.layers), _unique(traced.layers)
        common = [n for n in theirs if n in ours]
        same = [n for n in common if (ours[n].r_min, ours[n].r_max, ours[n].jump) ==
                (theirs[n].r_min, theirs[n].r_max, theirs[n].jump)]
        ok = (report.r, report.max_resolution) == (traced.r, traced.max_resolution) and len(same) == len(common)
        agree += ok
        failures += [] if ok else [name]
        unknown = f" unknown: {', '.join(report.unknown_ops)}" if report.unknown_ops else ""
        for i, t in enumerate((t_trace, t_export, t_onnx)):
            totals[i] += t
        print(f"{name:34s} {res:4d} {str(traced.r[0]) + ' / ' + str(report.r[0]):>22s} "
              f"{str(traced.max_resolution[0]) + '/' + str(report.max_resolution[0]):>14s} "
              f"{len(same):>4d}/{len(common):<4d} {t_trace:8.2f} {t_export:8.2f} {t_onnx:7.2f}  "
              f"{'same' if ok else 'DIFFERENT'}{unknown}", flush=True)
    print(f"\n{agree} of {len(names)} models give the same answers; trace {totals[0]:.1f} s, export {totals[1]:.1f} s,"
          f" ONNX encoder {totals[2]:.1f} s in all (ONNX / trace: {totals[2] / max(totals[0], 1e-9):.2f})")
    if failures:
        print("different or failed: " + ", ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
