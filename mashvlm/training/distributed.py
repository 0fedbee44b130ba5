"""Training in several processes: the global batch, which process writes, and the final save.

Distribution itself belongs to the engines (accelerate launch with DeepSpeed ZeRO-3, FSDP or DDP; see
``configs/``): the Trainer picks up what the launcher set. This module holds what the recipe adds:

- :func:`plan_batch`: the user states the global batch (the paper's 128); the gradient accumulation is
  derived from it, the per-device batch and the number of processes, and a global batch that they cannot
  make is refused with the values that would.
- :func:`save_final`: every process takes part in the save (ZeRO-3 gathers its shards), the main process
  alone writes, into a temporary folder that replaces ``final`` when complete.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UsageError
from ..files import atomic_path


def world_size_from_env() -> int:
    """The number of processes the launcher started (torchrun, accelerate launch and deepspeed set it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Whether this is the process that writes shared files (global rank 0), known before any process group."""
    return os.environ.get("RANK", "0") == "0"


@dataclass(frozen=True)
class BatchPlan:
    global_batch_size: int
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    world_size: int

    def describe(self) -> str:
        return (f"global batch {self.global_batch_size} = {self.per_device_train_batch_size} per device x "
                f"{self.gradient_accumulation_steps} accumulation steps x {self.world_size} processes")

    def to_dict(self) -> dict:
        return asdict(self)


def plan_batch(per_device: int, world_size: int, global_batch_size: int | None = None,
               accumulation: int = 1) -> BatchPlan:
    """``global = per_device x accumulation x world_size``. Without ``global_batch_size`` the stated
    accumulation is used; with it, the accumulation is derived, and must agree with a stated one (other
    than the default 1)."""
    if per_device < 1 or world_size < 1 or accumulation < 1:
        raise UsageError(f"per_device_train_batch_size ({per_device}), gradient_accumulation_steps "
                         f"({accumulation}) and the number of processes ({world_size}) must be positive")
    if global_batch_size is None:
        return BatchPlan(per_device * accumulation * world_size, per_device, accumulation, world_size)
    per_step = per_device * world_size
    if global_batch_size < 1 or global_batch_size % per_step:
        fits = [b for b in range(1, global_batch_size + 1) if global_batch_size % (b * world_size) == 0]
        hint = (f"per_device_train_batch_size in {fits}" if fits else
                f"a global batch that is a multiple of {world_size} processes")
        raise UsageError(
            f"global_batch_size {global_batch_size} is not a multiple of per_device_train_batch_size "
            f"{per_device} x {world_size} processes = {per_step}; use {hint}"
        )
    derived = global_batch_size // per_step
    if accumulation not in (1, derived):
        raise UsageError(
            f"gradient_accumulation_steps {accumulation} contradicts global_batch_size {global_batch_size} "
            f"(which needs {derived} with {per_device} per device x {world_size} processes); set only one"
        )
    return BatchPlan(global_batch_size, per_device, derived, world_size)


def engine_name(trainer) -> str:
    """The class that wraps the model for training: DeepSpeedEngine, DistributedDataParallel,
    FullyShardedDataParallel, or the model's own class in one process."""
    return type(trainer.model_wrapped).__name__


def save_final(trainer, processor, final: Path) -> None:
    """Save the trained model (and processor) as ``final``, from every process: consolidated safetensors
    (ZeRO-3 gathers the shards; needs ``stage3_gather_16bit_weights_on_model_save``), written by the main
    process only into a temporary folder that replaces ``final`` once complete."""
    from accelerate.utils import broadcast_object_list

    main = trainer.is_world_process_zero()
    with contextlib.ExitStack() as stack:
        partial = [stack.enter_context(atomic_path(final, directory=True)) if main else None]
        if trainer.accelerator.num_processes > 1:
            broadcast_object_list(partial)
        trainer.save_model(str(partial[0]))
        if main:
            processor.save_pretrained(partial[0])
        trainer.accelerator.wait_for_everyone()  # every process's part is written before the rename


def _flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def check_engine(trainer, plan: BatchPlan) -> None:
    """Refuse the setups that would otherwise train silently in the wrong way: processes that did not join
    one process group (each would train alone on the whole data), or a launcher's DeepSpeed / FSDP
    configuration that the Trainer did not take up (it would fall back to plain data parallelism)."""
    world = trainer.args.world_size
    if world != plan.world_size:
        raise UsageError(
            f"the launcher started {plan.world_size} processes but training sees {world}; launch with "
            "`accelerate launch --config_file configs/accelerate/...` or `torchrun --nproc-per-node N`"
        )
    for variable, enabled, engine in (("ACCELERATE_USE_DEEPSPEED", trainer.is_deepspeed_enabled, "DeepSpeed"),
                                      ("ACCELERATE_USE_FSDP", trainer.is_fsdp_enabled, "FSDP")):
        if _flag(variable) and not enabled:
            raise UsageError(f"the launcher asked for {engine} ({variable}) but the Trainer did not set it up "
                             "(FSDP needs GPUs: accelerate falls back to DDP on the CPU)")


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest ``checkpoint-N`` whose save finished: the Trainer writes ``trainer_state.json`` last, so a
    run killed in the middle of a save resumes from the checkpoint before, not from a partial one."""
    steps = []
    for path in Path(output_dir).glob("checkpoint-*"):
        suffix = path.name.removeprefix("checkpoint-")
        if suffix.isdigit() and (path / "trainer_state.json").is_file():
            steps.append((int(suffix), path))
    return str(max(steps)[1]) if steps else None


def die_with_launcher() -> None:
    """Have Linux kill this worker when its launcher dies. torch's elastic launcher (torchrun, accelerate
    launch) starts every worker in a session of its own, so a ``kill -9`` of the launcher, or of its whole
    process group, would leave the workers training on, unseen, into the same output folder as a rerun."""
    if "LOCAL_RANK" not in os.environ or not sys.platform.startswith("linux"):
        return  # not launched as a worker, or no prctl
    launcher = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    if libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) != 0:
        return
    if launcher == 1 or os.getppid() != launcher:  # the launcher died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


def end_process_group() -> None:
    """Destroy the process group the Trainer started (if any) before the process exits: left to the
    interpreter's shutdown, gloo's threads can abort a finished worker (``terminate called without an
    active exception``, exit code -6), and torchrun then reports the whole run as failed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
