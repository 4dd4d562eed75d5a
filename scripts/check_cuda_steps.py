#!/usr/bin/env python
"""Which training steps run on this CUDA device? Prints a '+'-joined list of the failing
augmentation steps (for ``train fit --augment-skip``) as its last line.

Why: on one GPU machine every training job died in its first batch with an asynchronous
CUDA error ("illegal memory access" / "operation not supported on global/shared address
space") that the stack trace could not place. Each step runs here in its own process with
``CUDA_LAUNCH_BLOCKING=1`` (a CUDA error poisons the process's context), so one broken
kernel is found and left out instead of losing the whole GPU call.

    python3 scripts/check_cuda_steps.py [--src src]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import sys, types
m = types.ModuleType('duchenne'); m.__path__ = [sys.argv[1]]; sys.modules['duchenne'] = m
import torch
from duchenne.train.data import AUGMENT_STEPS, AugmentConfig
name = sys.argv[2]
torch.manual_seed(0)
x = torch.rand(256, 1, 48, 48, device='cuda')
if name == 'net':
    from duchenne.train.nets import build_net
    net = build_net('smile_s').cuda().to(memory_format=torch.channels_last)
    with torch.autocast('cuda', dtype=torch.bfloat16):
        out = net(x.contiguous(memory_format=torch.channels_last))
    sum(o.float().sum() for o in out).backward()
elif name.startswith('chain'):
    from duchenne.train.data import augment
    skip = tuple(s for s in name.split(':')[1].split('+') if s)
    images = torch.randint(0, 255, (5000, 48, 48), dtype=torch.uint8, device='cuda')
    for _ in range(40):
        idx = torch.randperm(5000, device='cuda')[:256]
        y = augment(images[idx].unsqueeze(1).float().div_(255.0), AugmentConfig(skip=skip))
        float(y.sum())
else:
    for _ in range(3):
        y = AUGMENT_STEPS[name](x, AugmentConfig(noise_p=1, downup_p=1, jpeg_p=1, light_p=1, blur_p=1, erase_p=1))
        float(y.sum())
torch.cuda.synchronize()
print('ok', name)
"""


def _augment_steps(src: str) -> tuple[str, ...]:
    """The step names of ``duchenne.train.data.AUGMENT_STEPS``, imported without running
    ``duchenne/__init__`` (a GPU machine may hold only torch, numpy and OpenCV)."""
    import types

    package = types.ModuleType("duchenne")
    package.__path__ = [src]
    sys.modules.setdefault("duchenne", package)
    from duchenne.train.data import AUGMENT_STEPS

    return tuple(AUGMENT_STEPS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default=str(ROOT / "src" / "duchenne"))
    args = parser.parse_args()
    steps = list(_augment_steps(args.src))
    env = dict(os.environ, CUDA_LAUNCH_BLOCKING="1")
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", _PROBE, args.src, name],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for name in [*steps, "net"]
    }
    failed = [name for name, proc in procs.items() if not _passed(name, proc)]
    if "net" in failed:
        return 1
    # the steps chained as in training, on gathered uint8 batches; drop steps until it runs
    candidates = ["+".join(failed)]
    for extra in (
        "downup",
        "downup+blur",
        "lighting+downup+noise+jpeg",
        "lighting+blur+downup+noise+jpeg",
    ):
        candidates.append("+".join(dict.fromkeys([*failed, *extra.split("+")])))
    chains = {
        skip: subprocess.Popen(
            [sys.executable, "-c", _PROBE, args.src, f"chain:{skip}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        for skip in dict.fromkeys(candidates)
    }  # fmt: skip
    passing = [skip for skip, proc in chains.items() if _passed(f"chain skipping [{skip}]", proc)]
    if not passing:
        return 1
    print(passing[0])
    return 0


def _passed(name: str, proc: subprocess.Popen) -> bool:
    out, _ = proc.communicate(timeout=300)
    ok = proc.returncode == 0
    print(f"{name}: {'ok' if ok else 'FAILED'}")
    if not ok:
        print("   " + "\n   ".join(out.strip().splitlines()[-4:]))
    return ok


if __name__ == "__main__":
    raise SystemExit(main())
