"""Video decoding: middle-of-segment sampling (VideoChat2 / MVBench convention) and typed errors."""

import numpy as np
import pytest

from mashvlm.video import (
    CorruptVideoError,
    NoVideoStreamError,
    VideoDecodeError,
    VideoNotFoundError,
    VideoTooShortError,
    read_video_frames,
    segment_middle_indices,
    write_video,
)


def test_segment_middles_by_hand():
    # 40 frames, 8 segments of 5: middles at 2.5 + 5i -> floor -> 2, 7, ..., 37
    assert segment_middle_indices(40, 8) == [2, 7, 12, 17, 22, 27, 32, 37]
    # 10 frames, 4 segments of 2.5: middles 1.25, 3.75, 6.25, 8.75
    assert segment_middle_indices(10, 4) == [1, 3, 6, 8]
    assert segment_middle_indices(4, 4) == [0, 1, 2, 3]


def test_reads_the_middle_frames(tmp_path, gray_ramp_video, frame_index):
    path = gray_ramp_video(tmp_path / "ramp.mp4", 24)
    frames = read_video_frames(path, 6)
    assert frames.shape == (6, 32, 32, 3) and frames.dtype == np.uint8
    assert [frame_index(f) for f in frames] == segment_middle_indices(24, 6)


def test_clip_bounds_select_frames_inside_the_clip(tmp_path, gray_ramp_video, frame_index):
    path = gray_ramp_video(tmp_path / "ramp.mp4", 30, fps=10)  # frame i at i / 10 s
    frames = read_video_frames(path, 4, start=1.0, end=2.0)  # frames 10..19
    assert [frame_index(f) for f in frames] == [10 + i for i in segment_middle_indices(10, 4)]


def test_missing_file(tmp_path):
    with pytest.raises(VideoNotFoundError, match="nope.mp4"):
        read_video_frames(tmp_path / "nope.mp4", 4)


def test_not_a_video(tmp_path):
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(b"this is not a video" * 50)
    with pytest.raises(CorruptVideoError, match="garbage.mp4"):
        read_video_frames(bad, 4)


def test_truncated_video(tmp_path, gray_ramp_video):
    path = gray_ramp_video(tmp_path / "ramp.mp4", 24)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(VideoDecodeError, match="cut.mp4"):
        read_video_frames(cut, 4)


def test_audio_only_file(tmp_path):
    import av

    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(NoVideoStreamError, match="sound.m4a"):
        read_video_frames(path, 4)


def test_too_short(tmp_path, gray_ramp_video):
    path = gray_ramp_video(tmp_path / "short.mp4", 3)
    with pytest.raises(VideoTooShortError, match="short.mp4.*3 frames.*16"):
        read_video_frames(path, 16)
    with pytest.raises(VideoTooShortError, match="between"):
        read_video_frames(gray_ramp_video(tmp_path / "long.mp4", 30), 8, start=0.0, end=0.5)


def test_errors_are_value_errors_naming_the_path(tmp_path):
    # One except clause catches every bad-video case, and the message names the file.
    for err in (VideoNotFoundError, CorruptVideoError, NoVideoStreamError, VideoTooShortError):
        assert issubclass(err, VideoDecodeError) and issubclass(err, ValueError)
    assert issubclass(VideoNotFoundError, FileNotFoundError)


def test_write_video_is_atomic_and_checks_frames(tmp_path):
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", np.zeros((2, 31, 32, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [])
    assert not list(tmp_path.glob("*.partial*"))
