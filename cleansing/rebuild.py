"""``cleanse report``: rebuild the report of a finished run from its decisions and manifest."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from .errors import InputError
from .report import build_report, render_html
from .write import write_json


def rebuild_report(run_dir: Path) -> Path:
    decisions_path = run_dir / "decisions.parquet"
    manifest_path = run_dir / "manifest.json"
    if not decisions_path.is_file() or not manifest_path.is_file():
        raise InputError(
            "this is not a run folder (decisions.parquet or manifest.json is missing).",
            path=run_dir,
            fix="Pass a folder that cleanse run published, e.g. out/latest.",
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    decisions = pl.read_parquet(decisions_path)
    quarantine_path = run_dir / "quarantine.parquet"
    errors = (
        pl.read_parquet(quarantine_path).select("source_file", "source_row", "error").head(200).to_dicts()
        if quarantine_path.is_file()
        else []
    )
    policy_version = "unknown"
    for line in manifest["policy"]["text"].splitlines():
        if line.strip().startswith("version"):
            policy_version = line.split("=", 1)[1].strip().strip('"')
    report = build_report(
        decisions,
        {
            "run_id": manifest["run_id"],
            "as_of": manifest["as_of"],
            "policy_version": policy_version,
            "dns": manifest["dns"],
        },
    )
    write_json(run_dir / "report.json", report)
    html_path = run_dir / "report.html"
    html_path.write_text(render_html(report, errors), encoding="utf-8")
    for path in (run_dir / "report.json", html_path):
        path.chmod(0o600)
    return html_path
