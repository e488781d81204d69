"""Workarounds for ManiSkill 3.0.1 (PyPI `mani-skill==3.0.1`) that SIMPLER's Bridge envs need here: a lazily
rendering env class per task, and the render-backend name for lavapipe."""
from __future__ import annotations

import logging
import os
from functools import lru_cache

from tasks.simpler.assets import prepare_assets


def render_backend() -> str:
    """ManiSkill `render_backend` argument; override with $VLA_SIMPLER_RENDER_BACKEND (e.g. "gpu").

    The one place for this workaround: SAPIEN names the Vulkan CPU device (lavapipe) "pci:0", but ManiSkill
    3.0.1 splits render-backend strings on ':' (as in "cuda:1") and mis-parses it. "cpu" reaches the same
    device: ManiSkill maps it to `sapien.Device("cpu")`, which SAPIEN resolves to the CPU Vulkan driver.
    """
    return os.environ.get("VLA_SIMPLER_RENDER_BACKEND", "cpu")


@lru_cache(maxsize=None)
def env_class(env_id: str):
    """The ManiSkill env class, made to accept obs_mode "state_dict" and with per-instance greenscreen state.

    Prepares the assets first: ManiSkill reads MS_ASSET_DIR when it is first imported."""
    prepare_assets()
    logging.getLogger("mani_skill").setLevel(logging.ERROR)
    import mani_skill.envs  # noqa: F401 - registers the environments
    from mani_skill.utils.registration import REGISTERED_ENVS

    base = REGISTERED_ENVS[env_id].cls

    class LazyRenderBridgeEnv(base):
        # The Bridge envs only list "rgb+segmentation", which renders the camera on every step; "state_dict"
        # steps physics only and we render the sensor on demand (`SimplerEnv._render_native`).
        SUPPORTED_OBS_MODES = (*base.SUPPORTED_OBS_MODES, "state_dict")

        def __init__(self, **kwargs):
            # ManiSkill 3.0.1 keeps these as mutable *class* attributes of BaseDigitalTwinEnv, so a second
            # Bridge env in one process would share (and corrupt) the first one's overlay photo and keep-ids.
            self._rgb_overlay_images = {}
            self._objects_to_remove_from_greenscreen = []
            super().__init__(**kwargs)

    LazyRenderBridgeEnv.__name__ = LazyRenderBridgeEnv.__qualname__ = f"LazyRender{base.__name__}"
    return LazyRenderBridgeEnv
