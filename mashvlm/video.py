"""Video files in and out, with PyAV.

Every source goes through :func:`read_video_frames`: container files (mp4, webm, mkv, avi, gif, ...)
and folders of numbered frame images. Frames are sampled the VideoChat2 / MVBench way: the clip is
cut into ``num_frames`` equal segments and the frame at the middle of each segment is taken.

How a container file is read:

1. The packets are demuxed (no decoding) to learn every frame's presentation time and which frames
   are keyframes. This is cheap next to decoding and exact for variable-frame-rate files.
2. The demuxed frames are checked against what the container declares (frame count from the index
   or header, else duration): a file whose index survived but whose tail is cut off raises
   :class:`TruncatedVideoError` instead of being sampled as if whole.
3. Only the sampled frames are decoded: for each one, seek to the keyframe before it and decode
   forward (``decode="seek"``). When the timing cannot be trusted (frames without timestamps,
   a seek that lands after the frame) it falls back to decoding from the start (``decode="full"``),
   which gives the same frames.
4. The stream's display matrix (phone videos) is applied, so frames come out upright.

Every failure is a typed error that names the file, so a benchmark runner can record it and go on.
"""

from __future__ import annotations

import bisect
import gc
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np

from mashvlm.errors import MashVlmError, UsageError
from mashvlm.files import atomic_path

__all__ = [
    "VideoDecodeError",
    "VideoNotFoundError",
    "CorruptVideoError",
    "NoVideoStreamError",
    "VideoTooShortError",
    "TruncatedVideoError",
    "ClipRangeError",
    "FRAME_IMAGE_SUFFIXES",
    "display_transform",
    "frame_folder_files",
    "segment_middle_indices",
    "read_video_frames",
    "write_video",
]

# Tolerances for declarations that are loose by a few frames (encoder delay, audio a little longer
# than video in the container duration). A cut shorter than this goes unnoticed.
TRUNCATION_MIN_FRAMES = 3
TRUNCATION_FRAME_FRACTION = 0.05  # of the declared frame count (index / header: exact in practice)
TRUNCATION_DURATION_FRACTION = 0.10  # of the declared duration (may cover audio too)
# A clip may end this far (seconds) past the last frame: annotations round end times up.
CLIP_END_SLACK_S = 0.5

FRAME_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


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
    """The container opens but holds no video stream (e.g. audio only), or a folder holds no frames."""


class VideoTooShortError(VideoDecodeError):
    """The video (or the requested clip of it) has fewer frames than asked for."""


class TruncatedVideoError(CorruptVideoError):
    """The file holds fewer frames than its container declares: its tail was cut off (partial download).

    Only files that declare a frame count or a duration can be checked (mp4/mov index, avi header,
    mkv/webm segment duration); a file that declares neither (gif, raw streams, live-recorded webm)
    cannot be told from a shorter whole video.
    """


class ClipRangeError(VideoDecodeError, UsageError):
    """The requested ``start`` / ``end`` clip is not a valid range of the video."""


def segment_middle_indices(num_available: int, num_frames: int) -> list[int]:
    """Indices of the middle frames of ``num_frames`` equal segments of ``num_available`` frames.

    Segment ``i`` covers ``[i * n / T, (i + 1) * n / T)``; its middle is ``floor((i + 0.5) * n / T)``.
    """
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if num_available < num_frames:
        raise ValueError(f"need at least {num_frames} frames, have {num_available}")
    return [int((i + 0.5) * num_available / num_frames) for i in range(num_frames)]


# -- pure rules -------------------------------------------------------------------------------------


def truncation_shortfall(
    found_frames: int,
    found_end_s: float,
    frame_interval_s: float,
    *,
    declared_frames: int | None,
    declared_end_s: float | None,
) -> str | None:
    """Why the demuxed frames fall short of the declaration, or None when they match (within tolerance).

    The declared frame count (index / header) is used when there is one, else the declared end time.
    """
    if declared_frames:
        missing = declared_frames - found_frames
        if missing > max(TRUNCATION_MIN_FRAMES, TRUNCATION_FRAME_FRACTION * declared_frames):
            return f"it holds {found_frames} of the {declared_frames} frames its container declares"
        return None
    if declared_end_s is not None and declared_end_s > 0:
        missing_s = declared_end_s - found_end_s
        tolerance = max(TRUNCATION_MIN_FRAMES * frame_interval_s, TRUNCATION_DURATION_FRACTION * declared_end_s)
        if missing_s > tolerance:
            return f"its frames end at {found_end_s:.2f}s but its container declares {declared_end_s:.2f}s"
    return None


def clip_range_problem(start: float | None, end: float | None, first_s: float, end_s: float) -> str | None:
    """What is wrong with the clip ``[start, end)`` of a video whose frames span ``[first_s, end_s)``."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and not math.isfinite(value):
            return f"{name} {value} is not a number of seconds"
    if start is not None and start < 0:
        return f"start {start}s is negative"
    if start is not None and end is not None and end <= start:
        return f"end {end}s must be after start {start}s"
    if start is not None and start >= end_s:
        return f"start {start}s is at or past the end of the video"
    if end is not None and end <= first_s:
        return f"end {end}s is at or before the first frame ({first_s:.2f}s)"
    if end is not None and end > end_s + CLIP_END_SLACK_S:
        return f"end {end}s is past the end of the video"
    return None


def display_transform(matrix: Sequence[int]) -> tuple[int, bool]:
    """How to show a decoded frame upright: ``np.rot90(np.fliplr(f) if mirror else f, k)`` -> ``(k, mirror)``.

    ``matrix`` is FFmpeg's 3x3 display matrix (``AV_FRAME_DATA_DISPLAYMATRIX``, 16.16 fixed point,
    row-major): a pixel ``(x, y)`` (y down) is shown at ``(a x + c y, b x + d y)``. Only the eight
    quarter-turn / mirror orientations occur in practice; any other angle is rounded to the nearest
    quarter turn, without mirror (FFmpeg's ``av_display_rotation_get`` angle, counter-clockwise).
    """
    a, b, c, d = (round(matrix[i] / 65536) for i in (0, 1, 3, 4))
    target = np.array([[a, c], [b, d]])  # columns: where the x and y unit vectors go
    turn = np.array([[0, 1], [-1, 0]])  # np.rot90(k=1), a quarter turn counter-clockwise, in y-down pixels
    mirror = np.array([[-1, 0], [0, 1]])  # np.fliplr
    for k in range(4):
        turned = np.linalg.matrix_power(turn, k)
        if np.array_equal(turned, target):
            return k, False
        if np.array_equal(turned @ mirror, target):
            return k, True
    degrees = -math.degrees(math.atan2(matrix[1], matrix[0])) if matrix[0] or matrix[1] else 0.0
    return round(degrees / 90) % 4, False


def _natural_key(name: str) -> list:
    # re.split with a group alternates text and digits, so items at the same place share a type.
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def frame_folder_files(folder: str | os.PathLike) -> list[Path]:
    """The frame images of a folder in natural order (``frame_2`` before ``frame_10``); hidden files skipped."""
    files = [
        p
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in FRAME_IMAGE_SUFFIXES
    ]
    return sorted(files, key=lambda p: _natural_key(p.name))


# -- reading ---------------------------------------------------------------------------------------


def read_video_frames(
    path: str | os.PathLike,
    num_frames: int = 16,
    *,
    start: float | None = None,
    end: float | None = None,
    fps: float | None = None,
    decode: Literal["seek", "full"] = "seek",
) -> np.ndarray:
    """Decode ``num_frames`` RGB frames, ``uint8 [T, H, W, 3]``, at the middles of equal segments.

    ``path`` is a video file or a folder of frame images (numbered, natural order). ``start`` / ``end``
    (seconds) restrict sampling to a clip; for a frame folder they need ``fps`` (frame ``i`` at ``i / fps``).
    ``decode="seek"`` decodes only around the sampled frames; ``"full"`` decodes from the first frame to
    the last sampled one. Both give the same frames. Frames are turned upright by the display matrix.

    Raises a :class:`VideoDecodeError` subclass naming ``path`` for every kind of bad input:
    :class:`ClipRangeError` for an invalid ``start`` / ``end``, :class:`TruncatedVideoError` for a file
    that is shorter than its container declares.
    """
    if decode not in ("seek", "full"):
        raise UsageError(f"decode must be 'seek' or 'full', got {decode!r}")
    path = Path(path)
    if path.is_dir():
        return _read_frame_folder(path, num_frames, start, end, fps)
    container, upright = _open(path), _Upright()
    try:
        timeline = _probe(container, path)
        problem = clip_range_problem(start, end, timeline.first_s, timeline.end_s)
        if problem:
            raise ClipRangeError(
                path, f"invalid clip (start={start}, end={end}): {problem}; the video spans "
                f"{timeline.first_s:.2f}s to {timeline.end_s:.2f}s ({timeline.end_s - timeline.first_s:.2f}s)"
            )
        in_clip = timeline.orders_in(start, end)
        if len(in_clip) < num_frames:
            where = "" if start is None and end is None else f" between {start}s and {end}s"
            raise VideoTooShortError(
                path, f"has {len(in_clip)} frames{where}, fewer than the {num_frames} requested"
            )
        wanted = [in_clip[i] for i in segment_middle_indices(len(in_clip), num_frames)]
        frames = None
        if decode == "seek":
            frames = _decode_by_seeking(container, timeline, path, wanted, upright)
        if frames is None:
            frames = _decode_by_order(container, timeline.stream, path, wanted, upright)
    finally:
        container.close()
        upright.release()
    return np.stack(frames)


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


@dataclass
class _Timeline:
    """The video stream's frames, from the packets alone: presentation timestamps in order, keyframes."""

    stream: object
    pts: list[int]  # sorted presentation timestamps, in stream time base; index = presentation order
    keyframe_pts: list[int]  # sorted
    time_base: Fraction

    def seconds(self, pts: int) -> float:
        return float(pts * self.time_base)

    @property
    def first_s(self) -> float:
        return self.seconds(self.pts[0])

    @property
    def frame_interval_s(self) -> float:
        if len(self.pts) < 2:
            return 0.0
        return float(np.median(np.diff(self.pts))) * float(self.time_base)

    @property
    def end_s(self) -> float:
        """When the last frame stops being shown (its time plus the usual frame interval)."""
        return self.seconds(self.pts[-1]) + self.frame_interval_s

    def orders_in(self, start: float | None, end: float | None) -> list[int]:
        lo = -math.inf if start is None else start
        hi = math.inf if end is None else end
        return [i for i, p in enumerate(self.pts) if lo <= self.seconds(p) < hi]


def _probe(container, path: Path) -> _Timeline:
    """Demux the video stream (no decoding), check it against the container's declaration."""
    import av

    stream = container.streams.video[0]
    if stream.time_base is None:
        raise CorruptVideoError(path, "the video stream has no time base")
    pts: list[int] = []
    keyframes: list[int] = []
    try:
        for packet in container.demux(stream):
            # The flush packet (size 0) and packets the demuxer marks for discarding are not frames.
            if packet.pts is None or packet.size == 0 or packet.is_discard:
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                keyframes.append(packet.pts)
    except av.FFmpegError as err:
        raise CorruptVideoError(path, f"cannot read packets ({err})") from err
    if not pts:
        declared = stream.frames or _declared_end_s(container, stream)
        error = TruncatedVideoError if declared else CorruptVideoError
        raise error(path, "the video stream holds no frames" + (" but its container declares some" if declared else ""))
    timeline = _Timeline(stream, sorted(pts), sorted(keyframes), stream.time_base)
    problem = truncation_shortfall(
        len(pts),
        timeline.end_s,
        timeline.frame_interval_s,
        declared_frames=stream.frames or None,
        declared_end_s=_declared_end_s(container, stream),
    )
    if problem:
        raise TruncatedVideoError(path, f"the file is truncated: {problem} (re-download or re-encode it)")
    return timeline


def _declared_end_s(container, stream) -> float | None:
    """End time the container declares for the video: the stream's duration, else the container's."""
    if stream.duration:
        return float((stream.start_time or 0) * stream.time_base) + float(stream.duration * stream.time_base)
    if container.duration:
        return ((container.start_time or 0) + container.duration) / 1_000_000  # AV_TIME_BASE (microseconds)
    return None


class _Upright:
    """Turns decoded frames into ``uint8 [H, W, 3]`` RGB, upright by the stream's display matrix (phone videos).

    The matrix is per stream, so it is read once, from the first frame. ``frame.rotation`` reads it in C;
    the Python side-data view, needed to see mirroring, makes a reference cycle that keeps the frame and
    its decoder's buffers alive until the garbage collector runs, and if that happens in a forked
    DataLoader worker the worker hangs. So the view is opened only for rotated videos, and
    :meth:`release` collects the cycle before the read returns. A mirror-only matrix that reports no
    rotation (a pure vertical flip) is therefore not seen; no camera writes one.
    """

    def __init__(self) -> None:
        self.transform: tuple[int, bool] | None = None
        self.opened_side_data = False

    def __call__(self, frame) -> np.ndarray:
        rgb = frame.to_ndarray(format="rgb24")
        if self.transform is None:
            self.transform = (0, False)
            if frame.rotation:
                self.opened_side_data = True
                matrix = frame.side_data.get("DISPLAYMATRIX")
                if matrix is not None:
                    self.transform = display_transform(np.frombuffer(bytes(matrix), dtype="<i4").tolist())
        k, mirror = self.transform
        if mirror:
            rgb = np.fliplr(rgb)
        return np.ascontiguousarray(np.rot90(rgb, k)) if k or mirror else rgb

    def release(self) -> None:
        if self.opened_side_data:
            gc.collect()


def _decode_by_seeking(
    container, timeline: _Timeline, path: Path, wanted: list[int], upright: _Upright
) -> list[np.ndarray] | None:
    """Decode the frames at presentation orders ``wanted`` (sorted, may repeat), seeking between them.

    For each frame: if its keyframe lies ahead of what was decoded, seek there; then decode forward to
    the frame's timestamp. Returns None (the caller decodes in order instead) when the timestamps cannot
    be trusted: a decoded frame without pts, or the target skipped.
    """
    import av

    stream = timeline.stream
    targets = sorted({timeline.pts[i] for i in wanted})
    got: dict[int, np.ndarray] = {}
    frames = None
    last = None  # pts of the last frame decoded since the last seek
    try:
        for target in targets:
            key_at = bisect.bisect_right(timeline.keyframe_pts, target) - 1
            keyframe = timeline.keyframe_pts[key_at] if key_at >= 0 else timeline.pts[0]
            if frames is None or last is None or last >= target or keyframe > last:
                if frames is not None:
                    frames.close()
                container.seek(keyframe, stream=stream, backward=True, any_frame=False)  # also flushes the decoder
                frames, last = container.decode(stream), None
            for frame in frames:
                if frame.pts is None:
                    return None
                last = frame.pts
                if frame.pts == target:
                    got[target] = upright(frame)
                    break
                if frame.pts > target:
                    return None
            else:
                return None
    except av.FFmpegError as err:
        raise CorruptVideoError(path, f"decoding failed ({err})") from err
    finally:
        if frames is not None:
            frames.close()  # free the decoder now, not at some later garbage collection
    return [got[timeline.pts[i]] for i in wanted]


def _decode_by_order(container, stream, path: Path, wanted: list[int], upright: _Upright) -> list[np.ndarray]:
    """Decode from the start and keep the frames whose presentation order is in ``wanted`` (sorted, may repeat)."""
    import av

    container.seek(0)
    targets: dict[int, int] = {}
    for idx in wanted:
        targets[idx] = targets.get(idx, 0) + 1
    out: list[np.ndarray] = []
    last = max(wanted)
    # Decoders emit frames in presentation order for the codecs we meet; frames without pts keep their place.
    frames = container.decode(stream)
    try:
        for order, frame in enumerate(frames):
            if order in targets:
                out.extend([upright(frame)] * targets[order])
            if order >= last:
                break
    except av.FFmpegError as err:
        raise CorruptVideoError(path, f"decoding failed ({err})") from err
    finally:
        frames.close()  # free the decoder now, not at some later garbage collection
    if len(out) != len(wanted):
        raise CorruptVideoError(
            path, f"decoded only {len(out)} of the {len(wanted)} sampled frames (truncated file?)"
        )
    return out


def _read_frame_folder(
    folder: Path, num_frames: int, start: float | None, end: float | None, fps: float | None
) -> np.ndarray:
    """Sample a folder of frame images like a video; only the sampled images are read."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    files = frame_folder_files(folder)
    if not files:
        raise NoVideoStreamError(folder, f"the folder holds no frame images ({', '.join(FRAME_IMAGE_SUFFIXES)})")
    if (start is not None or end is not None) and not fps:
        raise ClipRangeError(
            folder, f"a frame folder has no timestamps: give its fps to use start={start} / end={end}"
        )
    orders = list(range(len(files)))
    if fps:
        problem = clip_range_problem(start, end, 0.0, len(files) / fps)
        if problem:
            raise ClipRangeError(
                folder, f"invalid clip (start={start}, end={end}): {problem}; the {len(files)} frames at "
                f"{fps} fps span 0.00s to {len(files) / fps:.2f}s"
            )
        lo = -math.inf if start is None else start
        hi = math.inf if end is None else end
        orders = [i for i in orders if lo <= i / fps < hi]
    if len(orders) < num_frames:
        where = "" if start is None and end is None else f" between {start}s and {end}s"
        raise VideoTooShortError(folder, f"has {len(orders)} frames{where}, fewer than the {num_frames} requested")
    out: list[np.ndarray] = []
    for i in segment_middle_indices(len(orders), num_frames):
        file = files[orders[i]]
        try:
            with Image.open(file) as image:
                out.append(np.asarray(ImageOps.exif_transpose(image).convert("RGB")))
        except (UnidentifiedImageError, OSError) as err:
            raise CorruptVideoError(folder, f"cannot read frame {file.name} ({err})") from err
        if out[-1].shape != out[0].shape:
            raise CorruptVideoError(
                folder, f"frame {file.name} is {out[-1].shape[1]}x{out[-1].shape[0]}, "
                f"others are {out[0].shape[1]}x{out[0].shape[0]}"
            )
    return np.stack(out)


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
