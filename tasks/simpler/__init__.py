"""SIMPLER Bridge (WidowX) suites behind the task-suite protocol, through ManiSkill3/SAPIEN.

`suite` (SimplerSuite, SimplerEnv), `assets` (offline copy mirrored into the MS_ASSET_DIR cache, official
downloader), `stand_ins` (generated replacements for official files the offline copy lacks, recorded in every
run manifest), `maniskill_patch` (ManiSkill 3.0.1 workarounds). `python -m tasks.simpler` downloads the
official assets (`make assets-simpler`).
"""
from tasks.simpler.suite import SimplerEnv, SimplerSuite

__all__ = ["SimplerEnv", "SimplerSuite"]
