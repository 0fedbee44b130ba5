import numpy as np
import pytest

from mashvlm.video import write_video


def _gray_ramp_video(path, num_frames: int, fps: float = 10.0, size: int = 32):
    """Frame i is a flat gray of level 8 * i, so decoded frames reveal their index."""
    frames = np.stack([np.full((size, size, 3), 8 * i, dtype=np.uint8) for i in range(num_frames)])
    return write_video(path, frames, fps=fps)


def _frame_index(frame: np.ndarray) -> int:
    return int(round(float(frame.mean()) / 8))


@pytest.fixture
def gray_ramp_video():
    return _gray_ramp_video


@pytest.fixture
def frame_index():
    return _frame_index


@pytest.fixture(scope="session")
def tiny_parts():
    """(processor, config) of a tiny MASH-VLM: 32x32 frames, patch 8 (N = 16), T = 4 (M = 11)."""
    from mashvlm.modeling.tiny import tiny_processor_and_config

    return tiny_processor_and_config(["The person is jumping on a beach.", "Is someone running? Yes. No."])
