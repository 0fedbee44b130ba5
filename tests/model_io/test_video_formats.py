"""One video module for every source: mp4, webm, mkv, avi, gif, frame folders.

Seek and full decode give the same frames; truncated files, rotated phone videos and invalid clip
ranges are handled. Test videos are made here with PyAV (and PIL for gif / frame folders).
"""

import math

import numpy as np
import pytest

import mashvlm.video as video
from mashvlm.errors import UsageError
from mashvlm.video import (
    ClipRangeError,
    CorruptVideoError,
    NoVideoStreamError,
    TruncatedVideoError,
    VideoDecodeError,
    VideoTooShortError,
    display_transform,
    frame_folder_files,
    read_video_frames,
    segment_middle_indices,
    truncation_shortfall,
)

WIDTH, HEIGHT = 64, 48


def _ramp_frames(num_frames: int, seed: int = 0) -> list[np.ndarray]:
    """Frame i: two flat bands that spell i (gray 8 * (i % 32), 8 * (i // 32)) over noise (real data)."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(num_frames):
        frame = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        frame[:16] = 8 * (i % 32)
        frame[16:32] = 8 * (i // 32)
        frames.append(frame)
    return frames


def _index(frame: np.ndarray) -> int:
    low, high = (int(round(float(band[4:12, 8:-8].mean()) / 8)) for band in (frame[:16], frame[16:32]))
    return low + 32 * high


# name -> (codec, container options, stream options). Keyframe every 12 frames, so seeking matters;
# the mp4 has B-frames (decode order differs from presentation order) and its index at the front.
FORMATS = {
    "faststart.mp4": ("libx264", {"movflags": "+faststart"}, {"g": "12", "bf": "2", "crf": "10"}),
    "clip.webm": ("libvpx-vp9", {}, {"g": "12", "crf": "10", "b": "0", "deadline": "realtime", "cpu-used": "8"}),
    "clip.mkv": ("libx264", {}, {"g": "12", "crf": "10"}),
    "clip.avi": ("mpeg4", {}, {"g": "12", "b": "8000000"}),
}


def _write(path, num_frames: int = 90, fps: int = 30, *, rotation=None, frames=None, formats=FORMATS):
    import av

    codec, container_options, options = formats.get(path.name, FORMATS["clip.mkv"])
    frames = _ramp_frames(num_frames) if frames is None else frames
    with av.open(str(path), "w", options=container_options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = dict(options)
        if rotation is not None:
            stream.set_display_rotation(*rotation)
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return path


def _write_gif(path, num_frames: int = 90):
    from PIL import Image

    images = [Image.fromarray(f) for f in _ramp_frames(num_frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=40, loop=0)  # 25 fps
    return path


def _no_fallback(monkeypatch):
    def refuse(*args):
        raise AssertionError("the seek path fell back to full decoding")

    monkeypatch.setattr(video, "_decode_by_order", refuse)


@pytest.mark.parametrize("name", [*FORMATS, "clip.gif"])
def test_seek_and_full_decode_give_the_same_frames(tmp_path, monkeypatch, name):
    gif = name.endswith(".gif")
    path = _write_gif(tmp_path / name) if gif else _write(tmp_path / name)
    fps = 25 if gif else 30  # gif delays are in 1/100 s
    full = read_video_frames(path, 16, decode="full")
    full_clip = read_video_frames(path, 5, start=1.0, end=2.5, decode="full")
    assert full.shape == (16, HEIGHT, WIDTH, 3)
    assert [_index(f) for f in full] == segment_middle_indices(90, 16)
    in_clip = [i for i in range(90) if 1.0 <= i / fps < 2.5]
    assert [_index(f) for f in full_clip] == [in_clip[i] for i in segment_middle_indices(len(in_clip), 5)]
    every = read_video_frames(path, 90, decode="full")
    assert [_index(f) for f in every] == list(range(90))
    _no_fallback(monkeypatch)
    assert np.array_equal(read_video_frames(path, 16, decode="seek"), full)
    assert np.array_equal(read_video_frames(path, 5, start=1.0, end=2.5), full_clip)
    assert np.array_equal(read_video_frames(path, 90), every)  # every frame: crosses every keyframe


@pytest.mark.parametrize("name", list(FORMATS))
@pytest.mark.parametrize("keep", [0.3, 0.6])
def test_truncated_files_with_the_index_in_front_are_detected(tmp_path, name, keep):
    whole = _write(tmp_path / name)
    cut = tmp_path / f"cut_{name}"
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * keep)])
    for decode in ("seek", "full"):
        with pytest.raises(TruncatedVideoError, match=f"cut_{name}.*truncated") as info:
            read_video_frames(cut, 4, decode=decode)
        assert isinstance(info.value, VideoDecodeError)


def test_truncation_tolerates_loose_declarations():
    frame = 1 / 30
    # Declared frame count (mp4 index, avi header): a few frames or 5 % may be missing.
    assert truncation_shortfall(88, 2.93, frame, declared_frames=90, declared_end_s=None) is None
    assert "27 of the 90" in truncation_shortfall(27, 0.9, frame, declared_frames=90, declared_end_s=3.0)
    assert truncation_shortfall(960, 32.0, frame, declared_frames=1000, declared_end_s=None) is None
    assert truncation_shortfall(900, 30.0, frame, declared_frames=1000, declared_end_s=None) is not None
    # Declared duration only (mkv / webm): up to 10 % short (container duration may cover audio).
    assert truncation_shortfall(85, 2.84, frame, declared_frames=None, declared_end_s=3.0) is None
    assert "1.80s" in truncation_shortfall(54, 1.8, frame, declared_frames=None, declared_end_s=3.0)
    # Nothing declared (gif, raw streams): cannot be checked.
    assert truncation_shortfall(5, 0.2, frame, declared_frames=None, declared_end_s=None) is None


def test_a_file_declaring_nothing_cannot_be_checked(tmp_path):
    # A live-written mkv (no duration, no cues) and a gif (frames counted by scanning) declare nothing
    # beyond what is there: a cut one reads as a shorter, whole video. Documented limit.
    live = tmp_path / "live.mkv"
    live_format = {"live.mkv": ("libx264", {"live": "1"}, {"g": "12"})}
    for whole in (_write(live, formats=live_format), _write_gif(tmp_path / "clip.gif")):
        cut = tmp_path / f"cut_{whole.name}"
        cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        frames = read_video_frames(cut, 4)
        assert frames.shape[0] == 4 and _index(frames[-1]) < 60


def _corner_frames(num_frames: int = 6) -> list[np.ndarray]:
    """A wide frame (64 x 32), black with a white block in the top-left corner."""
    frame = np.zeros((32, 64, 3), dtype=np.uint8)
    frame[:8, :8] = 255
    return [frame] * num_frames


def _white_corner(frame: np.ndarray) -> str:
    h, w = frame.shape[:2]
    corners = {
        "top-left": frame[:4, :4],
        "top-right": frame[:4, w - 4 :],
        "bottom-left": frame[h - 4 :, :4],
        "bottom-right": frame[h - 4 :, w - 4 :],
    }
    return max(corners, key=lambda k: corners[k].mean())


@pytest.mark.parametrize(
    ("rotation", "shape", "corner"),
    [
        # PyAV's degrees are counter-clockwise (VideoFrame.rotation); a phone portrait video is -90.
        ((90,), (64, 32, 3), "bottom-left"),
        ((-90,), (64, 32, 3), "top-right"),
        ((180,), (32, 64, 3), "bottom-right"),
        ((0, True), (32, 64, 3), "top-right"),  # mirror only
        ((90, True), (64, 32, 3), "bottom-right"),  # turn, then mirror
    ],
)
@pytest.mark.parametrize("name", ["faststart.mp4", "clip.mkv"])
def test_display_rotation_is_applied(tmp_path, name, rotation, shape, corner):
    path = _write(tmp_path / name, rotation=rotation, frames=_corner_frames())
    for decode in ("seek", "full"):
        frames = read_video_frames(path, 2, decode=decode)
        assert frames.shape[1:] == shape
        assert _white_corner(frames[0]) == corner


def _ffmpeg_rotation_matrix(ccw_degrees: float) -> list[int]:
    """FFmpeg's av_display_rotation_set(matrix, -ccw_degrees) (its angle is clockwise), as PyAV calls it."""
    radians = math.radians(ccw_degrees)
    c, s = round(65536 * math.cos(radians)), round(65536 * math.sin(radians))
    return [c, -s, 0, s, c, 0, 0, 0, 1 << 30]


def test_display_transform_of_ffmpeg_matrices():
    assert display_transform(_ffmpeg_rotation_matrix(0)) == (0, False)
    assert display_transform(_ffmpeg_rotation_matrix(90)) == (1, False)
    assert display_transform(_ffmpeg_rotation_matrix(180)) == (2, False)
    # An iPhone portrait video: tkhd matrix [0 1; -1 0] (ffprobe: "rotation of -90.00 degrees"); ffmpeg
    # shows it turned clockwise (transpose=clock), i.e. three counter-clockwise quarter turns.
    one = 1 << 16
    assert display_transform([0, one, 0, -one, 0, 0, 0, 0, 1 << 30]) == (3, False)
    assert display_transform([-one, 0, 0, 0, one, 0, 0, 0, 1 << 30]) == (0, True)  # av_display_matrix_flip(h)
    # Odd angles round to the nearest quarter turn.
    assert display_transform(_ffmpeg_rotation_matrix(60)) == (1, False)
    assert display_transform(_ffmpeg_rotation_matrix(-30)) == (0, False)


def test_invalid_clip_ranges_name_the_range_and_the_duration(tmp_path):
    path = _write(tmp_path / "clip.mkv")  # 90 frames at 30 fps: 3 s
    cases = [
        dict(start=5.0, end=6.0),
        dict(start=2.0, end=1.0),
        dict(start=-1.0, end=1.0),
        dict(start=0.0, end=10.0),
        dict(start=float("nan")),
        dict(start=3.0),
        dict(end=0.0),
    ]
    for clip in cases:
        with pytest.raises(ClipRangeError, match=r"clip.mkv: invalid clip .*3\.00s") as info:
            read_video_frames(path, 4, **clip)
        assert isinstance(info.value, UsageError) and isinstance(info.value, VideoDecodeError)
    # Valid: a clip ending a little past the last frame (annotations round up), or open-ended.
    assert read_video_frames(path, 4, start=2.0, end=3.2).shape[0] == 4
    assert read_video_frames(path, 4, start=2.0).shape[0] == 4


def _frame_folder(folder, num_frames: int, suffix: str = ".png"):
    from PIL import Image

    folder.mkdir()
    for i, frame in enumerate(_ramp_frames(num_frames)):
        Image.fromarray(frame).save(folder / f"frame_{i + 1}{suffix}")
    return folder


def test_frame_folder_is_read_in_natural_order(tmp_path):
    folder = _frame_folder(tmp_path / "frames", 24)
    (folder / "notes.txt").write_text("not a frame")
    (folder / ".hidden.png").write_bytes(b"")
    names = [p.name for p in frame_folder_files(folder)]
    assert names[:3] == ["frame_1.png", "frame_2.png", "frame_3.png"] and names[9] == "frame_10.png"
    assert len(names) == 24
    frames = read_video_frames(folder, 6)
    assert frames.shape == (6, HEIGHT, WIDTH, 3)
    assert [_index(f) for f in frames] == segment_middle_indices(24, 6)
    clip = read_video_frames(folder, 4, start=1.0, end=2.0, fps=10)  # frames 10..19
    assert [_index(f) for f in clip] == [10 + i for i in segment_middle_indices(10, 4)]


def test_frame_folder_errors(tmp_path):
    folder = _frame_folder(tmp_path / "jpgs", 8, suffix=".jpg")
    assert read_video_frames(folder, 4).shape == (4, HEIGHT, WIDTH, 3)
    with pytest.raises(ClipRangeError, match="jpgs.*fps"):
        read_video_frames(folder, 4, start=0.5)
    with pytest.raises(ClipRangeError, match="jpgs.*0.80s"):
        read_video_frames(folder, 4, start=1.0, fps=10)
    with pytest.raises(VideoTooShortError, match="jpgs.*8 frames"):
        read_video_frames(folder, 16)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoVideoStreamError, match="empty"):
        read_video_frames(empty, 4)
    (folder / "frame_9.jpg").write_bytes(b"not an image")
    with pytest.raises(CorruptVideoError, match="frame_9.jpg"):
        read_video_frames(folder, 9)


def test_frame_folder_with_mixed_sizes(tmp_path):
    from PIL import Image

    folder = _frame_folder(tmp_path / "mixed", 4)
    Image.new("RGB", (10, 10)).save(folder / "frame_5.png")
    with pytest.raises(CorruptVideoError, match="frame_5.png is 10x10"):
        read_video_frames(folder, 5)


def test_unknown_decode_mode(tmp_path):
    with pytest.raises(UsageError, match="decode"):
        read_video_frames(tmp_path, 4, decode="fast")
