"""A RegNetX-3.2GF backbone with its four outputs (C2-C5), analyzed at a detection
resolution of 800x1333 (height x width).

    python examples/regnet_detection.py
"""

from rfa_toolbox import analyze
from rfa_toolbox.zoo.regnet import PRESETS, regnet_graph

graph = regnet_graph(PRESETS["regnet_x_3_2gf"], name="regnet_x_3_2gf backbone", backbone=True)

if __name__ == "__main__":
    report = analyze(graph, "800x1333")
    print(f"r = {report.r}, max resolution = {report.max_resolution},"
          f" fully utilized at 800x1333: {report.fully_utilized}")
    for level, name in zip(("C2", "C3", "C4", "C5"), graph.outputs):
        row = report.layer(name)
        print(f"{level}: {name:40s} r_min {row.r_min}  r_max {row.r_max}")
