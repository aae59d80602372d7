"""Memory and time of reading a large ONNX file: the ONNX encoder (weights' bytes skipped while
reading) next to ``onnx.load`` (the whole file parsed), each in a fresh process, on a VGG-like
model of about a gigabyte written here (constant weights).

    python benchmarks/bench_onnx_memory.py            # a ~1 GB model
    python benchmarks/bench_onnx_memory.py --mb 300

Prints the file size, the peak resident memory of each process and the ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

WRITE = textwrap.dedent("""
    import sys, numpy as np
    from onnx import TensorProto, helper, numpy_helper, save
    mb, path = int(sys.argv[1]), sys.argv[2]
    nodes, inits, x, channels = [], [], "x", 3
    for i in range(5):
        w = f"w{i}"
        inits.append(numpy_helper.from_array(np.full((64, channels, 3, 3), 0.01, np.float32), w))
        nodes += [helper.make_node("Conv", [x, w], [f"c{i}"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                   name=f"/block{i}/conv/Conv"),
                  helper.make_node("MaxPool", [f"c{i}"], [f"p{i}"], kernel_shape=[2, 2], strides=[2, 2],
                                   name=f"/block{i}/pool/MaxPool")]
        x, channels = f"p{i}", 64
    units = mb * 2**20 // 4 // (64 * 7 * 7)
    inits.append(numpy_helper.from_array(np.full((64 * 7 * 7, units), 0.01, np.float32), "fc"))
    nodes += [helper.make_node("Flatten", [x], ["f"], name="/flatten/Flatten"),
              helper.make_node("MatMul", ["f", "fc"], ["y"], name="/fc/MatMul")]
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 224, 224])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
""")

MEASURE = textwrap.dedent("""
    import resource, sys, time
    which, path = sys.argv[1], sys.argv[2]
    import onnx
    from rfa_toolbox.encoders.onnx import graph_from_onnx
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if which == "rfa":
        graph = graph_from_onnx(path, 224)
        what = f"{len(graph)} layers"
    else:
        model = onnx.load(path)
        what = f"{len(model.graph.node)} nodes"
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{(peak - base) / 1024:.0f} {peak / 1024:.0f} {seconds:.2f} {what}")
""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1000, help="size of the model's weights in MB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.onnx"
        subprocess.run([sys.executable, "-c", WRITE, str(args.mb), str(path)], check=True)
        size = path.stat().st_size / 2**20
        print(f"file: {size:.0f} MB")
        found = {}
        for which in ("rfa", "onnx.load"):
            done = subprocess.run([sys.executable, "-c", MEASURE, which, str(path)], capture_output=True, text=True,
                                  check=True)
            grown, peak, seconds, *what = done.stdout.split()
            found[which] = float(grown)
            print(f"{which:10s} peak memory grew by {grown} MB (peak {peak} MB) in {seconds} s ({' '.join(what)})")
        print(f"memory grown / file size: rfa {found['rfa'] / size:.3f}, onnx.load {found['onnx.load'] / size:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
