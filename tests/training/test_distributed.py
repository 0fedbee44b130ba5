"""Training in 2 CPU processes (gloo) with the shipped launcher configs: the engine really wraps the model,
the losses equal one process's with the same global batch, a kill -9 of the whole process group resumes
with the same losses, and the final checkpoint is a plain model that loads in one process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from mashvlm.errors import UsageError
from mashvlm.training.config import TrainConfig
from mashvlm.training.distributed import check_engine, last_complete_checkpoint, plan_batch
from mashvlm.training.trainer import train

REPO = Path(__file__).resolve().parents[2]
STEPS = 8
LAUNCH_TIMEOUT = 300  # s; the first ZeRO-3 run on a fresh machine builds DeepSpeed's CPU comm op (make setup does)


def _config_file(world, tiny, path: Path, **overrides) -> Path:
    data = dict(train_file=str(world.instruct_file("train")), video_root=str(world.root), tiny=tiny,
                learning_rate=3e-3, per_device_train_batch_size=4, global_batch_size=8, warmup_ratio=0.0,
                lr_scheduler_type="constant", logging_steps=1, save_steps=2, seed=0, max_steps=STEPS)
    data.update(overrides)
    path.write_text(json.dumps(data))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _torchrun(config: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
            str(_free_port()), "-m", "mashvlm", "train", "--config", str(config), "--output-dir", str(out)]


def _accelerate(accelerate_config: str, config: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(REPO / accelerate_config),
            "--num_processes", "2", "--main_process_port", str(_free_port()),
            "-m", "mashvlm", "train", "--config", str(config), "--output-dir", str(out)]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start(command: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as fh:  # the child keeps its own descriptor
        return subprocess.Popen(command, cwd=REPO, env=_env(), stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own process group, to kill whole


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _run(command: list[str], out: Path) -> dict:
    log = out.with_suffix(".log")
    proc = _start(command, log)
    try:
        code = proc.wait(timeout=LAUNCH_TIMEOUT)
    finally:
        _kill_group(proc)
    assert code == 0, log.read_text()[-4000:]
    return json.loads((out / "train_log.json").read_text())


def _losses(log: dict) -> dict[int, float]:
    return {h["step"]: h["loss"] for h in log["log_history"] if "loss" in h}


@pytest.fixture(scope="module")
def one_process(small_world, tiny_model_kwargs, tmp_path_factory):
    """The reference: one process, the whole global batch of 8 per step."""
    out = tmp_path_factory.mktemp("one")
    path = _config_file(small_world, tiny_model_kwargs, out / "config.json", per_device_train_batch_size=8)
    result = train(TrainConfig.from_file(path, output_dir=str(out / "run")), progress=False)
    log = json.loads((out / "run" / "train_log.json").read_text())
    assert log["run"]["world_size"] == 1 and result.global_step == STEPS
    return _losses(log)


def _assert_same_losses(got: dict[int, float], reference: dict[int, float], steps) -> None:
    for step in steps:
        assert got[step] == pytest.approx(reference[step], rel=1e-4, abs=1e-5), (step, got, reference)


def test_ddp_in_two_processes_equals_one_process(small_world, tiny_model_kwargs, tmp_path, one_process):
    config = _config_file(small_world, tiny_model_kwargs, tmp_path / "config.json")
    log = _run(_torchrun(config, tmp_path / "ddp"), tmp_path / "ddp")
    run = log["run"]
    assert run["world_size"] == 2 and run["engine"] == "DistributedDataParallel"
    assert (run["per_device_train_batch_size"], run["gradient_accumulation_steps"]) == (4, 1)
    _assert_same_losses(_losses(log), one_process, range(1, STEPS + 1))


def test_zero3_with_the_shipped_config_equals_one_process_and_saves_a_plain_model(
        small_world, tiny_model_kwargs, tmp_path, one_process):
    # 2 per device x 2 accumulation x 2 processes: the accumulation is derived from the global batch.
    config = _config_file(small_world, tiny_model_kwargs, tmp_path / "config.json", per_device_train_batch_size=2)
    out = tmp_path / "zero3"
    log = _run(_accelerate("configs/accelerate/deepspeed_zero3.yaml", config, out), out)
    run = log["run"]
    assert run["world_size"] == 2 and run["engine"] == "DeepSpeedEngine"
    assert run["gradient_accumulation_steps"] == 2 and run["global_batch_size"] == 8
    _assert_same_losses(_losses(log), one_process, range(1, STEPS + 1))

    # The final model is consolidated (not ZeRO shards) and answers in one process.
    from mashvlm.inference import VideoChat

    final = out / "final"
    assert (final / "model.safetensors").is_file() and not list(final.glob("global_step*"))
    chat = VideoChat.from_pretrained(final, device="cpu")
    video = small_world.root / json.loads(small_world.instruct_file("train").read_text())[0]["video"]
    answer = chat.answer(video, "What is the person doing?", max_new_tokens=8)
    assert isinstance(answer, str) and answer.strip()


def test_kill_9_of_the_process_group_resumes_with_the_same_losses(small_world, tiny_model_kwargs, tmp_path,
                                                                  one_process):
    config = _config_file(small_world, tiny_model_kwargs, tmp_path / "config.json", max_steps=STEPS + 4)
    out = tmp_path / "killed"
    proc = _start(_torchrun(config, out), tmp_path / "killed.log")
    try:
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        while last_complete_checkpoint(out) is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        workers = _children(proc.pid)
    finally:
        _kill_group(proc)  # kill -9 of the launcher's process group (torchrun puts workers in their own)
    assert len(workers) == 2, workers
    deadline = time.monotonic() + 10
    while any(_running(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_running(w) for w in workers), "a worker outlived kill -9 of its launcher"
    killed_at = last_complete_checkpoint(out)
    assert killed_at is not None, (tmp_path / "killed.log").read_text()[-4000:]
    assert not (out / "final").exists()  # killed mid-run, not after it
    resumed_from = int(killed_at.rsplit("-", 1)[1])
    assert resumed_from < STEPS + 4

    log = _run(_torchrun(config, out), out)
    assert log["global_step"] == STEPS + 4 and log["run"]["engine"] == "DistributedDataParallel"
    assert log["run"]["resumed_from"] == killed_at  # the steps before it were not trained again
    whole = _run(_torchrun(config, tmp_path / "whole"), tmp_path / "whole")
    assert whole["run"]["resumed_from"] is None
    _assert_same_losses(_losses(log), _losses(whole), range(1, STEPS + 5))
    _assert_same_losses(_losses(whole), one_process, range(1, STEPS + 1))


def test_global_batch_derives_the_accumulation_or_says_what_fits():
    assert plan_batch(4, 8, 128).gradient_accumulation_steps == 4
    assert plan_batch(16, 8, 128).gradient_accumulation_steps == 1
    assert plan_batch(4, 2, None, accumulation=3).global_batch_size == 24
    with pytest.raises(UsageError, match=r"not a multiple of .* 48; use per_device_train_batch_size in \[1, 2, 4, 8, 16\]"):
        plan_batch(6, 8, 128)
    with pytest.raises(UsageError, match="contradicts global_batch_size"):
        plan_batch(4, 8, 128, accumulation=2)
    with pytest.raises(UsageError, match="multiple of 3 processes"):
        plan_batch(1, 3, 128)


def test_a_global_batch_that_cannot_be_made_is_refused_before_training(small_world, tiny_model_kwargs, tmp_path):
    from mashvlm.cli import main

    config = _config_file(small_world, tiny_model_kwargs, tmp_path / "config.json", global_batch_size=6)
    assert main(["train", "--config", str(config), "--output-dir", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_launches_that_would_train_wrongly_are_refused(monkeypatch):
    plan = plan_batch(4, 2, 8)
    trainer = SimpleNamespace(args=SimpleNamespace(world_size=1), is_deepspeed_enabled=False, is_fsdp_enabled=False)
    with pytest.raises(UsageError, match="started 2 processes but training sees 1"):
        check_engine(trainer, plan)  # each process would train alone on the whole data
    trainer.args.world_size = 2
    check_engine(trainer, plan)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(UsageError, match="asked for FSDP"):
        check_engine(trainer, plan)  # accelerate's silent fall-back to DDP on the CPU


def test_the_shipped_launcher_configs_name_what_exists():
    from mashvlm.modeling.tiny import tiny_model, tiny_processor_and_config

    zero3 = yaml.safe_load((REPO / "configs/accelerate/deepspeed_zero3.yaml").read_text())
    assert zero3["distributed_type"] == "DEEPSPEED"
    ds = json.loads((REPO / zero3["deepspeed_config"]["deepspeed_config_file"]).read_text())
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"]  # a consolidated final model
    assert yaml.safe_load((REPO / "configs/accelerate/ddp.yaml").read_text())["distributed_type"] == "MULTI_GPU"
    fsdp = yaml.safe_load((REPO / "configs/accelerate/fsdp.yaml").read_text())
    assert fsdp["distributed_type"] == "FSDP"
    wrap = set(fsdp["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"].split(","))
    _, config = tiny_processor_and_config(["a tiny corpus"], image_size=32, patch_size=8, num_frames=4,
                                          text_hidden=64, text_layers=2)
    present = {type(m).__name__ for m in tiny_model(config, seed=0).modules()}
    assert wrap == {"LlamaDecoderLayer", "CLIPEncoderLayer"} and wrap <= present


def test_an_fsdp_launch_on_the_cpu_is_refused_not_run_as_ddp(small_world, tiny_model_kwargs, tmp_path):
    """accelerate builds FSDP for accelerator devices only; on the CPU it would train with DDP, silently."""
    config = _config_file(small_world, tiny_model_kwargs, tmp_path / "config.json")
    out = tmp_path / "fsdp"
    proc = _start(_accelerate("configs/accelerate/fsdp.yaml", config, out), tmp_path / "fsdp.log")
    try:
        code = proc.wait(timeout=LAUNCH_TIMEOUT)
    finally:
        _kill_group(proc)
    log = (tmp_path / "fsdp.log").read_text()
    assert code != 0 and "asked for FSDP" in log, log[-4000:]
    assert not list(out.glob("checkpoint-*")) and not (out / "final").exists()
