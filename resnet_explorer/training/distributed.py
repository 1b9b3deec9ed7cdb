"""Training on more than one process: PyTorch's DistributedDataParallel under torchrun.

    torchrun --standalone --nproc_per_node 2 -m resnet_explorer train --model resnet20 --steps 200

torchrun starts one process per worker and sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
MASTER_PORT; `world_from_env` reads them (WORLD_SIZE above 1 means distributed; a plain `python -m
resnet_explorer train` has none and stays one process, with no process group). `process_group`
joins the group (gloo on CPU, nccl on CUDA, each process on cuda:LOCAL_RANK) and leaves it in a
`finally`. The trainer reads the group through `current_world`.

What each rank does (the trainer, following torchvision's reference scripts):
- batch: `batch_size` is per process; a step trains on a global batch of world_size x batch_size.
- data: every rank holds the whole in-memory data set and draws the same seeded permutation; step
  by step it takes the global batch's indices and uses its own slice (`shard`), so the union of
  the ranks' images in a step is a one-process run's batch of world_size x batch_size.
- every decision that ends the loop is collective: the logged loss and accuracy are all-reduced
  (divergence is judged on those global values), and a stop request is all-reduced (MAX) before
  every step, so all ranks stop after the same step.
- rank 0 alone emits events: it writes the run folder, prints, and records the probes.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from ..devices import available_devices, resolve_device
from ..limits import MAX_WORLD_SIZE

BACKENDS = {"cpu": "gloo", "cuda": "nccl"}  # torch.distributed's backend for each device type it supports
GROUP_TIMEOUT = timedelta(minutes=30)  # how long a collective waits for a missing rank before it fails


class DistributedError(RuntimeError):
    """The process group could not be joined (rendezvous, network): one line for the CLI."""


@dataclass(frozen=True)
class World:
    """This process's place among the processes training together.

    Attributes:
        rank: global rank, 0 .. size-1; rank 0 writes, prints and probes.
        local_rank: rank on this machine (the GPU index on CUDA).
        size: number of processes (WORLD_SIZE); 1 is an ordinary run.
        backend: "gloo" or "nccl" once a group is joined, else None.
    """

    rank: int = 0
    local_rank: int = 0
    size: int = 1
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the one that writes, prints and probes."""
        return self.rank == 0


def _env_int(environ: Mapping[str, str], name: str, low: int, high: int) -> int:
    text = environ.get(name, "")
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} in the environment is not a whole number (torchrun sets it)") from None
    if not low <= value <= high:
        raise ValueError(f"{name}={value} in the environment is outside {low}..{high}")
    return value


def world_from_env(environ: Mapping[str, str] | None = None) -> World:
    """The world torchrun describes in the environment; `World()` (one process) when WORLD_SIZE is unset or 1.

    Raises:
        ValueError: WORLD_SIZE, RANK or LOCAL_RANK is malformed or out of range (more than
            `MAX_WORLD_SIZE` processes, a rank not below the world size).
    """
    environ = os.environ if environ is None else environ
    if not environ.get("WORLD_SIZE"):
        return World()
    size = _env_int(environ, "WORLD_SIZE", 1, MAX_WORLD_SIZE)
    if size == 1:
        return World()
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if not environ.get(name):
            raise ValueError(f"WORLD_SIZE is {size} but {name} is not set: start the processes with torchrun")
    rank = _env_int(environ, "RANK", 0, size - 1)
    local_rank = _env_int(environ, "LOCAL_RANK", 0, size - 1)
    return World(rank=rank, local_rank=local_rank, size=size)


def local_device(device: str, world: World) -> torch.device:
    """The device this process trains on: `resolve_device` for one process; with several, cuda is
    cuda:LOCAL_RANK, cpu is cpu, and mps is refused (torch.distributed has no backend for it).

    Raises:
        ValueError: mps with several processes, a cuda index given with several processes (each
            process takes cuda:LOCAL_RANK), fewer GPUs than processes on this machine, or a device
            that `resolve_device` refuses.
    """
    if not world.distributed:
        return resolve_device(device)
    name = str(device).strip().lower()
    if name == "auto":
        name = available_devices()[0]
    if name == "mps":
        raise ValueError(f"mps cannot train with {world.size} processes (torch.distributed has no mps backend): "
                         "use one process, or --device cpu")
    if name.startswith("cuda:"):
        raise ValueError(f"with {world.size} processes each one takes cuda:LOCAL_RANK: pass --device cuda, "
                         f"not {device}")
    if name == "cuda":
        resolve_device("cuda")  # a clear error when CUDA is absent
        if world.local_rank >= torch.cuda.device_count():
            raise ValueError(f"local rank {world.local_rank} needs cuda:{world.local_rank} but this machine has "
                             f"{torch.cuda.device_count()} GPU(s): start at most that many processes per machine")
        return torch.device("cuda", world.local_rank)
    return resolve_device(name)


@contextmanager
def process_group(device: str = "auto", environ: Mapping[str, str] | None = None) -> Iterator[World]:
    """Join torchrun's process group for the duration of the block (nothing to join for one process).

    The backend follows the device: gloo for cpu, nccl for cuda (after `torch.cuda.set_device`
    to cuda:LOCAL_RANK). The group is destroyed on the way out, even on error.

    Args:
        device: the run's device ("auto", "cpu", "cuda"); see `local_device`.
        environ: the environment to read (default `os.environ`).

    Yields:
        This process's `World`, with `backend` set when a group was joined.

    Raises:
        ValueError: a malformed environment or an unusable device (`world_from_env`, `local_device`).
        DistributedError: the group could not be joined.
    """
    world = world_from_env(environ)
    if not world.distributed:
        yield world
        return
    dev = local_device(device, world)
    backend = BACKENDS[dev.type]
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    try:
        dist.init_process_group(backend, init_method="env://", rank=world.rank, world_size=world.size,
                                timeout=GROUP_TIMEOUT)
    except (RuntimeError, ValueError, OSError) as err:
        text = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DistributedError(f"could not join the {world.size} processes ({backend}): {text}") from None
    try:
        yield World(rank=world.rank, local_rank=world.local_rank, size=world.size, backend=backend)
    finally:
        # DistributedDataParallel sits in reference cycles that keep the group alive past
        # destroy_process_group; gloo then tore it down at interpreter exit and aborted the process
        # ("terminate called without an active exception") in ~1 launch of 16 here, whenever a peer
        # was still connected. Collecting them first: 0 of 26.
        gc.collect()
        dist.destroy_process_group()


def current_world() -> World:
    """The world of the process group this process has joined; `World()` when it has joined none."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    return World(rank=dist.get_rank(), local_rank=local_rank, size=dist.get_world_size(),
                 backend=dist.get_backend())


def shard(perm: torch.Tensor, step_in_epoch: int, batch_size: int, world: World) -> torch.Tensor:
    """This rank's indices for a step: slice `rank` of the step's global batch of `world.size * batch_size`
    indices of `perm` (the permutation every rank draws alike)."""
    start = (step_in_epoch * world.size + world.rank) * batch_size
    return perm[start:start + batch_size]


def all_reduce_sum(values: torch.Tensor, world: World) -> torch.Tensor:
    """The sum over ranks of `values` (returned, the input untouched); `values` itself for one process."""
    if not world.distributed:
        return values
    total = values.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def any_rank(flag: bool, world: World, device: torch.device) -> bool:
    """Whether `flag` is true on any rank (an all-reduce MAX); every rank must call it at the same point."""
    if not world.distributed:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def broadcast_buffers(module: nn.Module, world: World) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DistributedDataParallel keeps parameters equal on all ranks, but each rank's BatchNorm updates
    its running statistics from its own slice of the batch; after this every rank holds rank 0's
    model, the one rank 0 evaluates and saves.
    """
    if not world.distributed:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)
