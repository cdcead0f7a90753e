"""``cleanse serve``: the nightly deployment ``cleanse-contacts/nightly``, served from this process."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from cleansing.errors import ConfigError

from .server import healthy

DEFAULT_API_URL = "http://127.0.0.1:4200/api"


def check_server(api_url: str) -> None:
    """The deployment lives on a Prefect server; say how to start one when none answers."""
    if healthy(api_url, timeout=5):
        return
    raise ConfigError(
        f"no Prefect server answers at {api_url}.",
        fix="Start one with `prefect server start --host 127.0.0.1` (the UI is then at "
        "http://127.0.0.1:4200), or point PREFECT_API_URL at yours, and run cleanse serve again.",
    )


def serve(parameters: dict[str, Any], cron: str, timezone: str) -> None:
    """Register the deployment with its schedule and default parameters, then run what it schedules
    and what operators start from the UI, until stopped."""
    api_url = os.environ.setdefault("PREFECT_API_URL", DEFAULT_API_URL)
    check_server(api_url)
    from prefect.schedules import Cron

    from .cleanse import cleanse_contacts

    as_of = parameters.get("as_of")
    if isinstance(as_of, dt.date):
        parameters = {**parameters, "as_of": as_of.isoformat()}
    cleanse_contacts.serve(
        name="nightly",
        schedule=Cron(cron, timezone=timezone),
        parameters=parameters,
        description="Nightly contact cleansing; start an ad-hoc run with other sources, policy or as-of date.",
        tags=["gdpr", "contacts"],
    )
