"""``cleanse alerts --webhook URL``: tell someone when a run of ``cleanse-contacts`` goes wrong.

A bad night reaches no one by itself: a Failed or Crashed run waits in the UI, a Late one (no worker,
``serve`` stopped) makes no sound at all, and a run that ends in ``Warning`` is a Completed-type state
with a green badge. This installs, on the Prefect server, a webhook block and one automation that posts
to it on each of those: the flow-run events ``Failed``, ``Crashed`` and ``Late``, and the event
``cleanse.run.warning`` that a run ending in ``Warning`` emits. Running it again replaces both.
What is posted names the run, its state and its message: counts and reasons, nothing personal.
"""

from __future__ import annotations

from typing import Any, cast

FLOW_NAME = "cleanse-contacts"
WARNING_EVENT = "cleanse.run.warning"
BAD_RUN_EVENTS = {"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.Late", WARNING_EVENT}
BLOCK_NAME = "cleanse-alerts"
AUTOMATION_NAME = "cleanse-contacts: a run failed, crashed, is late or ended in a warning"
SUBJECT = "cleanse-contacts: {{ event.event.split('.')[-1] }} ({{ event.resource['prefect.resource.name'] }})"
BODY = (
    "Run {{ event.resource['prefect.resource.name'] }} of cleanse-contacts: {{ event.event }} at "
    "{{ event.occurred }}. {{ event.payload.get('message') or event.payload.get('validated_state', {}).get('message') "
    "or '' }}"
)


def emit_warning(message: str, run_id: str) -> None:
    """The event an automation listens for when a run ends in ``Warning``: its state is Completed-type,
    so no state event tells a warning from a success."""
    from prefect.context import get_run_context
    from prefect.events import emit_event

    flow_run = get_run_context().flow_run  # type: ignore[union-attr]
    assert flow_run is not None
    emit_event(
        event=WARNING_EVENT,
        resource={"prefect.resource.id": f"prefect.flow-run.{flow_run.id}", "prefect.resource.name": flow_run.name},
        related=[
            {
                "prefect.resource.id": f"prefect.flow.{flow_run.flow_id}",
                "prefect.resource.role": "flow",
                "prefect.resource.name": FLOW_NAME,
            }
        ],
        payload={"message": message, "run_id": run_id},
    )


def install_alerts(webhook_url: str) -> dict[str, Any]:
    """Create (or replace) the webhook block and the automation; returns their names and ids."""
    from prefect.automations import Automation, EventTrigger, SendNotification
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name=BLOCK_NAME,
        url=webhook_url,
        method="POST",
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
        # The receiver is as a rule a service inside the operator's own network (a chat bridge, a pager).
        allow_private_urls=True,
    )
    block_id = block.save(BLOCK_NAME, overwrite=True)
    while True:  # replace what an earlier install made
        try:
            cast(Automation, Automation.read(name=AUTOMATION_NAME)).delete()
        except ValueError:
            break
    automation = Automation(
        name=AUTOMATION_NAME,
        description="Posts to the cleanse-alerts webhook when a cleanse-contacts run goes wrong.",
        trigger=EventTrigger(
            expect=BAD_RUN_EVENTS,
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": FLOW_NAME},
            posture="Reactive",
            threshold=1,
            within=0,
        ),
        actions=[SendNotification(block_document_id=block_id, subject=SUBJECT, body=BODY)],
    )
    automation = cast(Automation, automation.create())
    return {"block": BLOCK_NAME, "block_id": str(block_id), "automation": AUTOMATION_NAME, "id": str(automation.id)}
