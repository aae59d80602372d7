"""The searchable convolution and the modules the search leaves behind (needs torch)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .rates import Pads, Rate, RFSearchWarning, estimate_rate, expand_rate, frozen_axes, shifted_pads

log = logging.getLogger("rfa_toolbox.rfsearch")

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_FUNCTIONS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def _base_type(module: nn.Module) -> Optional[type[Any]]:
    for kind in CONV_TYPES:
        if isinstance(module, kind):
            return kind
    return None


def is_searchable(module: nn.Module) -> bool:
    """A Conv1d/2d/3d (or a subclass that keeps their forward) with a kernel larger than 1 on
    some axis and initialized parameters."""
    kind = _base_type(module)
    if kind is None or type(module).forward is not kind.forward:
        return False
    if type(module)._conv_forward is not kind._conv_forward:
        return False
    if isinstance(module.weight, nn.parameter.UninitializedParameter):
        return False
    return any(k > 1 for k in module.kernel_size)


def pad(x: torch.Tensor, pads: Pads, mode: str = "zeros") -> torch.Tensor:
    """``x`` padded by (before, after) per spatial axis (the last len(pads) dims) in the conv
    padding mode ``mode``; negative amounts crop."""
    ndim = len(pads)
    if any(b < 0 or a < 0 for b, a in pads):
        for i, (before, after) in enumerate(pads):
            dim = x.dim() - ndim + i
            start, stop = max(0, -before), x.shape[dim] - max(0, -after)
            if start or stop != x.shape[dim]:
                x = x.narrow(dim, start, stop - start)
        pads = tuple((max(0, b), max(0, a)) for b, a in pads)
    if not any(b or a for b, a in pads):
        return x
    flat = [n for before, after in reversed(pads) for n in (before, after)]
    return F.pad(x, flat, mode=_PAD_MODES[mode])


def _conv_pads(conv: nn.Module) -> tuple[Pads, bool]:
    """The (before, after) padding per axis of ``conv`` and whether it is ``padding="same"``."""
    n = len(conv.kernel_size)
    if isinstance(conv.padding, str):
        if conv.padding == "same":
            totals = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
            return tuple((t // 2, t - t // 2) for t in totals), True
        return ((0, 0),) * n, False
    return tuple((p, p) for p in conv.padding), False


def set_conv_geometry(conv: nn.Module, dilation: Rate, padding: Sequence[int]) -> None:
    """Set the dilation and the symmetric padding of a torch conv in place (including the
    reversed padding its forward uses for non-zero padding modes)."""
    conv.dilation = tuple(int(d) for d in dilation)
    conv.padding = tuple(int(p) for p in padding)
    conv._reversed_padding_repeated_twice = tuple(p for p in reversed(conv.padding) for _ in range(2))


class PaddedConv(nn.Module):
    """A convolution after an explicit, possibly asymmetric or negative (cropping) padding:
    what a searched or merged conv becomes when torch's symmetric ``padding`` cannot express
    its padding. ``conv`` itself has padding 0."""

    def __init__(self, conv: nn.Module, pads: Pads, mode: str = "zeros"):
        super().__init__()
        self.conv = conv
        self.pads: Pads = tuple((int(p[0]), int(p[1])) for p in pads)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(pad(x, self.pads, self.mode))

    def extra_repr(self) -> str:
        return f"pads={self.pads}, mode={self.mode!r}"


def dilated_conv(conv: nn.Module, dilation: Rate) -> nn.Module:
    """``conv`` with the dilation ``dilation`` and the padding that keeps its output shape,
    changed in place (parameters kept); a `PaddedConv` around it when that padding is not
    symmetric."""
    dilation = tuple(int(d) for d in dilation)
    if tuple(conv.dilation) == dilation:
        return conv
    base_pads, same = _conv_pads(conv)
    pads = shifted_pads(conv.kernel_size, tuple(conv.dilation), base_pads, dilation, same)
    if same:
        conv.dilation = dilation
        return conv
    if all(b == a >= 0 for b, a in pads):
        set_conv_geometry(conv, dilation, [b for b, _ in pads])
        return conv
    mode = conv.padding_mode
    set_conv_geometry(conv, dilation, [0] * len(pads))
    conv.padding_mode = "zeros"
    return PaddedConv(conv, pads, mode)


class SearchConv(nn.Module):
    """A searchable convolution: the wrapped ``conv``'s weight and bias applied with several
    dilations (``rates``) and summed with weights w_i = |alpha_i| / sum_j |alpha_j|.

    Each branch is padded so that the output shape is the wrapped conv's (the window keeps
    its offset: ((s - 1) + d (k - 1)) // 2 for an odd kernel padded that way). ``dilation`` is
    the current estimate, around which the branches were expanded; ``alphas`` holds
    ``num_branches`` values, of which the first ``len(rates)`` are used. The rates, the
    estimate, the step counter and whether the conv still searches are buffers
    (``state_rates``, ``state_dilation``, ``state_step``, ``state_searching``), so they are in
    the state dict.
    """

    def __init__(self, conv: nn.Module, config: Mapping[str, Any], dilation: Optional[Rate] = None,
                 searching: bool = True, name: str = ""):
        super().__init__()
        if not is_searchable(conv):
            raise TypeError(f"{name or type(conv).__name__}: only Conv1d/2d/3d with a kernel larger"
                            " than 1 on some axis can be searched")
        self.conv = conv
        self.name = name
        self.ndim = len(conv.kernel_size)
        self.kernel_size = tuple(conv.kernel_size)
        self.num_branches = int(config["num_branches"])
        self.exp_rate = float(config["exp_rate"])
        self.init_alphas = float(config["init_alphas"])
        self.mmin, self.mmax = int(config["mmin"]), int(config["mmax"])
        self._base_dilation = tuple(conv.dilation)
        self._base_pads, self._same = _conv_pads(conv)
        self._conv = _FUNCTIONS[self.ndim]
        weight = conv.weight
        self.alphas = nn.Parameter(torch.full((self.num_branches,), self.init_alphas,
                                              dtype=weight.dtype, device=weight.device))
        # the search state, as buffers so that a checkpoint restores it (and tracing still works);
        # the Python copies below are what forward reads
        long = dict(dtype=torch.int64, device=weight.device)
        self.register_buffer("state_rates", torch.zeros(self.num_branches, self.ndim, **long))
        self.register_buffer("state_dilation", torch.zeros(self.ndim, **long))
        self.register_buffer("state_step", torch.zeros((), **long))
        self.register_buffer("state_searching", torch.zeros((), **long))
        self.dilation: Rate = tuple(int(d) for d in (dilation or conv.dilation))
        if len(self.dilation) != self.ndim:
            raise ValueError(f"{name}: {len(self.dilation)} dilations for a {self.ndim}-D conv")
        self.rates: list[Rate] = []
        self._searching = bool(searching)
        self._step = int(config.get("step", 0))
        self.expand()

    @property
    def searching(self) -> bool:
        """Whether the controller's `step` changes this conv (False: fixed multi-branch)."""
        return self._searching

    @searching.setter
    def searching(self, value: bool) -> None:
        self._searching = bool(value)
        self._store()

    @property
    def search_step(self) -> int:
        """The controller's step counter, kept here so that it is in the state dict."""
        return self._step

    @search_step.setter
    def search_step(self, value: int) -> None:
        self._step = int(value)
        self._store()

    def _store(self) -> None:
        """Copy the Python state into the buffers."""
        with torch.no_grad():
            table = torch.zeros_like(self.state_rates)
            if self.rates:
                table[: len(self.rates)] = torch.tensor(self.rates, dtype=table.dtype)
            self.state_rates.copy_(table)
            self.state_dilation.copy_(torch.tensor(self.dilation, dtype=table.dtype))
            self.state_step.fill_(self._step)
            self.state_searching.fill_(int(self._searching))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        table = self.state_rates.tolist()
        rates = [tuple(int(d) for d in row) for row in table if all(d > 0 for d in row)]
        if rates:  # (a state dict without the search state leaves it alone)
            self.rates = rates
            self.dilation = tuple(int(d) for d in self.state_dilation.tolist())
            self._step = int(self.state_step.item())
            self._searching = bool(self.state_searching.item())

    # -- geometry -------------------------------------------------------------------------------

    def pads(self, rate: Rate) -> Pads:
        """(before, after) padding per axis of the branch with dilation ``rate``."""
        return shifted_pads(self.kernel_size, self._base_dilation, self._base_pads, rate, self._same)

    @property
    def padding(self) -> tuple:
        """The padding of the current estimate ``dilation`` per axis: an int when symmetric,
        else (before, after)."""
        return tuple(b if b == a else (b, a) for b, a in self.pads(self.dilation))

    # -- search -----------------------------------------------------------------------------------

    def weights(self) -> torch.Tensor:
        """The normalized branch weights |alpha_i| / sum_j |alpha_j| of the active branches."""
        alphas = self.alphas[: len(self.rates)].abs()
        return alphas / alphas.sum()

    def estimate(self) -> Rate:
        """The dilation the current branch weights point to (computed in float32, rounded with
        Python's round, clipped to [mmin, mmax]); nothing is changed."""
        with torch.no_grad():
            alphas = self.alphas[: len(self.rates)].detach().float().abs()
            weights = (alphas / alphas.sum()).tolist()
        return estimate_rate(weights, self.rates, self.kernel_size, self.dilation, self.mmin, self.mmax)

    def set_dilation(self, dilation: Rate) -> None:
        """Make ``dilation`` the current estimate (the branches are not changed: see `expand`)."""
        dilation = tuple(int(d) for d in dilation)
        if len(dilation) != self.ndim:
            raise ValueError(f"{self.name}: {len(dilation)} dilations for a {self.ndim}-D conv")
        self.dilation = dilation
        self._store()

    def expand(self) -> list[Rate]:
        """Branches around the current estimate; alphas reset to ``init_alphas``. Warns when an
        axis cannot move (exp_rate * d < 0.5)."""
        stuck = frozen_axes(self.dilation, self.kernel_size, self.exp_rate)
        if stuck:
            warnings.warn(
                f"rfsearch: the dilation of {self.name or 'a conv'} cannot move on axis"
                f" {', '.join(map(str, stuck))}: exp_rate {self.exp_rate} x dilation"
                f" {self.dilation} < 0.5 gives a single branch; raise exp_rate", RFSearchWarning,
                stacklevel=3)
        self.rates = expand_rate(self.dilation, self.kernel_size, self.exp_rate, self.num_branches,
                                 self.mmin, self.mmax)
        with torch.no_grad():
            self.alphas.fill_(self.init_alphas)
        self._store()
        log.info("rfsearch: %s expanded around %s to %s", self.name, self.dilation, self.rates)
        return self.rates

    # -- forward ------------------------------------------------------------------------------

    def _branch(self, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                rate: Rate) -> torch.Tensor:
        conv = self.conv
        pads = self.pads(rate)
        if conv.padding_mode == "zeros" and all(b == a >= 0 for b, a in pads):
            return self._conv(x, weight, bias, conv.stride, [b for b, _ in pads], rate, conv.groups)
        return self._conv(pad(x, pads, conv.padding_mode), weight, bias, conv.stride, 0, rate,
                          conv.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.weights()
        weight, bias = self.conv.weight, self.conv.bias
        out = None
        for i, rate in enumerate(self.rates):
            # w_i * conv(x; W, b, d_i) == conv(x; w_i W, w_i b, d_i): the scaling is on the small
            # kernel, so no branch output has to be kept for the backward pass
            w = weights[i]
            y = self._branch(x, weight * w, None if bias is None else bias * w, rate)
            out = y if out is None else out + y
        return out

    # -- after the search ---------------------------------------------------------------------

    def to_conv(self) -> nn.Module:
        """The wrapped conv with the current estimate as its dilation (plain, no extra cost);
        a `PaddedConv` around it when the padding is not symmetric. Parameters are kept."""
        return dilated_conv(self.conv, self.dilation)

    def merged(self) -> nn.Module:
        """One dense conv equal to the weighted sum of the branches: branch i's kernel is
        scattered with step d_i into a kernel wide enough for every branch, offset so that all
        windows start where they did. A `PaddedConv` when the padding is not symmetric."""
        conv = self.conv
        weight = conv.weight.detach()
        with torch.no_grad():
            w = self.weights().detach().to(weight.dtype)
            all_pads = [self.pads(rate) for rate in self.rates]
            before = [max(p[a][0] for p in all_pads) for a in range(self.ndim)]
            after = [max(p[a][1] for p in all_pads) for a in range(self.ndim)]
            size = [before[a] + max(r[a] * (k - 1) - p[a][0] for r, p in zip(self.rates, all_pads)) + 1
                    for a, k in enumerate(self.kernel_size)]
            kernel = weight.new_zeros(*weight.shape[:2], *size)
            for wi, rate, pads in zip(w, self.rates, all_pads):
                index = tuple(slice(before[a] - pads[a][0],
                                    before[a] - pads[a][0] + rate[a] * (k - 1) + 1, rate[a])
                              for a, k in enumerate(self.kernel_size))
                kernel[(slice(None), slice(None)) + index] += wi * weight
            bias = None if conv.bias is None else conv.bias.detach() * w.sum()
        symmetric = all(b == a >= 0 for b, a in zip(before, after))
        conv_type = _base_type(conv)
        assert conv_type is not None  # searchable convs are Conv1d/2d/3d
        dense = conv_type(
            conv.in_channels, conv.out_channels, tuple(size), stride=conv.stride,
            padding=tuple(before) if symmetric else 0, dilation=1, groups=conv.groups,
            bias=bias is not None, padding_mode=conv.padding_mode if symmetric else "zeros",
            device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            dense.weight.copy_(kernel)
            if bias is not None:
                dense.bias.copy_(bias)
        dense.train(self.training)
        if symmetric:
            return dense
        return PaddedConv(dense, tuple(zip(before, after)), conv.padding_mode)

    def extra_repr(self) -> str:
        return (f"dilation={self.dilation}, rates={self.rates}, searching={self.searching},"
                f" step={self.search_step}")
