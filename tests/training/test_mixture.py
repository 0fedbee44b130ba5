"""The mixture loader: every source layout through the one video module, sampling per dataset, errors that
name file, line, record and field, and a broken video that costs one sample, a log line and a count."""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # mini_mixture (importlib import mode)

from mini_mixture import (  # noqa: E402
    LAYOUTS,
    add_broken_dataset,
    make_layout_datasets,
    record,
    write_annotations,
    write_mixture,
)

from mashvlm.errors import FormatError, UsageError  # noqa: E402
from mashvlm.training.data import (  # noqa: E402
    SKIPPED,
    AllSamplesSkipped,
    DataFormatError,
    VideoInstructionCollator,
    VideoInstructionDataset,
    load_videochat2_json,
)
from mashvlm.training.mixture import load_mixture, read_mixture, take_indices  # noqa: E402


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    return root, make_layout_datasets(root)


@pytest.fixture(scope="module")
def processor(tiny_model_kwargs):
    from mashvlm.modeling.tiny import tiny_processor_and_config

    corpus = ["Answer briefly. What happens 0?", "Something 0.", "What happens 1?", "Something 1."]
    return tiny_processor_and_config(corpus, **tiny_model_kwargs)[0]


def test_every_layout_loads_through_one_video_module(layouts, processor):
    root, entries = layouts
    loaded = load_mixture(write_mixture(root, entries))
    assert loaded.counts == {name: {"available": 2, "taken": 2} for name in LAYOUTS}
    assert sorted(r.source for r in loaded.records) == sorted(2 * list(LAYOUTS))
    dataset = VideoInstructionDataset(loaded.records, processor, cache_videos=False)
    assert len(dataset) == 24  # 12 records x 2 QA pairs
    sources = set()
    for index in range(len(dataset)):
        example = dataset[index]
        assert example["pixel_values_videos"].shape == (processor.num_frames, 3, 32, 32)
        sources.add(dataset.items[index][0].source)
    assert sources == set(LAYOUTS)
    # The same frames as the video module's sampling gives for that file.
    from mashvlm.video import read_video_frames

    first = dataset.items[0][0]
    expected = processor.preprocess_video(read_video_frames(first.video, processor.num_frames))
    assert torch.equal(dataset[0]["pixel_values_videos"], expected)


def test_counts_ratios_and_the_shuffle(layouts):
    root, entries = layouts
    mixed = [dict(entries[0], samples=1), dict(entries[1], ratio=2.5), entries[2]]
    path = write_mixture(root, mixed, "sampled.json", seed=3)
    loaded = load_mixture(path)
    assert loaded.counts == {"mp4": {"available": 2, "taken": 1}, "webm": {"available": 2, "taken": 5},
                             "mkv": {"available": 2, "taken": 2}}
    assert [line.split() for line in loaded.table().splitlines()] == [
        ["dataset", "available", "taken"], ["mp4", "2", "1"], ["webm", "2", "5"], ["mkv", "2", "2"], ["total", "6", "8"]]
    webm = sorted(r.video for r in loaded.records if r.source == "webm")
    assert len(webm) == 5 and len(set(webm)) == 2  # each twice, one of them a third time
    again = load_mixture(path)
    assert [r.video for r in again.records] == [r.video for r in loaded.records]  # seeded
    # Adding a dataset leaves what the others take unchanged.
    more = load_mixture(write_mixture(root, [*mixed, entries[3]], "more.json", seed=3))
    assert sorted(r.video for r in more.records if r.source == "mp4") == \
        sorted(r.video for r in loaded.records if r.source == "mp4")


def test_take_indices_subsamples_or_repeats():
    rng = random.Random(0)
    below = take_indices(10, 4, rng)
    assert len(below) == 4 and len(set(below)) == 4
    above = take_indices(3, 7, rng)
    assert sorted(set(above)) == [0, 1, 2] and len(above) == 7 and max(above.count(i) for i in range(3)) == 3
    assert take_indices(5, 5, rng) == [0, 1, 2, 3, 4]


def test_clip_times_and_caption_records(tmp_path, layouts, processor):
    root, _ = layouts
    ann = write_annotations(tmp_path / "a.json", [
        record("clip0.mp4", start=0.2, end=0.9),
        {"video": "clip1.mp4", "QA": [{"i": "Describe the video.", "q": "", "a": "A square."}]},
    ])
    records = load_videochat2_json(ann, root / "videos" / "mp4")
    assert (records[0].start, records[0].end) == (0.2, 0.9)
    assert records[1].turns == (("Describe the video.", "A square."),)
    dataset = VideoInstructionDataset(records, processor, cache_videos=False)
    from mashvlm.video import read_video_frames

    clip = read_video_frames(records[0].video, processor.num_frames, start=0.2, end=0.9)
    assert torch.equal(dataset[0]["pixel_values_videos"], processor.preprocess_video(clip))


@pytest.mark.parametrize("bad, line, message", [
    ({"video": "x.mp4", "QA": [{"q": "Why?"}]}, 11, r"record 1: QA\[0\]\.a must be a non-empty string"),
    ({"video": "/abs/x.mp4", "QA": [{"q": "Why?", "a": "So."}]}, 11, r"record 1: field 'video'.*inside the video root"),
    ({"image": "x.jpg", "QA": [{"q": "Why?", "a": "So."}]}, 11, r"record 1: field 'image': image records"),
    ({"video": "x.mp4", "start": 3, "end": 1, "QA": [{"q": "Why?", "a": "So."}]}, 11,
     r"record 1: field 'end' \(1.0\) must be after 'start'"),
    ({"video": "x.mp4", "QA": [{"i": "", "q": "", "a": "So."}]}, 11, r"record 1: QA\[0\]: 'i' and 'q' are both empty"),
])
def test_errors_name_file_line_record_and_field(tmp_path, bad, line, message):
    path = write_annotations(tmp_path / "train.json", [{"video": "a.mp4", "QA": [{"q": "Where?", "a": "Here."}]}, bad])
    assert path.read_text().splitlines()[line - 1].strip() == "{"  # the line where record 1 starts
    with pytest.raises(DataFormatError, match=f"train.json:{line}: {message}") as info:
        load_videochat2_json(path)
    assert isinstance(info.value, FormatError) and info.value.line == line and info.value.record == 1


def test_broken_json_and_more_errors(tmp_path):
    path = tmp_path / "t.json"
    path.write_text('[\n {"video": "a.mp4", "QA": []},\n {"video": "b.mp4"}\n]')
    with pytest.raises(DataFormatError, match=r"t.json:2: record 0: field 'QA'.*\(and 1 more invalid records"):
        load_videochat2_json(path)
    path.write_text('[\n {"video": "a.mp4",\n  "QA": [}\n]')
    with pytest.raises(DataFormatError, match=r"t.json:3: not valid JSON"):
        load_videochat2_json(path)
    path.write_text('{"video": "a.mp4"}')
    with pytest.raises(DataFormatError, match=r"expected a JSON list.*got dict"):
        load_videochat2_json(path)


@pytest.mark.parametrize("entry, field", [
    ({"name": "a", "annotations": "a.json", "video_root": ".", "samples": 3, "ratio": 0.5}, "datasets[0].ratio"),
    ({"name": "a", "annotations": "a.json", "video_root": ".", "sample": 3}, "datasets[0].sample"),
    ({"name": "a", "annotations": [], "video_root": "."}, "datasets[0].annotations"),
    ({"name": "a", "annotations": "a.json", "video_root": ".", "samples": 0}, "datasets[0].samples"),
    ({"name": "a", "annotations": "a.json"}, "datasets[0].video_root"),
])
def test_mixture_file_errors_name_the_field(tmp_path, entry, field):
    path = write_mixture(tmp_path, [entry])
    with pytest.raises(FormatError, match=re.escape(f"field '{field}'")):
        read_mixture(path)


def test_a_missing_video_root_or_annotation_file_is_refused(tmp_path, layouts):
    root, entries = layouts
    with pytest.raises(UsageError, match=r"dataset 'mp4': video_root .*nowhere is not a folder"):
        load_mixture(write_mixture(root, [dict(entries[0], video_root="nowhere")], "m1.json"))
    with pytest.raises(DataFormatError, match=r"ann/none.json: no such annotation file"):
        load_mixture(write_mixture(root, [dict(entries[0], annotations=["ann/none.json"])], "m2.json"))


def test_a_batch_of_skipped_samples_is_refilled(tmp_path, layouts, processor):
    root, _ = layouts
    broken = add_broken_dataset(tmp_path)
    records = load_videochat2_json(tmp_path / broken["annotations"][0], tmp_path / broken["video_root"],
                                   source="broken")
    dataset = VideoInstructionDataset(records, processor, skip_undecodable=True)
    bad = [i for i in range(len(dataset)) if SKIPPED in dataset[i]]
    assert [dataset.items[i][0].video.endswith("bad.mp4") for i in bad] == [True, True] and len(dataset) == 4
    collate = VideoInstructionCollator(pad_token_id=0, dataset=dataset)
    batch = collate([dataset[i] for i in bad])
    assert batch["input_ids"].shape[0] == 1 and batch["pixel_values_videos"].shape[0] == 1
    assert [s["dataset"] for s in batch[SKIPPED]] == ["broken", "broken"]
    mixed = collate([dataset[i] for i in range(4)])
    assert mixed["input_ids"].shape[0] == 2 and len(mixed[SKIPPED]) == 2  # dropped, not replaced
    only_bad = VideoInstructionDataset([records[1]], processor, skip_undecodable=True)
    with pytest.raises(AllSamplesSkipped, match=r"bad.mp4.*mashvlm data check"):
        VideoInstructionCollator(pad_token_id=0, dataset=only_bad)([only_bad[0]])
    strict = VideoInstructionDataset(records, processor)
    from mashvlm.video import CorruptVideoError

    with pytest.raises(CorruptVideoError, match="bad.mp4"):
        strict[bad[0]]


@pytest.mark.parametrize("workers", [0, 2])
def test_training_skips_and_counts_a_broken_video(tmp_path, layouts, tiny_model_kwargs, workers, caplog):
    from mashvlm.training.config import TrainConfig
    from mashvlm.training.trainer import train

    root, entries = layouts
    broken = add_broken_dataset(root, f"broken{workers}")
    mixture = write_mixture(root, [entries[0], entries[4], broken], f"train{workers}.json")
    config = TrainConfig(mixture=str(mixture), output_dir=str(tmp_path / "out"), tiny=tiny_model_kwargs,
                         per_device_train_batch_size=4, num_train_epochs=1.0, logging_steps=1, save_steps=1000,
                         dataloader_num_workers=workers, seed=0)
    with caplog.at_level("WARNING", logger="mashvlm.training"):
        result = train(config, progress=False)
    name = f"broken{workers}"
    # 6 records x 2 QA = 12 samples in 3 steps; the bad video's 2 samples are skipped, each logged once.
    assert result.global_step == 3 and result.skipped == {name: 2}
    skips = [r.getMessage() for r in caplog.records if "skipped a sample" in r.getMessage()]
    assert len(skips) == 2 and all(name in s and "bad.mp4" in s for s in skips)
    log = json.loads((tmp_path / "out" / "train_log.json").read_text())
    assert log["skipped"] == {name: 2}
    assert [v["video"].endswith("bad.mp4") and v["skips"] == 2 for v in log["skipped_videos"]] == [True]
    assert log["mixture"][name] == {"available": 2, "taken": 2}


def test_skip_counts_survive_a_kill_and_resume(tmp_path, layouts, tiny_model_kwargs, monkeypatch):
    import transformers

    from mashvlm.training.config import TrainConfig
    from mashvlm.training.trainer import train

    root, entries = layouts
    mixture = write_mixture(root, [entries[0], entries[4], add_broken_dataset(root, "brokenk")], "kill.json")
    config = TrainConfig(mixture=str(mixture), output_dir=str(tmp_path / "out"), tiny=tiny_model_kwargs,
                         per_device_train_batch_size=4, num_train_epochs=1.0, save_steps=1, seed=0)
    real_step = transformers.Trainer.training_step

    def killed_at_step_3(self, *args, **kwargs):
        if self.state.global_step == 2:
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(transformers.Trainer, "training_step", killed_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    saved = json.loads((tmp_path / "out" / "checkpoint-2" / "skipped_samples-0.json").read_text())
    monkeypatch.setattr(transformers.Trainer, "training_step", real_step)
    resumed = train(config, progress=False)
    assert resumed.resumed_from.endswith("checkpoint-2") and resumed.global_step == 3
    # Steps 1-2 are not run again; their skips come from the checkpoint, step 3's are counted anew.
    assert saved["counts"]["brokenk"] >= 1  # (this seed puts a broken sample before the kill)
    assert resumed.skipped == {"brokenk": 2}
