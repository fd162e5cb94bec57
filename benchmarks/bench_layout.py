"""Channels-last against the default memory layout on CPU: training steps and inference
batches of the zoo's convolutional networks (what `fast_layout` chooses, and why).

Prints the milliseconds of each and their ratio (default / channels-last; > 1: channels-last
is faster), and a JSON line.

    python benchmarks/bench_layout.py [--threads 1 2] [--resnet]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from unlearn_audit.models.zoo import build_model


def _milliseconds(
    arch: str, shape: tuple[int, int, int], batch: int, train: bool, last: bool
) -> float:
    torch.manual_seed(0)
    net = build_model(arch, 10, shape)
    x, y = torch.rand(batch, *shape), torch.randint(0, 10, (batch,))
    if last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimiser = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)

    def step() -> None:
        if train:
            net.train()
            optimiser.zero_grad()
            F.cross_entropy(net(x), y).backward()
            optimiser.step()
        else:
            net.eval()
            with torch.inference_mode():
                net(x)

    for _ in range(3):
        step()
    repeats = 20
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--resnet", action="store_true", help="also ResNet-18 on 32x32 (slow)")
    args = parser.parse_args()
    cases = [("small-cnn", (1, 8, 8)), ("small-cnn", (1, 28, 28)), ("small-cnn", (3, 32, 32))]
    if args.resnet:
        cases.append(("resnet18", (3, 32, 32)))
    rows = []
    for arch, shape in cases:
        for batch, train in ((32, True), (512, False)):
            for threads in args.threads:
                torch.set_num_threads(threads)
                default = _milliseconds(arch, shape, batch, train, last=False)
                last = _milliseconds(arch, shape, batch, train, last=True)
                what = "train step" if train else "inference"
                print(
                    f"{arch} {shape[1]}x{shape[2]}x{shape[0]} batch {batch} {what}, "
                    f"{threads} thread(s): default {default:.1f} ms, channels-last "
                    f"{last:.1f} ms: {default / last:.2f}x"
                )
                rows.append(
                    {
                        "arch": arch,
                        "shape": list(shape),
                        "batch": batch,
                        "train": train,
                        "threads": threads,
                        "default_ms": default,
                        "channels_last_ms": last,
                        "ratio": default / last,
                    }
                )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
