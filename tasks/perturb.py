"""Observation perturbations: a modifier of any suite, named `<suite>@<perturbation>`.

`libero_spatial@noise:0.05` is libero_spatial with Gaussian pixel noise: the same tasks, init states, step limits
and success rule, its own runs (the suite name is part of every unit key and run folder) and its own manifest
protocol (the parent's plus `perturbation`). A perturbation is a comma-separated list of `kind[:value]` (KINDS);
it changes only what the policy observes (images, instruction) and the camera, never the physics or the
privileged state. Every random draw is seeded by the episode alone (run seed, task, init state, perturbation),
so an episode is identical on rerun, in any worker or order; with no perturbation nothing is touched.
"""
from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from core.registry import UnknownName
from tasks.base import Observation, TaskEnv, TaskSpec
from tasks.protocol import PERTURBATION_SEPARATOR as SEPARATOR


@dataclass(frozen=True)
class Kind:
    doc: str
    low: float | None = None
    """Valid values lie in [low, high]; None: the kind takes no value."""
    high: float | None = None


KINDS = {
    # Application order: the camera moves before rendering, photometric changes before noise, the patch last.
    "camera": Kind("the agentview camera translated by this many metres in a direction drawn per episode", 0.001, 0.2),
    "brightness": Kind("every pixel shifted by this fraction of full scale (signed)", -1.0, 1.0),
    "contrast": Kind("pixels scaled about the image mean by this factor", 0.05, 4.0),
    "noise": Kind("i.i.d. Gaussian pixel noise, standard deviation as a fraction of full scale, fresh per frame",
                  0.001, 1.0),
    "occlude": Kind("a mid-grey square, side this fraction of the image, placed per episode and camera", 0.01, 0.9),
    "lang": Kind("the instruction replaced by one of the task's committed paraphrases, drawn per episode"),
}
PARAPHRASES = Path(__file__).parent / "data" / "paraphrases.json"
OCCLUDER_GREY = 128


@lru_cache(maxsize=None)
def paraphrases() -> dict[str, dict[str, list[str]]]:
    """Suite -> task name -> paraphrases (`tasks/data/paraphrases.json`)."""
    return {k: v for k, v in json.loads(PARAPHRASES.read_text()).items() if not k.startswith("_")}


@dataclass(frozen=True)
class Perturbation:
    items: tuple[tuple[str, float | None], ...]
    """(kind, value) in KINDS order, each kind at most once."""

    @classmethod
    def parse(cls, text: str) -> "Perturbation":
        """`noise:0.05,occlude:0.2` -> Perturbation; UnknownName (one line) for an unknown kind, a missing, extra or
        out-of-range value, or a repeated kind."""
        items = {}
        for part in (p.strip() for p in text.split(",")):
            kind, _, value = part.partition(":")
            if kind not in KINDS:
                hint = difflib.get_close_matches(kind, KINDS, n=1)
                raise UnknownName(f"unknown perturbation {kind!r}{f' (did you mean {hint[0]!r}?)' if hint else ''}; "
                                  f"valid: {', '.join(f'{k}:<value>' if KINDS[k].low is not None else k for k in KINDS)}")
            if kind in items:
                raise UnknownName(f"perturbation {kind!r} given twice in {text!r}")
            spec = KINDS[kind]
            if spec.low is None:
                if value:
                    raise UnknownName(f"perturbation {kind!r} takes no value, got {part!r}")
                items[kind] = None
                continue
            try:
                number = float(value)
            except ValueError:
                raise UnknownName(f"perturbation {kind!r} needs a number in [{spec.low:g}, {spec.high:g}] "
                                  f"({spec.doc}), got {part!r}") from None
            if not spec.low <= number <= spec.high:
                raise UnknownName(f"perturbation {kind}:{value} is out of range: valid [{spec.low:g}, {spec.high:g}] "
                                  f"({spec.doc})")
            items[kind] = number
        return cls(tuple((k, items[k]) for k in KINDS if k in items))

    def __str__(self) -> str:
        return ",".join(k if v is None else f"{k}:{v:g}" for k, v in self.items)

    def get(self, kind: str) -> float | None:
        return dict(self.items).get(kind)

    def __contains__(self, kind: str) -> bool:
        return kind in dict(self.items)

    @property
    def digest(self) -> int:
        """A stable integer of the canonical text (part of every episode's seed)."""
        return int(hashlib.sha256(str(self).encode()).hexdigest()[:8], 16)

    def to_dict(self) -> dict:
        return {"spec": str(self), "kinds": {k: {"value": v, "meaning": KINDS[k].doc} for k, v in self.items},
                "seeding": "numpy SeedSequence([run seed, task index, init index, sha256(spec)[:8]]), one child "
                           "stream per purpose (camera, occluder, instruction, policy frames, video frames)",
                "source": "this project (tasks/perturb.py); paraphrases: tasks/data/paraphrases.json"}

    def images(self, images: dict[str, np.ndarray], patches: dict[str, tuple[float, float]],
               rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The photometric kinds applied to (H, W, 3) uint8 frames; `patches`: camera -> the occluder's top-left
        corner as fractions of the free range."""
        out = {}
        for camera, img in images.items():
            x = img.astype(np.float32)
            if (b := self.get("brightness")) is not None:
                x += 255 * b
            if (c := self.get("contrast")) is not None:
                x = (x - x.mean()) * c + x.mean()
            if (s := self.get("noise")) is not None:
                x += rng.normal(0.0, 255 * s, x.shape).astype(np.float32)
            x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
            if (side := self.get("occlude")) is not None:
                h, w = x.shape[:2]
                ph, pw = max(1, round(side * h)), max(1, round(side * w))
                fy, fx = patches[camera]
                y0, x0 = round(fy * (h - ph)), round(fx * (w - pw))
                x[y0:y0 + ph, x0:x0 + pw] = OCCLUDER_GREY
            out[camera] = x
        return out


def split_suite(name: str) -> tuple[str, Perturbation | None]:
    """`libero_spatial@noise:0.05` -> ("libero_spatial", Perturbation); a plain name -> (name, None)."""
    base, sep, text = name.partition(SEPARATOR)
    return base, (Perturbation.parse(text) if sep else None)


def perturbed_name(suite: str, perturbation: str) -> str:
    """The canonical suite name of `suite` under `perturbation` (validated): what run folders and unit keys use."""
    return f"{suite}{SEPARATOR}{Perturbation.parse(perturbation)}"


class PerturbedSuite:
    """A suite's tasks under a perturbation (see the module docstring)."""

    def __init__(self, name: str):
        from tasks import make_suite

        base_name, self.perturbation = split_suite(name)
        self.base_name = base_name
        self.base = make_suite(base_name)
        self.name = f"{base_name}{SEPARATOR}{self.perturbation}"
        if "camera" in self.perturbation and not getattr(self.base, "ENV", TaskEnv).MOVABLE_CAMERAS:
            raise UnknownName(f"perturbation 'camera' is not supported on {base_name} (its simulator's cameras are "
                              f"fixed here); it works on the LIBERO suites")
        if "lang" in self.perturbation:
            have = paraphrases().get(base_name, {})
            missing = [t.name for t in self._tasks if len(have.get(t.name, ())) == 0]
            if missing:
                raise UnknownName(f"perturbation 'lang' needs paraphrases in {PARAPHRASES.name} for {len(missing)} "
                                  f"task(s) of {base_name} (e.g. {missing[0]!r}); suites with paraphrases: "
                                  f"{', '.join(paraphrases())}")

    @cached_property
    def _tasks(self) -> tuple[TaskSpec, ...]:
        # Lazy: listed at most once, and at construction only for the `lang` check (as before).
        return tuple(replace(t, suite=self.name) for t in self.base.tasks())

    def tasks(self) -> list[TaskSpec]:
        return list(self._tasks)  # a fresh list per call, as before; the specs themselves are frozen

    def make_env(self, task_index: int, obs_spec) -> "PerturbedEnv":
        return PerturbedEnv(self.base.make_env(task_index, obs_spec), self.perturbation, self.name, self.base_name)

    def protocol(self) -> dict:
        return {**self.base.protocol(), "perturbation": self.perturbation.to_dict()}

    def versions(self) -> dict[str, str]:
        return self.base.versions()


class PerturbedEnv(TaskEnv):
    """`inner` with its observations perturbed; everything else (physics, state, success) is the inner env's.
    `suite`: the perturbed suite's name (its tasks' `suite`); `base_suite`: the suite under it, whose paraphrases
    `lang` draws from."""

    def __init__(self, inner: TaskEnv, perturbation: Perturbation, suite: str, base_suite: str):
        self.inner = inner
        self.perturbation = perturbation
        self.base_suite = base_suite
        self._clean_task = replace(inner.spec_task, suite=suite)
        self.spec_task = self._clean_task
        self.action_space = inner.action_space
        self.metadata = inner.metadata
        self.render_mode = inner.render_mode
        self.protocol_ = inner.protocol_
        self.timers = inner.timers
        self._patches: dict[str, tuple[float, float]] = {}
        self._frames = self._video = np.random.default_rng(0)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.inner.reset(seed=seed, options=options)
        p = self.perturbation
        init_index = int((options or {}).get("init_index", 0))
        streams = np.random.SeedSequence([seed or 0, self.spec_task.index, init_index, p.digest]).spawn(5)
        camera, occluder, words, self._frames, self._video = map(np.random.default_rng, streams)
        if (metres := p.get("camera")) is not None:
            direction = camera.normal(size=3)
            self.inner.shift_camera("agentview", metres * direction / np.linalg.norm(direction))
        self._patches = {c: tuple(occluder.uniform(size=2)) for c in (*self.inner.obs_spec.cameras, "video")}
        self.spec_task = self._clean_task
        if "lang" in p:
            options_ = paraphrases()[self.base_suite][self.spec_task.name]
            self.spec_task = replace(self._clean_task, instruction=options_[int(words.integers(len(options_)))])
        return self._wrap(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.inner.step(action)
        return self._wrap(obs), reward, terminated, truncated, info

    def render(self) -> np.ndarray:
        frame = self.inner.render()
        return self.perturbation.images({"video": frame}, self._patches, self._video)["video"]

    def state(self) -> np.ndarray:
        return self.inner.state()

    def restore(self, state: np.ndarray) -> Observation:
        return self._wrap(self.inner.restore(state))

    def close(self) -> None:
        self.inner.close()

    def _wrap(self, obs: Observation) -> Observation:
        # The inner observation keeps its own staleness check: reading these images after a step still raises.
        return Observation(obs.proprio, obs.privileged,
                           lambda: self.perturbation.images(obs.images, self._patches, self._frames), 0, lambda: 0)
