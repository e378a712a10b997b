#!/usr/bin/python3
"""Times one training step (forward, backward, AdamW) of the study's MLPs and CNN in PyTorch on the
CPU, the same steps as benchmarks/bench_train_step.cpp, at 1 and 2 threads. Prints JSON lines:
{"name": ..., "threads": t, "median_ms": ...}. Used by tools/bench_vs_torch.sh."""
import json
import statistics
import sys
import time

import torch

from torch_models import cnn, mlp  # tools/torch_models.py, beside this script


def time_step(make_net, input_shape, classes, mse, threads, init_scale=1.0, repeats=5, min_seconds=0.5):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = make_net().layers
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(init_scale)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.01)
    x = torch.rand(*input_shape)
    y = torch.randint(0, classes, (input_shape[0],))
    target = torch.nn.functional.one_hot(y, classes).float()
    loss_fn = torch.nn.MSELoss() if mse else torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        out = net(x)
        loss = loss_fn(out, target if mse else y)
        loss.backward()
        opt.step()

    for _ in range(20):
        step()
    medians = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < min_seconds:
            step()
            n += 1
        medians.append((time.perf_counter() - start) / n * 1e3)
    return statistics.median(medians)


# (name as in bench_train_step, network, input shape, classes, MSE, initial weights scaled by)
CASES = [
    ("mlp_784_200_200_10_batch200_mse", lambda: mlp([784, 200, 200, 10]), (200, 784), 10, True, 8.0),
    ("mlp_784_128_512_128_47_batch128_ce", lambda: mlp([784, 128, 512, 128, 47]), (128, 784), 47, False, 8.0),
    ("cnn_mnist_batch64_ce", lambda: cnn(10), (64, 1, 28, 28), 10, False, 1.0),
]

if __name__ == "__main__":
    print(json.dumps({"torch": torch.__version__, "blas": torch.__config__.show().count("OpenBLAS") > 0}), flush=True)
    for name, make_net, shape, classes, mse, scale in CASES:
        for threads in (1, 2):
            ms = time_step(make_net, shape, classes, mse, threads, init_scale=scale)
            print(json.dumps({"name": name, "threads": threads, "median_ms": ms}), flush=True)
    sys.exit(0)
