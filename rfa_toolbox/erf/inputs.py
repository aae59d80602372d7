"""What an ERF measurement feeds a model: trained weights from a file (never unpickling code)
and input samples, from a folder of images or Gaussian noise. Imports torch when called."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import RFAError, shown
from ..files import reason

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
#: Weight files larger than this are refused (a state dict of a model this tool can trace
#: on this kind of machine is far smaller).
MAX_WEIGHTS_BYTES = 8 * 2**30


def load_weights(module: Any, path: str | Path) -> None:
    """Load a state dict into ``module``: ``.pt``/``.pth``/``.bin`` with
    ``torch.load(weights_only=True)`` (tensors and plain containers only, no code) or
    ``.safetensors``. Keys that do not match are an error naming them."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise RFAError(f"--weights {shown(str(path))}: no such file")
    if path.stat().st_size > MAX_WEIGHTS_BYTES:
        raise RFAError(f"--weights {path}: larger than {MAX_WEIGHTS_BYTES // 2**30} GB, refused")
    state: Any
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            with warnings.catch_warnings():  # torch's remarks on the file are not the user's business
                warnings.simplefilter("ignore")
                state = torch.load(path, map_location="cpu", weights_only=True)
    except ImportError:
        raise RFAError("reading .safetensors needs the safetensors package: pip install safetensors") from None
    except OSError as exc:
        raise RFAError(f"cannot read --weights {path}: {reason(exc)}") from None
    except Exception:  # unpickling errors, truncated zips, bad headers: never their text
        raise RFAError(f"--weights {path} is not a state dict rfa can read safely: save"
                       " model.state_dict() with torch.save (or safetensors); pickled objects and"
                       " code are never loaded") from None
    for key in ("state_dict", "model"):  # a training checkpoint
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RFAError(f"--weights {path} holds no state dict (a mapping of names to tensors)")
    own = module.state_dict()
    stripped = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel
    if set(stripped) == set(own) != set(state):
        state = stripped
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = [f"{len(keys)} {what} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
                 for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise RFAError(f"--weights {path} does not fit the model: {'; '.join(parts)} keys")
    wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        k = wrong[0]
        raise RFAError(f"--weights {path} does not fit the model: {k} has shape"
                       f" {list(state[k].shape)}, the model's {list(own[k].shape)}"
                       + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""))
    module.load_state_dict(state)


def image_files(directory: str | Path) -> list[Path]:
    """The image files of a folder, sorted by name."""
    folder = Path(directory)
    if not folder.is_dir():
        raise RFAError(f"--images {shown(str(folder))}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise RFAError(f"--images {folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def image_batches(files: Sequence[Path], shape: tuple[int, ...], batch: int, mean: Sequence[float],
                  std: Sequence[float], dtype: Any) -> Iterator[Any]:
    """Batches of the images resized to ``shape`` (channels, height, width) and normalized."""
    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError

    channels, height, width = shape
    if channels not in (1, 3):
        raise RFAError(f"images feed models with 1 or 3 input channels; this one takes {channels}")
    if len(mean) != channels or len(std) != channels:
        raise RFAError(f"the model takes {channels} input channel(s): give --mean and --std with one value"
                       f" each per channel (now {len(mean)} and {len(std)}; ImageNet's are for 3)")
    for start in range(0, len(files), batch):
        arrays = []
        for path in files[start:start + batch]:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    opened = Image.open(path)
                    opened.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise RFAError(f"the image {path} is too large to open safely") from None
            except (OSError, UnidentifiedImageError, ValueError):
                raise RFAError(f"cannot read the image {path}: not an image file PIL can open") from None
            try:
                with opened:
                    image = opened.convert("RGB" if channels == 3 else "L").resize(
                        (width, height), Image.Resampling.BILINEAR)
                    pixels = np.asarray(image, dtype=np.float64) / 255.0
            except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
                raise RFAError(f"cannot read the image {path}: not an image file PIL can open") from None
            pixels = pixels.reshape(height, width, channels).transpose(2, 0, 1)
            arrays.append((pixels - np.asarray(mean)[:, None, None]) / np.asarray(std)[:, None, None])
        yield torch.from_numpy(np.stack(arrays)).to(dtype)


def noise_batches(count: int, shape: tuple[int, ...], batch: int, seed: int, dtype: Any) -> Iterator[Any]:
    """``count`` samples of standard Gaussian noise of ``shape`` (without batch), in batches."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    for start in range(0, count, batch):
        yield torch.randn(min(batch, count - start), *shape, generator=generator, dtype=torch.float64).to(dtype)
