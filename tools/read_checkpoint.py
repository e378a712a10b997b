#!/usr/bin/python3
"""Reads a grokscope checkpoint with a small reader of the safetensors format written here (the
`safetensors` package is not in Debian) and loads it into the equivalent PyTorch module with
load_state_dict(strict=True). Exits non-zero with the reason when anything does not fit.

  tools/read_checkpoint.py CKPT.safetensors RECIPE_WIDTHS...   e.g.  ckpt/step_0.safetensors 784 200 200 10
  tools/read_checkpoint.py CKPT.safetensors --cnn CLASSES [IN_CHANNELS IMAGE_SIZE]
Prints one line per tensor (name, dtype, shape, Frobenius norm) on success."""
import json
import struct
import sys

import numpy as np
import torch

from torch_models import cnn, mlp  # tools/torch_models.py, beside this script

DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = memoryview(blob)[8 + n:]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors, header.get("__metadata__", {})


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    tensors, metadata = read_safetensors(argv[1])
    if argv[2] == "--cnn":
        net = cnn(*[int(a) for a in argv[3:]])
    else:
        net = mlp([int(a) for a in argv[2:]])
    net.load_state_dict(tensors, strict=True)
    for name, t in net.state_dict().items():
        print(f"{name} {str(t.dtype).removeprefix('torch.')} {list(t.shape)} {t.double().norm().item():.9g}")
    print(f"metadata {json.dumps(metadata, sort_keys=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
