"""The world on disk: determinism, labels, UNSCENE annotations, instruction data, resuming."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from mashvlm.synth import (
    ACTIONS,
    ALL_SCENES,
    FORMAT_VERSION,
    NEUTRAL_SCENES,
    SCENES,
    TYPICAL_SCENE,
    WorldConfig,
    WorldMismatchError,
    build_world,
    hallucination_candidates,
    instruct_entry,
    load_world,
    plan_split,
    plan_world,
    render_spec,
)
from mashvlm.synth import templates as T
from mashvlm.synth import world as world_mod
from mashvlm.video import read_video_frames


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# --------------------------------------------------------------------------------------- determinism


def _same_world(a, b, world_files):
    """Annotation files byte-identical; videos equal as decoded pixels up to rare encoder jitter.

    x264 single-threaded is deterministic here almost always, but under CPU contention an occasional
    file encodes differently (pixels within a few levels); the labels and rendered frames never differ.
    """
    first, second = world_files(a.root), world_files(b.root)
    assert sorted(first) == sorted(second)
    text = [k for k in first if not k.endswith((".mp4", ".png")) and k != "world.json"]
    assert text and [k for k in text if first[k] != second[k]] == []
    for k in (k for k in first if k.endswith(".mp4") and first[k] != second[k]):
        x, y = (read_video_frames(root / k, a.config.frames).astype(int) for root in (a.root, b.root))
        assert np.abs(x - y).mean() < 4.0, k


def test_same_config_and_seed_give_the_same_world(tmp_path, tiny_world, world_files):
    again = build_world(tmp_path / "again", tiny_world.config, tiny_world.seed, workers=2, progress=False)
    _same_world(tiny_world, again, world_files)
    assert again.videos == tiny_world.videos


def test_another_seed_gives_another_world(tmp_path, tiny_world, world_files):
    other = build_world(tmp_path / "other", tiny_world.config, tiny_world.seed + 1, workers=1, progress=False)
    assert other.content_hash != tiny_world.content_hash
    a, b = world_files(tiny_world.root), world_files(other.root)
    videos = [k for k in a if k.endswith(".mp4")]
    assert sum(a[k] != b[k] for k in videos) == len(videos)


def test_render_spec_reproduces_the_written_video(tiny_world):
    spec = tiny_world.split("test_unusual")[0]
    clip = render_spec(tiny_world.config, tiny_world.seed, spec)
    decoded = read_video_frames(tiny_world.path(spec), tiny_world.config.frames)
    assert decoded.shape == clip.frames.shape == (16, 32, 32, 3)
    # Lossy H.264 with 4:2:0 chroma at 32x32 blurs thin coloured lines: close, not equal. Any other
    # video of the world is much further off.
    err = np.abs(decoded.astype(int) - clip.frames.astype(int)).mean()
    assert err < 25
    for other_spec in tiny_world.videos[:20]:
        if other_spec != spec:
            other = render_spec(tiny_world.config, tiny_world.seed, other_spec)
            assert np.abs(decoded.astype(int) - other.frames.astype(int)).mean() > err + 10


# ---------------------------------------------------------------------------------------------- labels


def test_every_label_is_present_where_expected(tiny_world):
    train, usual = tiny_world.split("train"), tiny_world.split("test_usual")
    unusual, scene_only = tiny_world.split("test_unusual"), tiny_world.split("test_scene_only")
    assert {v.action for v in train} == set(ACTIONS) | {None}
    assert {v.scene for v in train} == set(ALL_SCENES)  # neutral scenes too (empty, and some actions)
    assert Counter(v.action for v in usual) == {a: 2 for a in ACTIONS}
    assert all(v.scene == TYPICAL_SCENE[v.action] and v.typical for v in usual)
    assert Counter(v.action for v in unusual) == {a: 2 for a in ACTIONS}
    assert {v.scene for v in unusual} == set(SCENES)
    assert all(v.scene != TYPICAL_SCENE[v.action] and v.typical is False for v in unusual)
    assert Counter(v.scene for v in scene_only) == {s: 1 for s in SCENES}
    assert all(v.action is None and v.typical is None for v in scene_only)


@pytest.mark.parametrize("rho", [0.9, 0.6])
def test_train_typical_rate_and_empty_share(rho):
    config = WorldConfig(rho=rho)  # planning only, nothing rendered
    train = plan_split(config, 0, "train")
    acted = [v for v in train if v.action is not None and v.scene in SCENES]  # rho holds in the biased scenes
    assert len(train) == 1200 and sum(v.action is None and not v.still for v in train) == 120
    assert sum(v.still for v in train) == 120  # still_frac 0.1
    assert sum(v.scene in NEUTRAL_SCENES and v.action is not None for v in train) == 240  # neutral_frac 0.2
    assert abs(np.mean([v.typical for v in acted]) - rho) < 0.01
    for action in ACTIONS:  # the bias holds per action, not only on average
        mine = [v.typical for v in acted if v.action == action]
        assert abs(np.mean(mine) - rho) < 0.02
    atypical_scenes = Counter(v.scene for v in acted if not v.typical)
    assert set(atypical_scenes) == set(SCENES)  # the "elsewhere" cases reach every scene


def test_unusual_pairs_are_spread_over_non_typical_scenes():
    unusual = plan_split(WorldConfig(), 0, "test_unusual")
    for action in ACTIONS:
        counts = Counter(v.scene for v in unusual if v.action == action)
        assert len(counts) == len(SCENES) - 1 and max(counts.values()) - min(counts.values()) <= 1


def test_plans_depend_on_the_seed_only_through_the_order_and_draws():
    a, b = plan_world(WorldConfig(), 0), plan_world(WorldConfig(), 1)
    assert [v.scene for v in a["train"]] != [v.scene for v in b["train"]]
    assert Counter(v.action for v in a["test_unusual"]) == Counter(v.action for v in b["test_unusual"])
    assert plan_world(WorldConfig(), 0) == a


# ---------------------------------------------------------------------------------------------- UNSCENE


def test_unscene_annotations_hold_the_bias_and_never_the_ground_truth(tiny_world):
    root = tiny_world.root
    unusual = _jsonl(root / "unscene/unusual_context.jsonl")
    scene_only = _jsonl(root / "unscene/scene_only.jsonl")
    usual = _jsonl(root / "unscene/usual_context.jsonl")
    assert len(unusual) == 16 and len(scene_only) == 8 and len(usual) == 16
    for r in unusual:
        assert r["set"] == "unusual_context" and (root / r["video"]).is_file()
        assert r["hallucinated_actions"] == [a for a in ACTIONS if TYPICAL_SCENE[a] == r["scene"]]
        assert r["hallucinated_scenes"] == [TYPICAL_SCENE[r["action"]]]
        assert r["action"] not in r["hallucinated_actions"] and r["scene"] not in r["hallucinated_scenes"]
    for r in scene_only:
        assert r["set"] == "scene_only" and r["action"] is None and r["hallucinated_scenes"] is None
        assert r["hallucinated_actions"] == [a for a in ACTIONS if TYPICAL_SCENE[a] == r["scene"]]
    for r in usual:
        assert r["set"] == "usual_context"
        assert r["hallucinated_actions"] and r["action"] not in r["hallucinated_actions"]
        assert r["hallucinated_scenes"] and r["scene"] not in r["hallucinated_scenes"]
    keys = {"video_id", "video", "set", "action", "scene", "hallucinated_actions", "hallucinated_scenes"}
    assert all(set(r) == keys for r in unusual + scene_only + usual)


def test_held_out_pairs_are_never_in_train():
    # Without control scenes: each action is held out in one neutral scene (action i in scene i mod 4) and
    # shown in training in the three others, so no neutral scene is new to a person and each shows 6 of 8.
    config = WorldConfig(control_scenes=(), still_frac=0.0)
    assert len(NEUTRAL_SCENES) == 4
    plan = plan_world(config, 0)
    control = {(v.action, v.scene) for v in plan["test_motion"]}
    train = {(v.action, v.scene) for v in plan["train"]}
    assert len(plan["test_motion"]) == 160 and not control & train
    assert Counter(v.action for v in plan["test_motion"]) == {a: 20 for a in ACTIONS}
    assert {v.scene for v in plan["test_motion"]} == set(NEUTRAL_SCENES)
    assert all(v.typical is False for v in plan["test_motion"])
    for action in ACTIONS:
        (held_out,) = {s for a, s in control if a == action}
        assert held_out == NEUTRAL_SCENES[ACTIONS.index(action) % 4]
        assert {s for a, s in train if a == action and s in NEUTRAL_SCENES} == set(NEUTRAL_SCENES) - {held_out}
    for scene in NEUTRAL_SCENES:
        assert len({a for a, s in train if s == scene and a is not None}) == 6
    assert Counter(v.action for v in plan["train"] if v.scene in NEUTRAL_SCENES and v.action) == {a: 30 for a in ACTIONS}
    assert {s for a, s in train if a is None} == set(ALL_SCENES)


def test_control_scenes_are_shown_in_training_only_empty():
    # control_scenes: those neutral scenes show no actor in training; the others show every action.
    config = WorldConfig(control_scenes=("kitchen",), still_frac=0.0)
    plan = plan_world(config, 0)
    control = {(v.action, v.scene) for v in plan["test_motion"]}
    train = {(v.action, v.scene) for v in plan["train"]}
    assert {s for _, s in control} == {"kitchen"} and not control & train
    assert not {a for a, s in train if s == "kitchen" and a is not None}
    for scene in set(NEUTRAL_SCENES) - {"kitchen"}:
        assert {a for a, s in train if s == scene and a is not None} == set(ACTIONS)


def test_control_scenes_can_show_a_person_standing_still():
    # The default: the control scenes show, in training, a person who does none of the actions and is
    # asked only about the scene; the other neutral scenes show every action equally often.
    config = WorldConfig()
    assert config.control_scenes == ("office", "garage") and config.still_frac == 0.1
    plan = plan_world(config, 0)
    still = [v for v in plan["train"] if v.still]
    assert len(still) == 120 and Counter(v.scene for v in still) == {"office": 60, "garage": 60}
    assert all(v.action is None and v.typical is None for v in still)
    train = [(v.action, v.scene) for v in plan["train"]]
    assert not {a for a, s in train if s in ("office", "garage") and a is not None}
    assert Counter((a, s) for a, s in train if s in ("library", "kitchen") and a is not None) == {
        (a, s): 15 for a in ACTIONS for s in ("library", "kitchen")}
    assert {v.scene for v in plan["test_motion"]} == {"office", "garage"}

    clip = render_spec(config, 0, still[0])
    assert clip.centers is not None and np.ptp(clip.centers, axis=0).max() == 0  # a person, not moving
    qas = instruct_entry(config, 0, still[0])["QA"]
    asked = " ".join(qa["q"] for qa in qas)
    assert not any(a in asked for a in ACTIONS) and "doing" not in asked
    assert {"i": "", "q": f"Is this an empty {still[0].scene} with no people?", "a": "No."} in qas
    with pytest.raises(ValueError, match="still_frac"):
        WorldConfig(control_scenes=(), still_frac=0.1)


def test_motion_control_annotations(tiny_world):
    records = _jsonl(tiny_world.root / "unscene/motion_control.jsonl")
    assert len(records) == 16
    for r in records:
        assert r["set"] == "motion_control" and r["scene"] in NEUTRAL_SCENES and (tiny_world.root / r["video"]).is_file()
        assert r["hallucinated_actions"] == [a for a in ACTIONS if a != r["action"]]
        assert r["hallucinated_scenes"] == [s for s in ALL_SCENES if s != r["scene"]]
    meta = json.loads((tiny_world.root / "world.json").read_text())
    assert {(r["action"], r["scene"]) for r in records} <= set(meta["motion_control_pairs"].items())
    train = {(v.action, v.scene) for v in tiny_world.split("train")}
    assert not train & set(meta["motion_control_pairs"].items())


def test_neutral_scene_settings_are_checked():
    with pytest.raises(ValueError, match="typical scene of an action"):
        WorldConfig(neutral_scenes=("library", "beach"))
    with pytest.raises(ValueError, match="at least 2 neutral scenes"):
        WorldConfig(neutral_scenes=("library",), control_scenes=())
    assert WorldConfig(neutral_scenes=("library",), control_scenes=(), neutral_frac=0.0,
                       still_frac=0.0).motion_control_scene(
        "boxing") == "library"
    with pytest.raises(ValueError, match="needs neutral_scenes"):
        WorldConfig(neutral_scenes=(), control_scenes=(), neutral_frac=0.0)
    with pytest.raises(ValueError, match=r"the motion warm-up \(n_train_motion > 0\) needs neutral_scenes"):
        WorldConfig(neutral_scenes=(), control_scenes=(), neutral_frac=0.0, still_frac=0.0, n_test_motion=0,
                    n_train_motion=8)
    with pytest.raises(ValueError, match="n_train_motion > 0 needs a neutral scene outside control_scenes"):
        WorldConfig(control_scenes=NEUTRAL_SCENES, neutral_frac=0.0, n_train_motion=8)
    assert WorldConfig(control_scenes=NEUTRAL_SCENES, neutral_frac=0.0).n_train_motion == 0
    with pytest.raises(ValueError, match="at most 1"):
        WorldConfig(empty_frac=0.6, neutral_frac=0.5)
    with pytest.raises(ValueError, match="not among neutral_scenes"):
        WorldConfig(control_scenes=("beach",))
    with pytest.raises(ValueError, match="outside control_scenes"):
        WorldConfig(control_scenes=NEUTRAL_SCENES)
    assert WorldConfig(control_scenes=("library", "kitchen"), neutral_frac=0.0).motion_control_scene("running") == "kitchen"


def test_an_older_world_format_is_refused_by_name(tmp_path, tiny_config):
    world = build_world(tmp_path, tiny_config(n_train=8), seed=0, workers=1, progress=False)
    meta = json.loads((world.root / "world.json").read_text())
    (world.root / "world.json").write_text(json.dumps({**meta, "format_version": 2}))
    with pytest.raises(WorldMismatchError, match="format version 2"):
        build_world(tmp_path, tiny_config(n_train=8), seed=0, workers=1, progress=False)
    with pytest.raises(WorldMismatchError, match="format 2"):
        load_world(tmp_path)
    rebuilt = build_world(tmp_path, tiny_config(n_train=8), seed=0, force=True, workers=1, progress=False)
    assert json.loads((rebuilt.root / "world.json").read_text())["format_version"] == FORMAT_VERSION


def test_neutral_scenes_fall_back_to_other_actions():
    config = WorldConfig(scenes=SCENES + NEUTRAL_SCENES, neutral_scenes=(), control_scenes=(),
                         neutral_frac=0.0, still_frac=0.0, n_test_motion=0, n_train_motion=0)
    for scene in NEUTRAL_SCENES:
        acts, scenes = hallucination_candidates(config, None, scene, "scene_only")
        assert acts == list(ACTIONS) and scenes == []
        acts, scenes = hallucination_candidates(config, "boxing", scene, "unusual_context")
        assert acts == [a for a in ACTIONS if a != "boxing"] and scenes == ["boxing ring"]
    unusual = plan_split(config, 0, "test_unusual")
    assert {v.scene for v in unusual} == set(SCENES + NEUTRAL_SCENES)


def test_config_rejects_an_action_without_typical_scene():
    with pytest.raises(ValueError, match="typical scene"):
        WorldConfig(scenes=("beach", "library"))
    with pytest.raises(ValueError, match="even"):
        WorldConfig(height=33)


# ------------------------------------------------------------------------------------------ instructions


def _check_answer(qa, action, scene, still=False):
    """Return the yes/no truth the question asks about, checked against the labels (``still``: a person
    standing still, about whom no action is asked)."""
    q, a = qa["q"], qa["a"]
    if still:
        assert q not in (T.Q_ACTION, T.Q_DESCRIBE) and not any(act in q for act in ACTIONS), q
    if q == T.Q_ACTION:
        assert a == (T.A_NO_PERSON if action is None else T.fill(T.A_ACTION, action=action))
    elif q == T.Q_SCENE:
        assert a == T.fill(T.A_SCENE, scene=scene)
    elif q == T.Q_DESCRIBE:
        want = T.fill(T.A_DESCRIBE_EMPTY, scene=scene) if action is None else T.fill(
            T.A_DESCRIBE_ACTION, action=action, scene=scene
        )
        assert a == want
    else:
        assert qa["i"] == T.YES_NO_INSTRUCTION and a in (T.YES, T.NO)
        truth = None
        for act in ACTIONS:
            if q == T.fill(T.Q_ACTION_YN, action=act):
                truth = act == action
        for s in ALL_SCENES:
            if q == T.fill(T.Q_SCENE_YN, scene=s):
                truth = s == scene
            if q == T.fill(T.Q_EMPTY_YN, scene=s):
                truth = action is None and not still and s == scene
        assert truth is not None, q
        assert a == (T.YES if truth else T.NO), (q, a, action, scene)
        return truth
    return None


def test_instruction_data_is_videochat2_and_true_to_the_labels(tiny_world):
    root = tiny_world.root
    labels = {v.video: (v.action, v.scene, v.still) for v in tiny_world.videos}
    assert any(still for _, _, still in labels.values())
    answers = []
    for split in ("train", "test_usual", "test_unusual", "test_scene_only", "test_motion"):
        entries = json.loads((root / f"instruct/{split}.json").read_text())
        assert len(entries) == len(tiny_world.split(split))
        for e in entries:
            assert set(e) == {"video", "QA"} and (root / e["video"]).is_file()
            assert all(set(qa) == {"i", "q", "a"} for qa in e["QA"])
            if split == "train":
                # a person standing still is asked only about the scene: 4 questions
                assert len(e["QA"]) == (4 if labels[e["video"]][2] else tiny_world.config.qa_per_video)
            answers += [_check_answer(qa, *labels[e["video"]]) for qa in e["QA"]]
    yes_no = [x for x in answers if x is not None]
    assert 0.35 < np.mean(yes_no) < 0.65  # teaches both answers


def test_test_split_questions_use_the_hallucination_candidates(tiny_world):
    entries = json.loads((tiny_world.root / "instruct/test_unusual.json").read_text())
    records = {r["video"]: r for r in _jsonl(tiny_world.root / "unscene/unusual_context.jsonl")}
    for e in entries:
        r = records[e["video"]]
        no = [qa["q"] for qa in e["QA"] if qa["a"] == T.NO]
        assert T.fill(T.Q_ACTION_YN, action=r["hallucinated_actions"][0]) in no
        assert T.fill(T.Q_SCENE_YN, scene=r["hallucinated_scenes"][0]) in no


def test_world_json_and_manifest(tiny_world):
    meta = json.loads((tiny_world.root / "world.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION == 8 and meta["seed"] == 3
    assert meta["typical_scene"] == TYPICAL_SCENE and meta["actions"] == list(ACTIONS)
    assert WorldConfig.from_dict(meta["config"]) == tiny_world.config
    assert meta["content_hash"] == tiny_world.content_hash
    loaded = load_world(tiny_world.root)
    assert loaded.videos == tiny_world.videos and loaded.config == tiny_world.config
    assert (tiny_world.root / "contact_sheet.png").stat().st_size > 1000


# ------------------------------------------------------------------------------------- resume / rebuild


def test_a_missing_file_is_rebuilt_alone(tmp_path, tiny_config, world_files):
    world = build_world(tmp_path, tiny_config(), seed=5, workers=1, progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.mp4")}
    victim = world.path(world.split("train")[7])
    victim.unlink()
    (tmp_path / "unscene/scene_only.jsonl").unlink()
    before = world_files(tmp_path)
    again = build_world(tmp_path, tiny_config(), seed=5, workers=1, progress=False)
    after = world_files(tmp_path)
    assert set(after) == set(before) | {"unscene/scene_only.jsonl", str(victim.relative_to(tmp_path))}
    assert [k for k in before if before[k] != after[k] and k != "world.json"] == []
    assert again.videos == world.videos
    changed = [p for p, t in stamps.items() if p.stat().st_mtime_ns != t]
    assert changed == [victim]


def test_complete_world_is_skipped(tiny_world, monkeypatch):
    def fail(*_):
        raise AssertionError("rendered a video of a complete world")

    monkeypatch.setattr(world_mod, "_render_and_write", fail)
    assert build_world(tiny_world.root, tiny_world.config, tiny_world.seed, progress=False).content_hash == (
        tiny_world.content_hash
    )


def test_a_killed_build_is_finished_by_a_rerun(tmp_path, monkeypatch, tiny_world, tiny_config, world_files):
    real = world_mod._render_and_write
    done = []

    def dies_after_ten(job):
        if len(done) == 10:
            (tmp_path / "videos/train/half.partial.mp4").write_bytes(b"junk")  # what a killed encoder leaves
            raise KeyboardInterrupt
        done.append(job)
        return real(job)

    monkeypatch.setattr(world_mod, "_render_and_write", dies_after_ten)
    with pytest.raises(KeyboardInterrupt):
        build_world(tmp_path, tiny_world.config, tiny_world.seed, workers=1, progress=False)
    assert not (tmp_path / "world.json").exists() and len(list(tmp_path.rglob("*.mp4"))) == 11
    # A build with another config must not mix into the unfinished one.
    with pytest.raises(WorldMismatchError):
        build_world(tmp_path, tiny_config(rho=0.5), tiny_world.seed, workers=1, progress=False)
    monkeypatch.setattr(world_mod, "_render_and_write", real)
    world = build_world(tmp_path, tiny_world.config, tiny_world.seed, workers=1, progress=False)
    _same_world(tiny_world, world, world_files)
    assert not list(tmp_path.rglob("*.partial.mp4")) and not (tmp_path / ".building.json").exists()


def test_another_config_needs_force(tmp_path, tiny_config):
    build_world(tmp_path, tiny_config(), seed=1, workers=1, progress=False)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(WorldMismatchError):
        build_world(tmp_path, tiny_config(), seed=2, workers=1, progress=False)
    world = build_world(tmp_path, tiny_config(n_train=8), seed=2, force=True, workers=1, progress=False)
    assert len(list(tmp_path.rglob("*.mp4"))) == 8 + 16 + 16 + 8 + 16 + 16 == len(world.videos)
    assert (tmp_path / "notes.txt").read_text() == "mine"  # --force only removes the world's own files


def test_training_questions_are_worded_as_unscene_asks_them():
    from mashvlm.unscene import builder

    for action in ACTIONS:
        assert T.fill(T.Q_ACTION_YN, action=action) == builder.action_question(action)
    for scene in SCENES + NEUTRAL_SCENES:
        assert T.fill(T.Q_SCENE_YN, scene=scene) == builder.scene_question(scene)
        assert T.fill(T.Q_EMPTY_YN, scene=scene) == builder.scene_only_gt_question(scene)
    assert T.Q_DESCRIBE == builder.OPEN_ENDED_PROMPT


def test_world_annotations_pass_unscene_validation_and_build(tiny_world):
    from mashvlm.unscene.builder import build_questions
    from mashvlm.unscene.formats import load_annotations

    anns = load_annotations(tiny_world.unscene_file("unusual_context")) + load_annotations(
        tiny_world.unscene_file("scene_only")
    )
    questions = build_questions(anns, seed=0)
    assert len(questions) == 16 * 5 + 8 * 3


def test_every_train_video_asks_both_answers_of_each_pair(tiny_world):
    """The label in the question, not the video alone, must decide each yes/no answer."""
    entries = json.loads((tiny_world.root / "instruct/train.json").read_text())
    labels = {v.video: (v.action, v.scene, v.still) for v in tiny_world.videos}
    assert any(still for _, _, still in labels.values())
    for e in entries:
        action, scene, still = labels[e["video"]]
        asked = {qa["q"]: qa["a"] for qa in e["QA"]}
        action_qs = [q for q in asked if any(q == T.fill(T.Q_ACTION_YN, action=a) for a in ACTIONS)]
        scene_qs = [q for q in asked if any(q == T.fill(T.Q_SCENE_YN, scene=s) for s in ALL_SCENES)]
        assert sorted(asked[q] for q in scene_qs) == [T.NO, T.YES]
        if still:  # no action asked, confirmed or denied
            assert not action_qs and asked[T.fill(T.Q_EMPTY_YN, scene=scene)] == T.NO
        elif action is None:
            assert [asked[q] for q in action_qs] == [T.NO]
            assert asked[T.fill(T.Q_EMPTY_YN, scene=scene)] == T.YES
        else:
            assert sorted(asked[q] for q in action_qs) == [T.NO, T.YES]
            assert asked[T.fill(T.Q_EMPTY_YN, scene=scene)] == T.NO


def test_synth_flags_for_the_control_scenes():
    from mashvlm.cli import build_parser
    from mashvlm.synth.cli import config_from_args

    def config(*flags):
        return config_from_args(build_parser().parse_args(["synth", *flags]))

    assert config().control_scenes == ("office", "garage") and config().still_frac == 0.1 and not config().pan
    # no control scenes: the held-out rule, and no person standing still (there is nowhere to show one)
    assert config("--control-scenes").control_scenes == () and config("--control-scenes").still_frac == 0.0
    assert config("--control-scenes", "kitchen", "--still-frac", "0").still_frac == 0.0
    assert config("--still-frac", "0.05", "--pan").still_frac == 0.05 and config("--pan").pan
    assert config().n_train_motion == 0 and config("--train-motion", "5").n_train_motion == 5
    # no neutral scene to show the warm-up's actions in
    assert config("--train-motion", "5", "--neutral-scenes").n_train_motion == 0


def test_the_motion_warm_up_asks_about_the_action_in_neutral_scenes(tiny_world):
    config, specs = tiny_world.config, tiny_world.split("train_motion")
    assert len(specs) == config.n_train_motion
    counts = Counter(s.action for s in specs)
    assert set(counts) == set(config.actions) and max(counts.values()) - min(counts.values()) <= 1
    for s in specs:  # where train shows the action in a neutral scene: never a control scene or a held-out pair
        assert s.scene in config.neutral_train_scenes(s.action) and s.scene not in config.control_scenes
    entries = json.loads(tiny_world.instruct_file("train_motion").read_text())
    assert [e["video"] for e in entries] == [s.video for s in specs]
    for e, s in zip(entries, specs, strict=True):
        asked = Counter((qa["q"], qa["a"]) for qa in e["QA"])
        assert asked[(T.Q_ACTION, f"The person is {s.action}.")] == world_mod.MOTION_OPEN_REPEATS
        # every action's yes/no question: "No." once for each wrong one, "Yes." as often for the true one
        wrong = [a for a in config.actions if a != s.action]
        assert asked[(T.fill(T.Q_ACTION_YN, action=s.action), T.YES)] == len(wrong)
        assert all(asked[(T.fill(T.Q_ACTION_YN, action=a), T.NO)] == 1 for a in wrong)
        # and nothing else: no scene is asked about a moving person in these two scenes
        assert sum(asked.values()) == world_mod.MOTION_OPEN_REPEATS + 2 * len(wrong)
    assert len({e["QA"][0]["q"] for e in entries}) > 2  # in a drawn order, not a fixed one
    assert all(tiny_world.path(s).is_file() for s in specs)


def test_the_motion_warm_up_leaves_the_other_splits_unchanged():
    with_warm_up, without = plan_world(WorldConfig(n_train_motion=1200), 0), plan_world(WorldConfig(), 0)
    assert without["train_motion"] == [] and len(with_warm_up["train_motion"]) == 1200
    assert all(with_warm_up[split] == without[split] for split in without if split != "train_motion")
