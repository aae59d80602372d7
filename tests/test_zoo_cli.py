"""`rfa zoo`: a library scan as a subprocess (a subset; the whole zoo runs in benchmarks)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from conftest import paper_values

pytest.importorskip("torchvision")
PAPER = paper_values()


def test_torchvision_subset_matches_the_published_r(rfa):
    names = ["vgg19", "mobilenet_v3_small", "mnasnet0_5", "convnext_tiny", "resnet18"]
    result = rfa("zoo", "torchvision", "--res", "224", "--format", "json", "--models", ",".join(names))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    rows = {row["model"]: row for row in data["models"]}
    assert not data["failures"] and len(rows) == 5
    for name, r in PAPER["r"].items():
        if name in rows:
            assert rows[name]["r"] == [r, r]
    assert rows["torchvision:resnet18"]["max_resolution"] == [435, 435]
    assert [row["r"] for row in data["models"]] == sorted((row["r"] for row in data["models"]), reverse=True)
    assert data["schema"] == "rfa-toolbox/zoo/v2" and data["resolution"] == [224, 224]
    # not a terminal: one line per model on standard error
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 5 and lines[0].startswith("[1/5] torchvision:") and "r " in lines[0]


def test_formats_timeout_and_unknown_names(rfa):
    result = rfa("zoo", "torchvision", "--res", "224", "--format", "csv", "--models", "resnet18")
    table = list(csv.reader(io.StringIO(result.stdout)))
    assert table[0][:3] == ["model", "r", "max resolution"] and table[1][:3] == ["torchvision:resnet18", "139", "435"]
    slow = json.loads(rfa("zoo", "torchvision", "--res", "224", "-f", "json", "--models", "vgg19",
                          "--timeout", "0.01").stdout)
    assert slow["models"] == [] and "longer than" in slow["failures"][0]["reason"]
    bad = rfa("zoo", "torchvision", "--res", "224", "--models", "resnet1800")
    assert bad.returncode == 2 and "unknown torchvision models: resnet1800" in bad.stderr
