"""Generated stand-ins for official SIMPLER Bridge asset files the offline copy lacks (see `assets.py`).

`STAND_INS` lists each replaceable official file with the file its stand-in is written to and what it is;
`write_stand_in` generates one. Positions in metres, world frame unless stated.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.io import atomic_path
from tasks.protocol import SIMPLER_TABLE_TOP_Z

BRIDGE_DIR = "data/tasks/bridge_v2_real2sim_dataset"
"""ManiSkill's Bridge asset folder, relative to MS_ASSET_DIR."""

# Stage placement used by ManiSkill's BaseBridgeEnv._load_scene: the stage file is loaded with a +90 deg
# rotation about x and the actor is placed at -scene_offset. A stand-in must be authored in that frame.
_STAGE_ROT_X = np.pi / 2
_STAGE_TRANSLATION = (2.0634, 2.8313, 0.0)
_TABLE_THICKNESS = 0.05
_TABLE_XY = ((-0.8, 0.6), (-0.6, 0.6))
"""World x and y range of the stand-in table, metres: covers the robot base, every spawn area and the sink."""

STAND_INS = {
    # official relative path (under MS_ASSET_DIR) -> (stand-in file written, what it is)
    f"{BRIDGE_DIR}/stages/bridge_table_1_v1.glb": (
        f"{BRIDGE_DIR}/stages/bridge_table_1_v1.glb",
        f"box table, top at z={SIMPLER_TABLE_TOP_Z} m (hidden by the real-photo overlay)",
    ),
    f"{BRIDGE_DIR}/stages/bridge_table_1_v2.glb": (
        f"{BRIDGE_DIR}/stages/bridge_table_1_v2.glb",
        f"box table, top at z={SIMPLER_TABLE_TOP_Z} m (hidden by the real-photo overlay; no basket collision)",
    ),
    f"{BRIDGE_DIR}/custom/models/eggplant/textured.dae": (
        # ManiSkill looks for textured.obj, then .dae, then .glb: a .glb stand-in never shadows the official .dae
        f"{BRIDGE_DIR}/custom/models/eggplant/textured.glb",
        "eggplant visual = its collision mesh, flat purple",
    ),
}


def write_stand_in(official: str, path: Path) -> None:
    """Generate the stand-in for `official` (a `STAND_INS` key) at `path`, atomically."""
    (_write_table_stage if "stages/" in official else _write_eggplant_visual)(path)


def _write_table_stage(path: Path) -> None:
    import trimesh

    (x0, x1), (y0, y1) = _TABLE_XY
    box = trimesh.creation.box(extents=[x1 - x0, y1 - y0, _TABLE_THICKNESS])
    box.apply_translation([(x0 + x1) / 2, (y0 + y1) / 2, SIMPLER_TABLE_TOP_Z - _TABLE_THICKNESS / 2])
    stage_to_world = trimesh.transformations.rotation_matrix(_STAGE_ROT_X, [1, 0, 0])
    stage_to_world[:3, 3] = _STAGE_TRANSLATION
    box.apply_transform(np.linalg.inv(stage_to_world))  # author it in the stage frame ManiSkill loads it in
    _export(box, path)


def _write_eggplant_visual(path: Path) -> None:
    import trimesh

    mesh = trimesh.load(path.parent / "collision.obj", force="mesh")
    # a material colour (SAPIEN ignores glTF vertex colours)
    material = trimesh.visual.material.PBRMaterial(baseColorFactor=[75, 35, 95, 255], roughnessFactor=0.6)
    mesh.visual = trimesh.visual.TextureVisuals(material=material)
    _export(mesh, path)


def _export(mesh, path: Path) -> None:
    with atomic_path(path) as tmp:  # the temporary name keeps the suffix: trimesh picks the format from it
        mesh.export(tmp)
