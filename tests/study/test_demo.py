"""``mashvlm demo`` end to end on a tiny setting: world, tower, two trainings, UNSCENE, report, resume."""

from __future__ import annotations

import json

import pytest

from mashvlm.cli import main
from mashvlm.study.config import ABLATION_TABLES, PRESETS, VARIANTS, StudyConfig
from mashvlm.study.run import summarise

TINY = [
    "--set", 'world={"height": 32, "width": 32, "frames": 8, "n_train": 32, "n_test_usual": 8, '
             '"n_test_unusual": 8, "n_test_scene_only": 8}',
    "--set", 'tiny={"image_size": 32, "patch_size": 8, "num_frames": 4, "vision_hidden": 32, '
             '"vision_layers": 2, "text_hidden": 64, "text_layers": 2, "heads": 4}',
    "--set", "tower_steps=3", "--set", "language_steps=3", "--set", "batch_size=8", "--set", "max_new_tokens=12", "--steps", "3",
]


@pytest.mark.slow
def test_demo_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress", *TINY]) == 0
    printed = capsys.readouterr().out
    assert VARIANTS["baseline"][0] in printed and VARIANTS["mash"][0] in printed
    assert "unusual-context action" in printed and "usual context" in printed

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
    assert results["runs"][0]["options"]["rope_variant"] == "distinct"
    assert results["runs"][1]["options"]["rope_variant"] == "harmonic"
    assert (out / "study.png").stat().st_size > 1000 and (out / "study_table.txt").is_file()
    # Both variants start from the one text-pre-trained language model.
    assert results["language_model"]["answer_acc"] >= 0.0
    for variant in ("baseline", "mash"):
        train_config = json.loads((out / "runs" / variant / "seed0" / "train" / "train_config.json").read_text())
        assert train_config["language_model_weights"] == str(out / "language_model.safetensors")

    # A second run reuses every finished stage and gives the same table.
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("record.json")}
    assert main(["demo", "--quick", "--out", str(out), "--no-progress", *TINY]) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("record.json")} == stamps
    assert json.loads((out / "study_results.json").read_text())["runs"] == results["runs"]


def test_demo_refuses_to_mix_two_configurations(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "study_config.json").write_text(json.dumps(StudyConfig(max_steps=1).to_dict()))
    assert main(["demo", "--out", str(out), "--no-progress", "--steps", "2"]) == 2
    assert "another configuration" in capsys.readouterr().err
    assert not (out / "world").exists()


def test_bad_settings_are_reported(capsys):
    assert main(["demo", "--set", "no_such_field=1"]) == 2
    assert "no_such_field" in capsys.readouterr().err
    assert main(["demo", "--set", "variants=[\"nope\"]"]) == 2


def test_the_ablation_grid_covers_tables_5_to_7():
    full = StudyConfig(**PRESETS["full"])
    assert len(full.seeds) >= 3
    assert {v for rows in ABLATION_TABLES.values() for _, v in rows} <= set(full.variants)
    options = [tuple(sorted(VARIANTS[v][1].items())) for v in full.variants]
    assert len(set(options)) == len(options)  # no cell trained twice under two names


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


def test_more_seeds_may_join_a_study(tmp_path):
    from mashvlm.study.run import _identity

    a = StudyConfig(seeds=[0]).to_dict()
    assert _identity(a) == _identity(StudyConfig(seeds=[0, 1, 2], variants=["mash"]).to_dict())
    assert _identity(a) != _identity(StudyConfig(seeds=[0], max_steps=7).to_dict())


@pytest.mark.slow
def test_full_grid_prints_the_ablation_tables(tmp_path, capsys):
    out = tmp_path / "full"
    assert main(["demo", "--full", "--seeds", "0", "--out", str(out), "--no-progress", *TINY]) == 0
    printed = capsys.readouterr().out
    for title, rows in ABLATION_TABLES.items():
        assert title in printed
        for label, _ in rows:
            assert label in printed
    results = json.loads((out / "study_results.json").read_text())
    assert {r["variant"] for r in results["runs"]} == set(StudyConfig(**PRESETS["full"]).variants)
    assert "Table 7: positions" in (out / "study_table.txt").read_text()
