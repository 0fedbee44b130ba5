"""``mashvlm demo`` end to end on a tiny setting: world, tower, two trainings, UNSCENE, report, resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mashvlm.cli import main
from mashvlm.errors import UsageError
from mashvlm.study.config import ABLATION_TABLES, PRESETS, VARIANTS, StudyConfig, variant_tuning
from mashvlm.study.report import format_ablations, plot_ablations
from mashvlm.study.run import _saved_config, one_question_of_each_kind, paired_statistics, summarise
from mashvlm.study.stats import paired_difference, student_t_two_sided_p
from mashvlm.synth import NEUTRAL_SCENES, WorldConfig
from mashvlm.synth import templates as T

TINY = [
    "--set", 'world={"height": 32, "width": 32, "frames": 8, "n_train": 32, "n_test_usual": 8, '
             '"n_test_unusual": 8, "n_test_scene_only": 8, "n_test_motion": 8, "n_train_motion": 8}',
    "--set", 'tiny={"image_size": 32, "patch_size": 8, "num_frames": 4, "vision_hidden": 32, '
             '"vision_layers": 2, "text_hidden": 64, "text_layers": 2, "heads": 4}',
    "--set", "tower_steps=3", "--set", "language_steps=3", "--set", "motion_open_steps=2",
    "--set", "motion_steps=2", "--set", "motion_open_learning_rate=0.002", "--set", "motion_in_training=true",
    "--set", "batch_size=8",
    "--set", "max_new_tokens=12", "--steps", "3",
]


@pytest.mark.slow
def test_demo_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress", *TINY]) == 0
    printed = capsys.readouterr().out
    assert VARIANTS["baseline"][0] in printed and VARIANTS["mash"][0] in printed
    assert "unusual-context action" in printed and "usual context" in printed and "motion control" in printed

    results = json.loads((out / "study_results.json").read_text())
    assert [(r["variant"], r["seed"]) for r in results["runs"]] == [("baseline", 0), ("mash", 0)]
    for run in results["runs"]:
        # 8 unusual videos x 2 pairs + 8 scene-only videos x 1 pair; every pair scored, none dropped.
        assert run["counts"]["pairs_scored"] == 24 and run["counts"]["failed_videos"] == 0
        assert run["counts"]["missing_predictions"] == 0
        for key in ("scene_only_action", "unusual_action", "unusual_scene", "average"):
            assert 0.0 <= run["binary"][key] <= 100.0
        b = run["binary"]
        assert b["average"] == pytest.approx((b["scene_only_action"] + b["unusual_action"] + b["unusual_scene"]) / 3)
        assert run["judge"].startswith("offline-lexical")
        preds = (out / "runs" / run["variant"] / "seed0" / "predictions.jsonl").read_text().splitlines()
        assert len(preds) == 8 * 5 + 8 * 3  # 4 binary + 1 open-ended per unusual video, 2 + 1 per scene-only
        # Both controls: 8 videos x (action pair + scene pair), every pair scored.
        assert run["counts"]["control_pairs_scored"] == {"usual": 16, "motion": 16}
        motion = (out / "runs" / run["variant"] / "seed0" / "motion_predictions.jsonl").read_text().splitlines()
        assert len(motion) == 8 * 4
        m = run["motion"]
        assert 0.0 <= m["action"] <= 100.0 and m["average"] == pytest.approx((m["action"] + m["scene"]) / 2)
    # Table 10: MASH-VLM answers the binary questions again with one kind of video token only.
    baseline_run, mash_run = results["runs"]
    assert baseline_run["token_types"] is None and set(mash_run["token_types"]) == {"spatial", "temporal"}
    for kind in ("spatial", "temporal"):
        lines = (out / "runs" / "mash" / "seed0" / f"predictions_{kind}_tokens.jsonl").read_text().splitlines()
        assert len(lines) == 8 * 4 + 8 * 2  # the binary questions only
        assert all(0.0 <= v <= 100.0 for v in mash_run["token_types"][kind].values())
    table10 = results["token_types"]
    assert table10["seeds"] == [0]
    assert table10["both"]["unusual_action"]["mean"] == mash_run["binary"]["unusual_action"]
    assert table10["temporal"]["scene_only_action"]["mean"] == mash_run["token_types"]["temporal"]["scene_only_action"]
    assert "Table 10: video tokens at inference" in printed
    assert results["runs"][0]["options"]["rope_variant"] == "distinct"
    assert results["runs"][1]["options"]["rope_variant"] == "harmonic"
    assert (out / "study.png").stat().st_size > 1000 and (out / "study_table.txt").is_file()
    assert not (out / "study_ablations.png").exists()  # baseline and MASH-VLM complete no ablation table
    # The motion-control questions are the world's test_motion videos, asked with every other label.
    questions = [json.loads(line) for line in (out / "unscene" / "motion_questions.jsonl").read_text().splitlines()]
    world = {r["video_id"]: r for r in map(json.loads, (out / "world" / "unscene" / "motion_control.jsonl")
                                           .read_text().splitlines())}
    assert {q["video_id"] for q in questions} == set(world) and len(world) == 8
    assert all(world[q["video_id"]]["scene"] in NEUTRAL_SCENES for q in questions)
    assert results["paired"]["mash"]["motion"]["action"]["n"] == 1  # one seed: no t
    # Both variants start from the one text-pre-trained language model, warm up on the motion videos with its
    # vocabulary, and then train on the training split and the motion videos from the warmed-up model.
    open_only = json.loads((out / "train_motion_open.json").read_text())
    assert [r["QA"] for r in open_only] == [[qa for qa in r["QA"] if qa["q"] == T.Q_ACTION][:1] for r in
                                           json.loads((out / "world" / "instruct" / "train_motion.json").read_text())]
    assert all(len(r["QA"]) == 1 and r["QA"][0]["a"].startswith("The person is") for r in open_only)
    mixed = json.loads((out / "train_with_motion.json").read_text())
    motion = json.loads((out / "world" / "instruct" / "train_motion.json").read_text())
    assert mixed == [*json.loads((out / "world" / "instruct" / "train.json").read_text()),
                     *[{**r, "QA": one_question_of_each_kind(r["QA"])} for r in motion]]
    assert results["language_model"]["answer_acc"] >= 0.0
    for variant in ("baseline", "mash"):
        run_dir = out / "runs" / variant / "seed0"
        open_only = json.loads((run_dir / "motion_open" / "train_config.json").read_text())
        assert open_only["language_model_weights"] == str(out / "language_model.safetensors")
        assert open_only["train_file"] == str(out / "train_motion_open.json")
        assert open_only["tokenizer_file"] == str(out / "world" / "instruct" / "train.json")
        assert open_only["max_steps"] == 2 and open_only["mash"] == VARIANTS[variant][1]
        # The first phase alone trains at motion_open_learning_rate.
        assert open_only["learning_rate"] == 0.002
        warm_up = json.loads((run_dir / "motion" / "train_config.json").read_text())
        assert warm_up["init"] == f"mashvlm:{run_dir / 'motion_open' / 'final'}"
        assert warm_up["train_file"] == str(out / "world" / "instruct" / "train_motion.json")
        assert warm_up["max_steps"] == 2 and warm_up["mash"] == VARIANTS[variant][1]
        assert warm_up["learning_rate"] == StudyConfig().learning_rate
        train_config = json.loads((run_dir / "train" / "train_config.json").read_text())
        assert train_config["init"] == f"mashvlm:{run_dir / 'motion' / 'final'}"
        assert train_config["language_model_weights"] is None and train_config["max_steps"] == 3
        assert train_config["train_file"] == str(out / "train_with_motion.json")
        assert train_config["learning_rate"] == StudyConfig().learning_rate

    # Training speed of each run, measured in the same study, and printed side by side.
    for run in results["runs"]:
        assert run["training"]["steps"] == 3 and run["training"]["steps_per_second"] > 0
        assert not run["training"]["resumed"]
    assert "training steps/s" in printed
    # Attention scores (Fig. 6) of both models on the UNSCENE questions and the motion control.
    for name in ("unscene", "motion_control"):
        report = json.loads((out / "attention" / "seed0" / name / "attention.json").read_text())
        assert set(report["models"]) == {"baseline", "model"}
        assert (out / "attention" / "seed0" / name / "attention.png").stat().st_size > 1000
        for variant, role in (("baseline", "baseline"), ("mash", "model")):
            groups = results["attention"][name][variant]
            assert set(groups) == set(report["models"][role]["groups"]) == {"action", "scene"}
            for category, stat in groups.items():
                layer_mean = report["models"][role]["groups"][category]["layer_mean"]
                assert stat["spatial_to_text"]["mean"] == pytest.approx(layer_mean["spatial_to_text"])
    assert "Attention of the answer's tokens" in printed

    # A second run reuses every finished stage and gives the same table.
    stamps = {p: p.stat().st_mtime_ns for p in [*out.rglob("record.json"), *out.rglob("attention.json")]}
    assert main(["demo", "--quick", "--out", str(out), "--no-progress", *TINY]) == 0
    assert {p: p.stat().st_mtime_ns for p in [*out.rglob("record.json"), *out.rglob("attention.json")]} == stamps
    assert json.loads((out / "study_results.json").read_text())["runs"] == results["runs"]


@pytest.mark.slow
def test_parallel_runs_give_the_records_of_one_process(tmp_path, capfd):
    import torch
    from safetensors.torch import load_file

    # capfd: the jobs are processes of their own, which print to the inherited stdout.
    out = tmp_path / "demo"
    args = ["demo", "--quick", "--out", str(out), "--no-progress", *TINY, "--variants", "baseline"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two jobs below will have on any machine with 2 threads or more
    try:
        assert main([*args, "--seeds", "0"]) == 0
    finally:
        torch.set_num_threads(threads)
    alone = json.loads((out / "runs" / "baseline" / "seed0" / "record.json").read_text())
    weights = out / "runs" / "baseline" / "seed0" / "train" / "final" / "model.safetensors"
    alone_weights = load_file(weights)
    shutil.rmtree(out / "runs")  # the shared stages stay; both seeds train again, at once
    capfd.readouterr()
    assert main([*args, "--seeds", "0", "1", "--jobs", "2"]) == 0
    printed, errors = capfd.readouterr()
    assert "training 2 run(s), 2 at once" in printed
    assert "Loading weights" not in errors and "Writing model shards" not in errors  # a job has no bars
    for seed in (0, 1):
        assert f"baseline seed {seed}: warm-up motion_open: trained 2 steps" in printed
        assert f"baseline seed {seed}: trained 3 steps" in printed
    runs = json.loads((out / "study_results.json").read_text())["runs"]
    assert [(r["variant"], r["seed"]) for r in runs] == [("baseline", 0), ("baseline", 1)]
    assert {k: v for k, v in runs[0].items() if k != "training"} == {
        k: v for k, v in alone.items() if k != "training"}
    assert runs[0]["training"]["steps"] == alone["training"]["steps"] == 3
    # The same training to the bit (the same thread count): every stage ran as in one process.
    parallel_weights = load_file(weights)
    assert parallel_weights.keys() == alone_weights.keys()
    assert all(torch.equal(parallel_weights[k], alone_weights[k]) for k in alone_weights)
    # Finished runs are reused, in parallel mode too: nothing is trained or started again.
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("record.json")}
    assert main([*args, "--seeds", "0", "1", "--jobs", "2"]) == 0
    rerun = capfd.readouterr().out
    assert "at once" not in rerun and ": trained" not in rerun
    assert {p: p.stat().st_mtime_ns for p in out.rglob("record.json")} == stamps


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the process table from /proc (Linux)")
def test_parallel_jobs_end_when_the_study_is_killed(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    log = tmp_path / "study.log"
    command = [sys.executable, "-m", "mashvlm.cli", "demo", "--quick", "--out", str(tmp_path / "demo"), "--no-progress",
               *TINY, "--set", "motion_open_steps=0", "--set", "motion_steps=0", "--steps", "100000",
               "--variants", "baseline", "--seeds", "0", "1", "--jobs", "2"]
    with log.open("w") as out:
        study = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        def jobs() -> list[int]:  # the study's children, except multiprocessing's resource tracker
            return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                    and f"PPid:\t{study.pid}\n" in _read(p / "status")
                    and "resource_tracker" not in _read(p / "cmdline")]

        # The jobs start after the log says so, later still on a loaded machine: wait for them.
        deadline = time.monotonic() + 240
        while "at once" not in log.read_text() or len(started := jobs()) < 2:
            assert study.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
    finally:
        study.send_signal(signal.SIGTERM)
        study.wait(timeout=60)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(_alive(pid) for pid in started)


def _read(path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    status = _read(Path(f"/proc/{pid}/status"))
    return bool(status) and "State:\tZ" not in status


def test_demo_refuses_to_mix_two_configurations(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "study_config.json").write_text(json.dumps(_saved_config(StudyConfig(max_steps=1))))
    assert main(["demo", "--out", str(out), "--no-progress", "--steps", "2"]) == 2
    assert "another configuration" in capsys.readouterr().err
    assert not (out / "world").exists()


def test_demo_refuses_a_study_of_an_older_world_format(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "study_config.json").write_text(json.dumps(StudyConfig(max_steps=2).to_dict()))  # format 2: no key
    assert main(["demo", "--out", str(out), "--no-progress", "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert "world format 2" in err and "motion control" in err
    assert not (out / "world").exists()


def test_bad_settings_are_reported(capsys):
    assert main(["demo", "--set", "no_such_field=1"]) == 2
    assert "no_such_field" in capsys.readouterr().err
    assert main(["demo", "--set", "variants=[\"nope\"]"]) == 2


def test_the_long_profile_is_the_default_with_a_motion_warm_up():
    from mashvlm.cli import build_parser
    from mashvlm.study.cli import _config

    preset, long = _config(build_parser().parse_args(["demo", "--long"]))
    default = StudyConfig()
    assert preset == "long" and default.motion_steps == 0 and long.motion_steps > 0
    assert long.world["n_train_motion"] > 0 and WorldConfig().n_train_motion == 0
    assert long.motion_in_training and not default.motion_in_training
    for setting, value in (("motion_open_steps", 10), ("motion_steps", 10), ("motion_in_training", True)):
        with pytest.raises(UsageError, match=f"{setting}.* the world has none: set its n_train_motion"):
            StudyConfig(**{setting: value})
    with pytest.raises(UsageError, match="motion_open_steps must be >= 0"):
        StudyConfig(motion_open_steps=-1)
    with pytest.raises(UsageError, match="motion_open_learning_rate must be > 0"):
        StudyConfig(motion_open_learning_rate=0.0)
    assert long.max_steps == 2 * default.max_steps
    # The open question at the default's learning rate, the rest at a third of it.
    assert long.motion_open_learning_rate == default.learning_rate == 3 * long.learning_rate
    warm_up = ("world", "motion_open_steps", "motion_steps", "motion_in_training", "max_steps", "learning_rate",
               "motion_open_learning_rate")
    assert {k: v for k, v in long.to_dict().items() if k not in warm_up} == \
        {k: v for k, v in default.to_dict().items() if k not in warm_up}


def test_the_motion_videos_join_training_with_one_question_of_each_kind():
    yes, no = T.YES, T.NO

    def action(label: str, answer: str) -> dict[str, str]:
        return {"i": "", "q": T.fill(T.Q_ACTION_YN, action=label), "a": answer}

    def scene(label: str, answer: str) -> dict[str, str]:
        return {"i": "", "q": T.fill(T.Q_SCENE_YN, scene=label), "a": answer}

    open_action = {"i": "", "q": T.Q_ACTION, "a": "The person is running."}
    qas = [action("boxing", no), open_action, action("running", yes), scene("library", yes), action("running", yes),
           action("skiing", no), open_action, scene("beach", no), action("jumping", no)]
    assert one_question_of_each_kind(qas) == [action("boxing", no), open_action, action("running", yes),
                                             scene("library", yes), scene("beach", no)]
    # the training split's entries lose nothing: they ask each kind once
    empty = [{"i": "", "q": T.fill(T.Q_EMPTY_YN, scene="office"), "a": yes}, action("boxing", no),
             {"i": "", "q": T.fill(T.Q_EMPTY_YN, scene="beach"), "a": no}, {"i": "", "q": T.Q_SCENE, "a": "x"}]
    assert one_question_of_each_kind(empty) == empty


def test_the_ablation_grid_covers_tables_5_to_9():
    full = StudyConfig(**PRESETS["full"])
    assert len(full.seeds) >= 3
    assert {v for rows in ABLATION_TABLES.values() for _, v in rows} <= set(full.variants)
    assert any(title.startswith("Table 9") for title in ABLATION_TABLES)
    cells = [json.dumps([VARIANTS[v][1], variant_tuning(v)], sort_keys=True) for v in full.variants]
    assert len(set(cells)) == len(cells)  # no cell trained twice under two names
    assert {variant_tuning(v)["tuning"] for v in full.variants} == {"full", "lora", "frozen_llm"}
    with pytest.raises(KeyError, match="unknown study variant"):
        variant_tuning("t9_nope")


def test_summary_mean_and_sample_std():
    runs = [{"variant": "mash", "seed": s,
             "binary": {k: v for k in ("scene_only_action", "unusual_action", "unusual_scene", "average")},
             "open_ended": {k: None for k in ("scene_only_action", "unusual_action", "unusual_scene", "average")},
             "usual": {"action": v, "scene": 100.0, "average": (v + 100) / 2}}
            for s, v in enumerate([40.0, 50.0, 60.0])]
    s = summarise(runs, ["mash"])["mash"]
    assert s["binary"]["average"]["mean"] == pytest.approx(50.0)
    assert s["binary"]["average"]["std"] == pytest.approx(10.0)
    assert s["open_ended"]["average"]["n"] == 0 and s["usual"]["scene"]["std"] == 0.0
    assert s["motion"]["action"]["n"] == 0  # records without a motion control count as missing


def _record(variant, seed, value):
    keys = ("scene_only_action", "unusual_action", "unusual_scene", "average")
    return {"variant": variant, "seed": seed, "binary": dict.fromkeys(keys, value),
            "open_ended": dict.fromkeys(keys), "usual": dict.fromkeys(("action", "scene", "average"), 100.0),
            "motion": {"action": value, "scene": 100.0, "average": (value + 100.0) / 2}}


def test_paired_statistics_pair_by_seed():
    base = [57.5, 43.8, 60.0, 73.8, 52.5, 67.5, 50.0, 60.0]  # the README's scene-only action, seeds 0-7
    mash = [73.8, 57.5, 71.2, 72.5, 60.0, 60.0, 75.0, 62.5]
    records = [_record("mash", s, v) for s, v in enumerate(mash)]
    records += [_record("baseline", s, v) for s, v in reversed(list(enumerate(base)))]  # order must not matter
    records.append(_record("mash", 9, 0.0))  # a seed without its pair is left out
    d = paired_statistics(records, ["baseline", "mash"])["mash"]["binary"]["scene_only_action"]
    assert d["seeds"] == list(range(8)) and d["df"] == 7
    assert d["differences"] == pytest.approx([m - b for m, b in zip(mash, base, strict=True)])
    assert d["t"] == pytest.approx(2.30, abs=0.01) and d["p"] == pytest.approx(0.055, abs=0.001)
    assert paired_statistics(records, ["mash"]) == {}  # no baseline, nothing to pair against
    assert paired_difference({0: 1.0}, {0: 3.0})["t"] is None  # one seed
    assert paired_difference({0: 1.0, 1: 2.0}, {0: 3.0, 1: 4.0})["p"] is None  # equal differences


def test_the_ablation_chart_draws_the_complete_tables_only(tmp_path):
    table5 = [v for _, v in ABLATION_TABLES["Table 5: attention type (temporal / spatial)"]]
    table9 = [v for _, v in ABLATION_TABLES["Table 9: LLM tuning"]]
    ran = [*table5, *table9, "t7_balanced"]  # Table 7 lacks t6_both: not drawn, and t7_balanced with it
    records = [_record(v, seed, 10.0 * seed + i) for i, v in enumerate(ran) for seed in (0, 1, 2)]
    results = {"summary": summarise(records, ran)}
    assert plot_ablations(results, tmp_path / "grid.png") == [*table5, *table9]
    assert (tmp_path / "grid.png").stat().st_size > 1000
    assert "Table 7" not in format_ablations(results) and "Table 9: LLM tuning" in format_ablations(results)
    main_only = {"summary": summarise(records, ["baseline", "mash"])}
    assert plot_ablations(main_only, tmp_path / "none.png") == [] and not (tmp_path / "none.png").exists()


@pytest.mark.parametrize(("t", "df", "p"), [(12.706, 1, 0.05), (4.303, 2, 0.05), (3.182, 3, 0.05),
                                            (2.365, 7, 0.05), (2.262, 9, 0.05), (0.0, 4, 1.0), (-2.262, 9, 0.05)])
def test_student_t_p_matches_the_tables(t, df, p):
    assert student_t_two_sided_p(t, df) == pytest.approx(p, abs=2e-4)


def test_more_seeds_may_join_a_study(tmp_path):
    from mashvlm.study.run import _identity

    a = StudyConfig(seeds=[0]).to_dict()
    assert _identity(a) == _identity(StudyConfig(seeds=[0, 1, 2], variants=["mash"]).to_dict())
    assert _identity(a) != _identity(StudyConfig(seeds=[0], max_steps=7).to_dict())


def test_a_world_setting_equal_to_its_default_is_the_same_study():
    from mashvlm.study.run import _identity
    from mashvlm.synth.config import WorldConfig

    default_rho = WorldConfig().rho
    a = _identity(StudyConfig().to_dict())
    assert a == _identity(StudyConfig(world={"rho": default_rho}).to_dict())
    assert a != _identity(StudyConfig(world={"rho": default_rho / 2}).to_dict())


@pytest.mark.slow
def test_full_grid_prints_the_ablation_tables(tmp_path, capsys):
    out = tmp_path / "full"
    assert main(["demo", "--full", "--seeds", "0", "--out", str(out), "--no-progress", *TINY]) == 0
    printed = capsys.readouterr().out
    for title, rows in ABLATION_TABLES.items():
        assert title in printed
        for label, _ in rows:
            assert label in printed
    header = next(line for line in printed.splitlines() if "UNSCENE avg" in line)
    assert header.split() == ["UNSCENE", "avg", "scene-only", "act", "unusual", "act", "usual", "avg", "control", "act"]
    results = json.loads((out / "study_results.json").read_text())
    assert {r["variant"] for r in results["runs"]} == set(StudyConfig(**PRESETS["full"]).variants)
    assert "Table 7: positions" in (out / "study_table.txt").read_text()
    assert (out / "study_ablations.png").stat().st_size > 1000
    assert {r["variant"]: r["tuning"] for r in results["runs"]}["t9_lora"] == "lora"

    # Table 9's schemes hold in every stage: a frozen LLM leaves the text-pre-trained Llama as it was;
    # full fine-tuning and (merged) LoRA change it.
    pretrained = load_file(str(out / "language_model.safetensors"))
    llm = [k for k in pretrained if k.startswith("model.language_model.layers.")]
    assert llm

    def changed(variant: str) -> bool:
        final = load_file(str(out / "runs" / variant / "seed0" / "train" / "final" / "model.safetensors"))
        return any(not torch.equal(final[k], pretrained[k]) for k in llm)

    assert not changed("t9_frozen_llm")
    assert changed("t9_lora") and changed("mash")


@pytest.mark.slow
def test_rho_sweep_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "sweep"
    smaller = ('world={"height": 32, "width": 32, "frames": 8, "n_train": 32, "n_test_usual": 4, '
               '"n_test_unusual": 4, "n_test_scene_only": 4, "n_test_motion": 4, "n_train_motion": 0}')  # 8 runs: keep them short
    # and the default's path, without a motion warm-up
    args = ["demo", "--quick", "--sweep-rho", "0.9", "0.5", "--seeds", "0", "1", "--out", str(out), "--no-progress",
            *TINY, "--set", smaller, "--set", "motion_steps=0", "--set", "motion_open_steps=0",
            "--set", "motion_in_training=false"]
    assert main(args) == 0
    assert len(list(out.rglob("train/final"))) == 8
    for warm_up in ("motion", "motion_open", "train_motion_open.json", "train_with_motion.json"):
        assert not list(out.rglob(warm_up))
    printed = capsys.readouterr().out
    for rho in ("rho0.5", "rho0.9"):
        study = json.loads((out / rho / "study_results.json").read_text())
        assert study["world"]["rho"] == float(rho[3:])
        assert {(r["variant"], r["seed"]) for r in study["runs"]} == {(v, s) for v in ("baseline", "mash")
                                                                       for s in (0, 1)}
    # One world per rho: the worlds differ, each trains its own tower and language model (same policy).
    hashes = {json.loads((out / r / "world" / "world.json").read_text())["content_hash"] for r in ("rho0.5", "rho0.9")}
    assert len(hashes) == 2
    sweep = json.loads((out / "sweep_results.json").read_text())
    assert sweep["rhos"] == [0.5, 0.9] and [e["rho"] for e in sweep["per_rho"]] == [0.5, 0.9]
    for entry in sweep["per_rho"]:
        for section, key, _ in (("binary", "unusual_action", 0), ("binary", "scene_only_action", 0),
                                ("motion", "action", 0)):
            for variant in ("baseline", "mash"):
                assert entry["summary"][variant][section][key]["n"] == 2
            assert entry["paired"]["mash"][section][key]["seeds"] == [0, 1]
    table = (out / "sweep_table.txt").read_text()
    rows = [line for line in table.splitlines() if line.strip()]
    assert table in printed
    assert VARIANTS["baseline"][0] in rows[0] and VARIANTS["mash"][0] in rows[0] and "paired" in rows[0]
    metrics = ["unusual-context action", "scene-only action", "motion-control action"]
    assert [line[6:30].strip() for line in rows[1:7]] == metrics * 2
    assert rows[1].startswith("0.5 ") and rows[4].startswith("0.9 ")
    assert all("±" in line for line in rows[1:7])
    assert (out / "sweep.png").stat().st_size > 5000

    # A second run trains nothing and reproduces the results.
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")}
    assert main(args) == 0
    assert "trained" not in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")} == stamps
    assert json.loads((out / "sweep_results.json").read_text()) == sweep


def test_rho_sweep_bad_values(capsys):
    assert main(["demo", "--sweep-rho", "1.5"]) == 2
    assert "rho must lie in [0, 1]" in capsys.readouterr().err
    assert main(["demo", "--sweep-rho", "0.5", "0.5"]) == 2
    assert main(["demo", "--full", "--sweep-rho"]) == 2
    assert main(["demo", "--sweep-rho", "0.5", "--variants", "mash"]) == 2
