"""Small demonstration files in our LIBERO HDF5 layout, for tests that train from files."""
from pathlib import Path

import numpy as np

from core.demofile import Demo, write_task_demos

INSTRUCTION = "pick up the black bowl between the plate and the ramekin and place it on the plate"
"""libero_spatial task 0's instruction, so that a policy trained on these demos can be evaluated on it."""


def write_demos(demos_dir: Path, suite: str = "libero_spatial", n: int = 2, steps: int = 16, stride: int = 4,
                cameras: tuple[str, ...] = ("agentview", "wrist"), seed: int = 0) -> Path:
    """`n` random demos of `steps` steps with 128x128 frames every `stride` steps -> `<demos_dir>/<suite>/t0_demo.hdf5`."""
    rng = np.random.default_rng(seed)
    frames = np.arange(0, steps, stride)
    demos = [Demo(
        instruction=INSTRUCTION, actions=rng.uniform(-1, 1, (steps, 7)), states=rng.normal(size=(steps, 20)),
        ee_pos=rng.normal(size=(steps, 3)), ee_ori=rng.normal(size=(steps, 3)),
        gripper_states=rng.normal(size=(steps, 2)), frame_index=frames,
        images={c: rng.integers(0, 255, (len(frames), 128, 128, 3), dtype=np.uint8) for c in cameras},
    ) for _ in range(n)]
    path = Path(demos_dir) / suite / "t0_demo.hdf5"
    write_task_demos(path, demos, {"problem_info": {"language_instruction": INSTRUCTION}, "frame_stride": stride})
    return path
