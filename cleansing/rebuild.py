"""``cleanse report``: rebuild the report of a finished run from the files in its folder."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import polars as pl

from .errors import InputError
from .policy import Policy
from .report import RECORD_COLUMNS, build_report, decision_counts
from .report_html import render_html
from .write import PARTITIONS, write_json


def rebuild_report(run_dir: Path) -> Path:
    needed = ["decisions.parquet", "manifest.json", "quarantine.parquet", *[f"{p}.parquet" for p in PARTITIONS]]
    missing = [name for name in needed if not (run_dir / name).is_file()]
    if missing:
        raise InputError(
            f"this is not a whole run folder ({', '.join(missing)} missing).",
            path=run_dir,
            fix="Pass a folder that cleanse run published, e.g. out/latest.",
        )
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    policy = Policy.model_validate(tomllib.loads(manifest["policy"]["text"]))
    records = pl.concat(
        [
            pl.read_parquet(run_dir / f"{p}.parquet").with_columns(pl.lit(p).alias("class")).select(RECORD_COLUMNS)
            for p in PARTITIONS
        ]
    )
    report = build_report(
        records,
        decision_counts(pl.scan_parquet(run_dir / "decisions.parquet")),
        pl.read_parquet(run_dir / "quarantine.parquet"),
        manifest,
        policy,
    )
    write_json(run_dir / "report.json", report)
    html_path = run_dir / "report.html"
    html_path.write_text(render_html(report), encoding="utf-8")
    for path in (run_dir / "report.json", html_path):
        path.chmod(0o600)
    return html_path
