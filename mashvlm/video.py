"""Video files in and out, with PyAV.

Frames are sampled the VideoChat2 / MVBench way: the clip is cut into ``num_frames`` equal segments
and the frame at the middle of each segment is taken. Every failure is a typed error that names
the file, so a benchmark runner can record it and go on.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from mashvlm.errors import MashVlmError
from mashvlm.files import atomic_path

__all__ = [
    "VideoDecodeError",
    "VideoNotFoundError",
    "CorruptVideoError",
    "NoVideoStreamError",
    "VideoTooShortError",
    "segment_middle_indices",
    "read_video_frames",
    "write_video",
]


class VideoDecodeError(MashVlmError, ValueError):
    """A video could not be turned into frames. ``path`` names the file."""

    def __init__(self, path: str | os.PathLike, message: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


class VideoNotFoundError(VideoDecodeError, FileNotFoundError):
    """The video file does not exist."""


class CorruptVideoError(VideoDecodeError):
    """The file exists but cannot be opened or decoded as a video."""


class NoVideoStreamError(VideoDecodeError):
    """The container opens but holds no video stream (e.g. audio only)."""


class VideoTooShortError(VideoDecodeError):
    """The video (or the requested clip of it) has fewer frames than asked for."""


def segment_middle_indices(num_available: int, num_frames: int) -> list[int]:
    """Indices of the middle frames of ``num_frames`` equal segments of ``num_available`` frames.

    Segment ``i`` covers ``[i * n / T, (i + 1) * n / T)``; its middle is ``floor((i + 0.5) * n / T)``.
    """
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if num_available < num_frames:
        raise ValueError(f"need at least {num_frames} frames, have {num_available}")
    return [int((i + 0.5) * num_available / num_frames) for i in range(num_frames)]


def _open(path: Path):
    import av

    if not path.is_file():
        raise VideoNotFoundError(path, "no such file")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as err:
        raise CorruptVideoError(path, f"cannot open as a video container ({err})") from err
    if not container.streams.video:
        container.close()
        raise NoVideoStreamError(path, "the file has no video stream")
    return container


def _frame_times(container, stream) -> list[float]:
    """Presentation times (seconds) of every frame, from the packets alone (no decoding)."""
    tb = stream.time_base
    pts = [p.pts for p in container.demux(stream) if p.pts is not None and p.size > 0]
    return [float(p * tb) for p in sorted(pts)]


def read_video_frames(
    path: str | os.PathLike,
    num_frames: int = 16,
    *,
    start: float | None = None,
    end: float | None = None,
) -> np.ndarray:
    """Decode ``num_frames`` RGB frames, ``uint8 [T, H, W, 3]``, at the middles of equal segments.

    ``start`` / ``end`` (seconds) restrict sampling to a clip of the video.
    Raises a :class:`VideoDecodeError` subclass naming ``path`` for every kind of bad input.
    """
    import av

    path = Path(path)
    if start is not None and end is not None and end <= start:
        raise ValueError(f"{path}: end ({end}) must be after start ({start})")
    container = _open(path)
    try:
        stream = container.streams.video[0]
        try:
            times = _frame_times(container, stream)
        except av.FFmpegError as err:
            raise CorruptVideoError(path, f"cannot read packets ({err})") from err
        lo = -float("inf") if start is None else start
        hi = float("inf") if end is None else end
        in_clip = [i for i, t in enumerate(times) if lo <= t < hi]
        if len(in_clip) < num_frames:
            where = "" if start is None and end is None else f" between {start}s and {end}s"
            raise VideoTooShortError(
                path, f"has {len(in_clip)} frames{where}, fewer than the {num_frames} requested"
            )
        wanted = [in_clip[i] for i in segment_middle_indices(len(in_clip), num_frames)]
        frames = _decode_by_order(container, stream, path, wanted)
    finally:
        container.close()
    return np.stack(frames)


def _decode_by_order(container, stream, path: Path, wanted: list[int]) -> list[np.ndarray]:
    """Decode the frames whose presentation order is in ``wanted`` (sorted, may repeat)."""
    import av

    container.seek(0)
    targets: dict[int, int] = {}
    for idx in wanted:
        targets[idx] = targets.get(idx, 0) + 1
    out: list[np.ndarray] = []
    last = max(wanted)
    try:
        for order, frame in enumerate(_decoded_in_order(container, stream)):
            if order in targets:
                rgb = frame.to_ndarray(format="rgb24")
                out.extend([rgb] * targets[order])
            if order >= last:
                break
    except av.FFmpegError as err:
        raise CorruptVideoError(path, f"decoding failed ({err})") from err
    if len(out) != len(wanted):
        raise CorruptVideoError(
            path, f"decoded only {len(out)} of the {len(wanted)} sampled frames (truncated file?)"
        )
    return out


def _decoded_in_order(container, stream) -> Iterable:
    # Decoders emit frames in presentation order for the codecs we meet; frames without pts are kept in place.
    yield from container.decode(stream)


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float = 8.0,
    *,
    codec: str = "libx264",
    crf: int = 18,
    threads: int = 0,
) -> Path:
    """Encode ``uint8 [T, H, W, 3]`` RGB frames to ``path`` (mp4/H.264 by default, yuv420p).

    Height and width must be even (yuv420p). ``threads=1`` makes the file bit-reproducible (x264's frame
    and lookahead threads depend on timing); 0 lets the encoder choose. Returns the path.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = list(frames)
    if not frames:
        raise ValueError(f"{path}: no frames to write")
    height, width = frames[0].shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"{path}: frame size {width}x{height} must be even for yuv420p")
    # A killed writer never leaves a half file under the real name.
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "veryfast", "bf": "0"}
            if threads == 1:
                stream.options |= {"threads": "1", "x264-params": "threads=1:lookahead-threads=1:sliced-threads=0"}
        if threads:
            stream.codec_context.thread_count = threads
        for rgb in frames:
            if rgb.shape[:2] != (height, width) or rgb.dtype != np.uint8:
                raise ValueError(f"{path}: every frame must be uint8 {height}x{width}x3")
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
