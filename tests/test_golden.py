"""Golden files: the JSON (and text) outputs of `rfa` on the bundled examples, byte for byte.

They pin what the commands print, so that a refactoring that changes an output is caught.
After an intended change of an output, regenerate them with

    RFA_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py

and review the difference in git before committing it. Timings (the zoo's ``build_s`` and
``encode_s``) vary from run to run and are replaced by 0 before the comparison.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from conftest import EXAMPLES, ROOT

GOLDEN = ROOT / "tests" / "golden"
UPDATE = bool(os.environ.get("RFA_UPDATE_GOLDEN"))

#: name of the golden file -> the arguments of rfa
CASES: dict[str, str] = {
    "analyze_vgg_style.json": "analyze examples/vgg_style.yaml --res 224 -f json",
    "analyze_branches_dilation.json": "analyze examples/branches_dilation.yaml --res 224 -f json",
    "analyze_upsampling_two_outputs.json": "analyze examples/upsampling_two_outputs.yaml --res 800x1333 -f json",
    "suggest_vgg_style.json": "suggest examples/vgg_style.yaml --res 224 -f json",
    "suggest_branches_dilation.json": "suggest examples/branches_dilation.yaml --res 96 -f json",
    "structure_show.txt": "structure show examples/searched_structure.json",
    "analyze_two_inputs.json": "analyze examples/two_inputs.py --res 64 -f json",
    "analyze_segmentation_dict.json": "analyze examples/segmentation_dict.py --res 128 -f json",
    "analyze_resnet18.json": "analyze torchvision:resnet18 --res 160 -f json",
    "suggest_mobilenet_v3_large.json": "suggest torchvision:mobilenet_v3_large --res 224 -f json",
    "zoo_torchvision.json": "zoo torchvision --res 224 -f json --models resnet18,squeezenet1_1,mnasnet0_5",
    "analyze_keras_mobilenet.json": "analyze keras:MobileNet --res 224 -f json",
}


def _needs(args: list[str]) -> str | None:
    """The framework a case needs: torchvision for PyTorch models, tensorflow for Keras."""
    if args[0] == "zoo" or any(a.startswith("torchvision:") or a.endswith(".py") for a in args):
        return "torchvision"
    if any(a.startswith("keras:") for a in args):
        return "tensorflow"
    return None


TIMINGS = re.compile(r'("(?:build|encode)_s": )[0-9.e+-]+')


def _normalized(text: str) -> str:
    return TIMINGS.sub(r"\g<1>0", text)


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_matches_the_golden_file(rfa, name):
    args = CASES[name].split()
    framework = _needs(args)
    if framework:
        pytest.importorskip(framework)
    result = rfa(*args, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    if name.endswith(".json"):
        json.loads(result.stdout)  # what programs read must stay JSON
    text = _normalized(result.stdout)
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"no golden file {path.name}: run with RFA_UPDATE_GOLDEN=1 once"
    assert text == path.read_text(encoding="utf-8"), f"rfa {' '.join(args)} changed its output"


def test_every_golden_file_has_a_case():
    assert sorted(p.name for p in GOLDEN.iterdir()) == sorted(CASES)


def test_examples_exist():
    for args in CASES.values():
        for arg in args.split():
            if arg.startswith("examples/"):
                assert (EXAMPLES.parent / arg).is_file(), arg
