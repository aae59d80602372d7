"""RF-Next dilation search on a synthetic 1-D task, then the searched model analyzed by rfa.

The target at time t is x[t - D] + x[t + D] (D = 8 by default) and the input x is an AR(1)
signal with coefficient 0.9: neighbouring samples are correlated, so a branch with a larger
dilation already predicts better than a smaller one and the gradients of the branch weights
point the search towards D. The model is one 3-tap conv (dilation 1 to start with):

    python examples/rfsearch_temporal.py                       # search, write searched.json
    python examples/rfsearch_temporal.py --lag 1 --out d1.json # control: stays at dilation 1

It runs the search (progress bar), writes the structure file, retrains the plain conv with the
searched dilation, and analyzes the multi-branch and the final model with rfa. As a model file,
``build_model()`` gives the untrained conv, so the structure can be applied before analysis.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch import nn

import rfa_toolbox
from rfa_toolbox.formats import format_table
from rfa_toolbox.rfsearch import RFSearch, apply_structure, format_structure

LENGTH = 128  # samples per training sequence
MARGIN = 16   # positions at each end left out of the loss (zero padding there)


def build_model() -> nn.Module:
    """One 3-tap conv without bias: x[t - d], x[t], x[t + d] with d the searched dilation."""
    return nn.Sequential(nn.Conv1d(1, 1, 3, padding=1, bias=False))


def ar1(batch: int, length: int, generator: torch.Generator, phi: float = 0.9) -> torch.Tensor:
    """An AR(1) signal with unit variance: x[t] = phi x[t-1] + sqrt(1 - phi^2) e[t]."""
    noise = torch.randn(batch, 1, length, generator=generator) * (1 - phi ** 2) ** 0.5
    x = torch.empty(batch, 1, length)
    x[..., 0] = torch.randn(batch, 1, generator=generator)
    for t in range(1, length):
        x[..., t] = phi * x[..., t - 1] + noise[..., t]
    return x


def batch(lag: int, generator: torch.Generator, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs x and targets y[t] = x[t - lag] + x[t + lag]."""
    x = ar1(size, LENGTH + 2 * lag, generator)
    return x[..., lag:lag + LENGTH], x[..., :LENGTH] + x[..., 2 * lag:]


def train(model: nn.Module, optimizer: torch.optim.Optimizer, lag: int,
          generator: torch.Generator, iterations: int) -> float:
    """``iterations`` Adam steps on fresh batches; the last loss."""
    for _ in range(iterations):
        x, y = batch(lag, generator)
        loss = (model(x) - y)[..., MARGIN:-MARGIN].pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


def search(lag: int, iterations: int, seed: int, out: Path, console: Console) -> nn.Module:
    """Search the dilation of `build_model` (3 branches, the default 11-step schedule), write
    the structure file and return the multi-branch model."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = build_model()
    rfsearch = RFSearch(model, {"num_branches": 3})          # before the optimizer
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    conv = model[0]
    epochs = rfsearch.config["max_step"]
    with Progress(TextColumn("[bold]search"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("search", total=epochs, info="")
        for _ in range(epochs):
            loss = train(model, optimizer, lag, generator, iterations)
            weights = ", ".join(f"{w:.2f}" for w in conv.weights().tolist())
            rates = ", ".join(str(r[0]) for r in conv.rates)
            rfsearch.step(optimizer)                          # estimate, then expand
            bar.update(task, advance=1, info=f"loss {loss:.3f} rates [{rates}] w [{weights}]"
                                             f" -> d {conv.dilation[0]}")
    rfsearch.save(out)
    console.print(f"structure written to {out}:")
    console.print(format_structure(out), highlight=False)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lag", type=int, default=8, help="D: the target is x[t-D] + x[t+D]")
    parser.add_argument("--iterations", type=int, default=40, help="training steps per search epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("searched.json"), help="structure file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    console = Console(highlight=False, soft_wrap=True)

    searched = search(args.lag, args.iterations, args.seed, args.out, console)
    # the multi-branch model: r_min follows the smallest branch, r_max the largest
    report = rfa_toolbox.analyze(searched, LENGTH)
    console.print("\n[bold]the model during the search[/bold] (every branch is a conv):")
    print(format_table(report), end="")
    out = report.layers[-1]  # the sum of the branches
    console.print(f"output of the searchable conv: r_min {out.r_min[0]} (smallest branch),"
                  f" r_max {out.r_max[0]} (largest branch)")

    # retrain the plain conv with the searched dilation (no extra cost at inference)
    final = apply_structure(build_model(), args.out)
    optimizer = torch.optim.Adam(final.parameters(), lr=0.05)
    loss = train(final, optimizer, args.lag, torch.Generator().manual_seed(args.seed + 1), 200)
    weights = ", ".join(f"{w:.2f}" for w in final[0].weight.flatten().tolist())
    console.print(f"\n[bold]retrained[/bold] with dilation {final[0].dilation[0]}: loss {loss:.4f},"
                  f" taps [{weights}] at t-{final[0].dilation[0]}, t, t+{final[0].dilation[0]}")
    report = rfa_toolbox.analyze(final, LENGTH)
    print(format_table(report), end="")
    found = final[0].dilation[0]
    console.print(f"searched dilation {found} for D = {args.lag}"
                  f" ({'within' if abs(found - args.lag) <= 1 else 'NOT within'} D +/- 1)")
    return 0 if abs(found - args.lag) <= 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
