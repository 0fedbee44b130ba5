"""``mashvlm describe`` with an invalid --start/--end: one line naming the range and the duration, exit 2."""

import pytest

from mashvlm.cli import main as cli_main
from mashvlm.modeling.tiny import tiny_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_parts):
    processor, config = tiny_parts
    path = tmp_path_factory.mktemp("mash")
    tiny_model(config).save_pretrained(path)
    processor.save_pretrained(path)
    return path


def test_describe_rejects_an_invalid_clip_range(checkpoint, tmp_path, gray_ramp_video, capsys):
    video = gray_ramp_video(tmp_path / "v.mp4", 30)  # 10 fps: 3 s
    for start, end in (("5", "6"), ("2", "1")):
        code = cli_main(["describe", str(video), "--model", str(checkpoint), "--start", start, "--end", end])
        err = capsys.readouterr().err
        last = err.strip().splitlines()[-1]  # after the weight-loading progress bar
        assert code == 2 and "Traceback" not in err
        assert last.startswith("error: ") and "v.mp4: invalid clip" in last and "3.00s" in last
