"""Errors that describe bad input; the CLI prints them as one line and exits with code 2."""

from __future__ import annotations

import numbers
from typing import Any


def shown(value: Any) -> str:
    """``value`` for a message: its repr, cut short (a 5,000-digit number is not shown whole)."""
    if not isinstance(value, bool) and isinstance(value, numbers.Integral) and abs(int(value)) > 10**30:
        return "a number with more than 30 digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class RFAError(Exception):
    """Base class of every error caused by what the user gave us (model, file, option)."""


class GraphError(RFAError):
    """The graph is malformed: unknown node, duplicate name, wrong number of axes."""


class CycleError(GraphError):
    """The graph has a cycle; the message names the nodes on it."""

    def __init__(self, nodes: list[str]):
        self.nodes = nodes
        loop = " -> ".join([*nodes, nodes[0]])
        super().__init__(f"the graph has a cycle: {loop}; a network must be acyclic")


class UnknownOpError(GraphError):
    """One or more op names are not known; the message lists them and the known ones."""

    def __init__(self, unknown: list[str], known: list[str]):
        self.unknown = unknown
        super().__init__(
            f"unknown op{'s' if len(unknown) > 1 else ''}: {', '.join(sorted(set(unknown)))}"
            f" (known ops: {', '.join(known)})"
        )


class SpecError(RFAError):
    """An architecture file cannot be read: missing, malformed, or with invalid fields."""


class ResolutionError(RFAError):
    """The input resolution is not a positive integer per spatial axis."""
