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


def _paused_now(name: str) -> bool:
    """Whether an operator paused the deployment: registering it again must not undo that."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return bool(client.read_deployment_by_name(name).paused)
        except ObjectNotFound:
            return False


def serve(parameters: dict[str, Any], cron: str, timezone: str) -> None:
    """Register the deployment with its schedule and default parameters, then run what it schedules
    and what operators start from the UI, until stopped. Stopping leaves the schedule running on the
    server: the runs it creates meanwhile go Late until serve (or a worker) is back."""
    api_url = os.environ.setdefault("PREFECT_API_URL", DEFAULT_API_URL)
    check_server(api_url)
    from prefect.schedules import Cron

    from .cleanse import cleanse_contacts

    as_of = parameters.get("as_of")
    if isinstance(as_of, dt.date):
        parameters = {**parameters, "as_of": as_of.isoformat()}
    cleanse_contacts.serve(
        name="nightly",
        paused=_paused_now(f"{cleanse_contacts.name}/nightly"),
        schedule=Cron(cron, timezone=timezone),
        parameters=parameters,
        # One run at a time: a second nightly, or an ad-hoc run started meanwhile, waits for its turn.
        global_limit=1,
        # Stopping serve leaves the deployment and its scheduled runs as they are: runs nobody executes
        # go Late, which an automation can report (see `cleanse alerts`), and a pause set in the UI stays.
        pause_on_shutdown=False,
        description="Nightly contact cleansing; start an ad-hoc run with other sources, policy or as-of date.",
        tags=["gdpr", "contacts"],
    )
