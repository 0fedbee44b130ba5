"""Training throughput of ``mashvlm demo --jobs N``: N processes with an equal share of the threads, each
training its own model, against one process with all the threads, as a ratio measured side by side.

The model and batches are the study's (``StudyConfig().tiny``, batch 32, as in ``shared_prompt_prefix.py``);
a step is forward, backward and AdamW with the tower frozen and the shared prompt prefix, as the study trains.
Each setting runs for a fixed wall time in fresh processes, in alternating rounds; throughput is all its
processes' steps per wall-clock second (the cores are the resource, so wall time is the measure here).

    python benchmarks/parallel_jobs.py [--jobs 2 --seconds 20 --rounds 3 --variant mash]
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import statistics
import time

import torch
from shared_prompt_prefix import ANSWERS, QUESTIONS, batches

from mashvlm.modeling.tiny import tiny_model, tiny_processor_and_config
from mashvlm.study.config import VARIANTS, StudyConfig


def steps_in(seconds: float, threads: int, variant: str, batch: int, start, result) -> None:
    torch.set_num_threads(threads)
    processor, config = tiny_processor_and_config(QUESTIONS + ANSWERS, **StudyConfig().tiny, **VARIANTS[variant][1])
    model = tiny_model(config).train()
    model.freeze_vision_tower()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    data = batches(processor, config, batch, 4)

    def step(i: int) -> None:
        model(**data[i % len(data)], share_prompt_prefix=True).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for i in range(2):  # warm-up
        step(i)
    start.wait()  # every process of the setting starts timing together
    steps, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        step(steps)
        steps += 1
    result.put(steps / (time.perf_counter() - began))


def throughput(processes: int, threads: int, args: argparse.Namespace) -> float:
    ctx = multiprocessing.get_context("spawn")
    start, result = ctx.Barrier(processes), ctx.Queue()
    workers = [ctx.Process(target=steps_in, args=(args.seconds, threads, args.variant, args.batch, start, result))
               for _ in range(processes)]
    for w in workers:
        w.start()
    rates = [result.get() for _ in workers]
    for w in workers:
        w.join()
    return sum(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0, help="timed wall time per process and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (the machine's speed drifts)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="mash")
    args = parser.parse_args()

    threads = torch.get_num_threads()
    share = max(1, threads // args.jobs)  # as `mashvlm demo --jobs` gives each job
    one, many = [], []
    for _ in range(args.rounds):
        one.append(throughput(1, threads, args))
        many.append(throughput(args.jobs, share, args))
    print(f"{platform.processor() or platform.machine()}, {threads} threads, torch {torch.__version__}, "
          f"variant {args.variant}, batch {args.batch}")
    print(f"1 process x {threads} threads     {statistics.median(one):6.2f} steps/s (median of {args.rounds} rounds)")
    print(f"{args.jobs} processes x {share} thread(s)  {statistics.median(many):6.2f} steps/s in all")
    print(f"ratio                        {statistics.median(m / o for m, o in zip(many, one, strict=True)):6.2f}x")


if __name__ == "__main__":
    main()
