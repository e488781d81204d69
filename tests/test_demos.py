"""Demonstration files: our HDF5 round trip, and reading the official LIBERO layout."""
import json

import h5py
import numpy as np

from core.demofile import Demo, read_demos, write_task_demos
from core.geometry import quat_xyzw_to_axis_angle


def _demo(rng, t=12, stride=4):
    frames = np.arange(0, t, stride)
    return Demo(
        instruction="put the bowl on the plate",
        actions=rng.uniform(-1, 1, (t, 7)), states=rng.normal(size=(t, 20)),
        ee_pos=rng.normal(size=(t, 3)), ee_ori=rng.normal(size=(t, 3)), gripper_states=rng.normal(size=(t, 2)),
        images={"agentview": rng.integers(0, 255, (len(frames), 8, 8, 3), dtype=np.uint8),
                "wrist": rng.integers(0, 255, (len(frames), 8, 8, 3), dtype=np.uint8)},
        frame_index=frames,
    )


def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    demos = [_demo(rng), _demo(rng, t=9, stride=3)]
    attrs = {"problem_info": {"problem_name": "p", "domain_name": "d", "language_instruction": "put the bowl on the plate"},
             "image_orientation": "rot180", "frame_stride": 4}
    path = tmp_path / "task_demo.hdf5"
    write_task_demos(path, demos, attrs)
    back = read_demos(path)
    assert len(back) == 2
    for a, b in zip(demos, back):
        assert b.instruction == a.instruction
        for name in ("actions", "states", "ee_pos", "ee_ori", "gripper_states", "frame_index"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        for cam in ("agentview", "wrist"):
            np.testing.assert_array_equal(a.images[cam], b.images[cam])
        assert b.proprio.shape == (len(a.actions), 8)
    with h5py.File(path) as f:
        assert f["data"].attrs["num_demos"] == 2 and f["data"].attrs["total"] == 21
        assert list(f["data/demo_0/rewards"][()]) == [0] * 11 + [1]


def test_reads_official_libero_layout(tmp_path):
    """A file shaped like LIBERO's released datasets: images every step, OpenGL orientation, no frame_index."""
    rng = np.random.default_rng(1)
    path = tmp_path / "official_demo.hdf5"
    raw = rng.integers(0, 255, (5, 6, 6, 3), dtype=np.uint8)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["problem_info"] = json.dumps({"language_instruction": "open the drawer", "problem_name": "x"})
        data.attrs["macros_image_convention"] = "opengl"
        g = data.create_group("demo_0")
        g.create_dataset("actions", data=rng.normal(size=(5, 7)))
        g.create_dataset("states", data=rng.normal(size=(5, 9)))
        obs = g.create_group("obs")
        for key, dim in (("ee_pos", 3), ("ee_ori", 3), ("gripper_states", 2), ("joint_states", 7)):
            obs.create_dataset(key, data=rng.normal(size=(5, dim)))
        obs.create_dataset("agentview_rgb", data=raw)
        obs.create_dataset("eye_in_hand_rgb", data=raw)
    (demo,) = read_demos(path)
    assert demo.instruction == "open the drawer"
    np.testing.assert_array_equal(demo.frame_index, np.arange(5))
    np.testing.assert_array_equal(demo.images["agentview"], raw[:, ::-1, ::-1])  # rotated upright


def test_axis_angle_of_known_rotations():
    half = np.sqrt(0.5)
    np.testing.assert_allclose(quat_xyzw_to_axis_angle([0, 0, half, half]), [0, 0, np.pi / 2], atol=1e-9)
    np.testing.assert_allclose(quat_xyzw_to_axis_angle([0, 0, -half, -half]), [0, 0, np.pi / 2], atol=1e-9)
    np.testing.assert_allclose(quat_xyzw_to_axis_angle([1, 0, 0, 0]), [np.pi, 0, 0], atol=1e-9)
    np.testing.assert_allclose(quat_xyzw_to_axis_angle([0, 0, 0, 1]), [0, 0, 0], atol=1e-9)
