"""Reading the files users name (architecture files, Keras JSON, structure files) safely: size
bounded, text in any Unicode encoding with a byte-order mark (UTF-8 otherwise), JSON and YAML
with duplicate keys refused, and every failure said in our words, naming the file."""

from __future__ import annotations

import errno
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import yaml

from .errors import RFAError, shown

T = TypeVar("T")

#: Files larger than this are refused before they are read (a model description is small).
MAX_BYTES = 64 * 2**20

_REASONS = {errno.EACCES: "permission denied", errno.EPERM: "permission denied",
            errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
            errno.ENOENT: "its folder does not exist", errno.ENOTDIR: "a part of the path is a file",
            errno.EISDIR: "it is a folder", errno.EROFS: "the file system is read-only",
            errno.ENAMETOOLONG: "the name is too long", errno.ELOOP: "it is a loop of links",
            errno.EEXIST: "a part of the path is a file"}

_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def reason(exc: OSError) -> str:
    """Why an operation on a file failed, in words."""
    return _REASONS.get(exc.errno or 0, (exc.strerror or "it failed").lower())


def read_file(path: Path, what: str, error: type[RFAError], read: Callable[[BinaryIO, int], T],
              limit: int | None = None) -> T:
    """``read(handle, size)`` on the regular file at ``path`` (a ``what``, for messages), with
    what is wrong said in words: a folder, a missing file, a pipe, more than ``limit`` bytes, an
    error of the system."""
    try:
        if path.is_dir():
            raise error(f"{path} is a folder, not {what}")
        if not path.exists():
            raise error(f"no such file: {path}")
        if not path.is_file():  # a named pipe or a device would block or never end
            raise error(f"{path} is not a regular file, so it is not read")
        size = path.stat().st_size
        if limit is not None and size > limit:
            raise error(f"{path} is {size / 2**20:.0f} MB; {what} above {limit // 2**20} MB is refused")
        with path.open("rb") as handle:
            return read(handle, size)
    except OSError as exc:
        raise error(f"cannot read {path}: {reason(exc)}") from None


def read_bytes(path: Path, what: str, error: type[RFAError] = RFAError, limit: int = MAX_BYTES) -> bytes:
    """The content of the file at ``path`` (a ``what``, for messages), at most ``limit`` bytes."""
    return read_file(path, what, error, lambda handle, size: handle.read(limit + 1)[:limit], limit)


def decode(data: bytes, path: Path | str, error: type[RFAError] = RFAError) -> str:
    """``data`` as text: UTF-8, or the encoding its byte-order mark names (UTF-16, UTF-32)."""
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise error(f"{path} is not a text file (neither UTF-8 nor UTF-16 or UTF-32 with a"
                    " byte-order mark)") from None
    if "\x00" in text:
        raise error(f"{path} is not a text file (it holds NUL characters)")
    return text


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML's safe loader (libyaml's when installed: 20x faster on large files), refusing a
    key given twice in one mapping."""


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=deep)
    if len(mapping) < len(node.value):  # fewer keys than entries: one came twice (or a merge)
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen and key_node.tag != "tag:yaml.org,2002:merge":
                raise yaml.constructor.ConstructorError(None, None, f"the key {shown(key)} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {shown(key)} is given twice")
        out[key] = value
    return out


#: Deeper nesting of brackets is refused (no model description comes near it).
MAX_DEPTH = 1000


def _flow_depth(text: str) -> int:
    """The deepest nesting of [ and { in ``text`` (an upper bound: quoted ones count too)."""
    brackets = re.sub(r"[^\[\]{}]+", "", text)
    depth = deepest = 0
    for c in brackets:
        depth += 1 if c in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def parse(text: str, path: Path | str, yaml_too: bool, error: type[RFAError] = RFAError) -> Any:
    """Parse ``text`` as JSON, or with ``yaml_too`` as YAML (JSON is YAML); duplicate keys,
    malformed text and structures nested too deeply for any model are refused."""
    try:
        if not yaml_too:
            return json.loads(text, object_pairs_hook=_unique)
        if _flow_depth(text) > MAX_DEPTH:  # libyaml's parser would overflow its stack
            raise RecursionError
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except json.JSONDecodeError as exc:
        raise error(f"malformed JSON in {path}, line {exc.lineno}: {exc.msg}") from None
    except ValueError as exc:  # a duplicate key, or a number of thousands of digits
        if "integer string conversion" in str(exc):
            raise error(f"{path}: a number has thousands of digits; no model has such numbers") from None
        raise error(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"malformed YAML in {path}{where}: {problem}") from None
    except RecursionError:
        raise error(f"{path} is nested too deeply to be read (thousands of levels); no model is") from None


def read_data(path: str | Path, what: str, error: type[RFAError] = RFAError) -> Any:
    """The parsed content of a JSON (by its suffix) or YAML file."""
    path = Path(path)
    text = decode(read_bytes(path, what, error), path, error)
    return parse(text, path, yaml_too=path.suffix.lower() != ".json", error=error)
