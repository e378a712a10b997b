#!/usr/bin/python3
"""The study's way of computing the empirical NTK, in PyTorch, as a baseline for bench_ntk: for
every probe point and every logit, one autograd.grad call for the gradient of that logit with
respect to all parameters; the rows are stacked into J on the host, and K = J Jᵀ.

  tools/torch_ntk_loop.py [N] [THREADS]     (defaults: 256 points, 1 thread)

Times the MNIST MLP 784-200-200-10 (init ×8) on N random points and prints one JSON line with the
seconds taken, its best over the thread counts given by tools/bench_ntk_vs_torch.sh."""
import json
import sys
import time

import torch

from torch_models import mlp  # tools/torch_models.py, beside this script


def ntk_loop(net, x):
    params = [p for p in net.parameters()]
    rows = []
    for i in range(x.shape[0]):
        out = net(x[i:i + 1])[0]
        for a in range(out.shape[0]):
            grads = torch.autograd.grad(out[a], params, retain_graph=a + 1 < out.shape[0])
            rows.append(torch.cat([g.reshape(-1) for g in grads]))
    j = torch.stack(rows)
    return j @ j.T


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = mlp([784, 200, 200, 10])
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(8.0)
    x = torch.rand(n, 784)
    ntk_loop(net, x[:2])  # warm up
    start = time.perf_counter()
    k = ntk_loop(net, x)
    seconds = time.perf_counter() - start
    print(json.dumps({"points": n, "threads": threads, "seconds": seconds, "kernel_shape": list(k.shape)}), flush=True)


if __name__ == "__main__":
    main()
