"""`python -m tasks.simpler` (`make assets-simpler`): download the official SIMPLER assets into the cache."""
from tasks.simpler.assets import download_official_assets

raise SystemExit(download_official_assets())
