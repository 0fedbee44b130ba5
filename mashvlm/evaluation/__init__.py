"""The paper's general video benchmarks: MVBench (Table 1), VCG-Bench (Table 3) and zero-shot video QA
on MSRVTT-QA, MSVD-QA, TGIF-QA and ActivityNet-QA (Table 4). See docs/evaluation.md.

Shared machinery lives in :mod:`.common` (resumable answering, results files) and :mod:`.judge` (the
GPT judge); each benchmark's parsing and scoring are pure functions in its own module.
"""
