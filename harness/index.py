"""One SQL view over every run under a results root (DuckDB).

`ResultsIndex(root)` finds each run of the store's layout, `<root>/<tag>/<suite>/` with a schema-v2 `manifest.json`
(deeper folders are other roots: `make demos` keeps its expert runs, with trajectories, in `<demos>/runs/`), and
exposes three views:
- `runs`: one row per run: `run` (its folder relative to the root), `tag`, `name`, `family`, `spec_hash`,
  `checkpoint_sha256`, `params` (JSON), `suite`, `protocol_hash`, `schema_version`, `inference_threads`;
- `episodes`: every episode (`harness.store.EPISODE_COLUMNS` + `partial_*`) with its `run`;
- `calls`: every policy call (`harness.store.CALL_COLUMNS`) with its `run`.
Compacted tables and not-yet-compacted fragments are both read (deduplicated), so a run in progress or killed
shows what it finished. The database is in memory: the Parquet files are the data.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd

from harness.store import CALL_COLUMNS, EPISODE_COLUMNS, SCHEMA_VERSION, RunStore


def find_runs(root: Path) -> list[RunStore]:
    """Schema-v2 runs `<root>/<tag>/<suite>/`, in path order."""
    stores = []
    for manifest in sorted(Path(root).glob("*/*/manifest.json")):
        try:
            version = json.loads(manifest.read_text()).get("schema_version")
        except (OSError, json.JSONDecodeError):
            continue
        if version == SCHEMA_VERSION:
            store = RunStore(manifest.parent.parent.parent, manifest.parent.parent.name, manifest.parent.name)
            stores.append(store)
    return stores


class ResultsIndex:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.con = duckdb.connect()
        self.stores = find_runs(self.root)
        rows = []
        for store in self.stores:
            m = store.manifest()
            rows.append({
                "run": str(store.dir.relative_to(self.root)), "tag": m["tag"], "name": m["spec"]["name"],
                "family": m["identity"]["family"], "spec_hash": m["spec_hash"],
                "checkpoint_sha256": m["identity"]["checkpoint_sha256"],
                "params": json.dumps(m["identity"]["params"], sort_keys=True), "suite": m["suite"],
                "protocol_hash": m["protocol_hash"], "schema_version": m["schema_version"],
                "inference_threads": m["inference"]["torch_threads"],
            })
        self.con.register("runs_df", pd.DataFrame(rows, columns=["run", "tag", "name", "family", "spec_hash",
                                                                 "checkpoint_sha256", "params", "suite",
                                                                 "protocol_hash", "schema_version",
                                                                 "inference_threads"]))
        self.con.execute("CREATE VIEW runs AS SELECT * FROM runs_df")
        self._table("episodes", "episode", EPISODE_COLUMNS, ["key"])
        self._table("calls", "calls", CALL_COLUMNS, ["key", "call"])

    def _table(self, view: str, kind: str, columns: dict, unique: list[str]) -> None:
        files = [(str(store.dir.relative_to(self.root)), str(p)) for store in self.stores for p in store.files(kind)]
        if not files:
            cols = ", ".join(f"NULL::VARCHAR AS {c}" for c in ["run", *columns])
            self.con.execute(f"CREATE VIEW {view} AS SELECT {cols} WHERE false")
            return
        self.con.register(f"{view}_files", pd.DataFrame(files, columns=["run", "file"]))
        paths = ", ".join(f"'{f}'" for _, f in files)
        keys = ", ".join(["f.run", *(f"t.{c}" for c in unique)])
        # Rows present twice (compacted and still as a fragment) are the same episode: keep one.
        self.con.execute(f"""
            CREATE VIEW {view} AS
            SELECT f.run, t.* EXCLUDE (filename) FROM read_parquet([{paths}], union_by_name = true, filename = true) t
            JOIN {view}_files f ON f.file = t.filename
            QUALIFY row_number() OVER (PARTITION BY {keys}) = 1
        """)

    def sql(self, query: str, *params) -> pd.DataFrame:
        return self.con.execute(query, params).df()

    def success(self) -> pd.DataFrame:
        """Per run: episodes, successes, success %, errors (errors count as failures)."""
        return self.sql("""
            SELECT r.run, r.name, r.family, r.checkpoint_sha256, r.params, r.suite, count(*) AS episodes,
                   sum(e.success::INT) AS successes, 100.0 * avg(e.success::INT) AS success_pct,
                   sum((e.error <> '')::INT) AS errors
            FROM episodes e JOIN runs r USING (run) GROUP BY ALL ORDER BY r.run""")
