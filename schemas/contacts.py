"""The canonical contact as it leaves the mapping stage, and the decisions as they are written."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.engines.polars_engine import DateTime

from cleansing.values import STATUS_PRECEDENCE

STATUSES = list(STATUS_PRECEDENCE)
CLASSES = ["keep", "reconfirm", "discard", "quarantine"]
UTC = DateTime(time_zone="UTC", time_unit="us")


class MappedContacts(pa.DataFrameModel):
    """Every input row that could be read, mapped to canonical fields with typed evidence."""

    source_file: str
    source_row: int = pa.Field(ge=1)
    input_index: pl.Int32 = pa.Field(ge=0)
    preset: str = pa.Field(isin=["mailchimp", "hubspot", "salesforce", "brevo", "klaviyo", "generic"])
    record_id: str
    email: str = pa.Field(nullable=True)
    first_name: str = pa.Field(nullable=True)
    last_name: str = pa.Field(nullable=True)
    full_name: str = pa.Field(nullable=True)
    phone: str = pa.Field(nullable=True)
    company: str = pa.Field(nullable=True)
    street: str = pa.Field(nullable=True)
    street2: str = pa.Field(nullable=True)
    postcode: str = pa.Field(nullable=True)
    city: str = pa.Field(nullable=True)
    region: str = pa.Field(nullable=True)
    country: str = pa.Field(nullable=True)
    consent_source: str = pa.Field(nullable=True)
    consent_proof: str = pa.Field(nullable=True)
    tags: pl.List(pl.String)  # type: ignore[valid-type]
    consent_status: str = pa.Field(isin=STATUSES)
    lawful_basis: pl.List(pl.String)  # type: ignore[valid-type]
    consent_at: UTC = pa.Field(nullable=True)  # type: ignore[valid-type]
    confirmed_at: UTC = pa.Field(nullable=True)  # type: ignore[valid-type]
    consent_expires_at: UTC = pa.Field(nullable=True)  # type: ignore[valid-type]
    last_purchase_at: UTC = pa.Field(nullable=True)  # type: ignore[valid-type]
    last_activity_at: UTC = pa.Field(nullable=True)  # type: ignore[valid-type]
    created_at: UTC = pa.Field(nullable=True)  # type: ignore[valid-type]
    opted_out: bool
    opted_out_at: UTC = pa.Field(nullable=True)  # type: ignore[valid-type]
    erasure_requested: bool
    hard_bounced: bool
    bounced_at: UTC = pa.Field(nullable=True)  # type: ignore[valid-type]
    is_customer: bool
    flags: pl.List(pl.String)  # type: ignore[valid-type]
    unparsed: str = pa.Field(nullable=True)

    class Config:
        strict = True


class Decisions(pa.DataFrameModel):
    """One row per input row: where it went and why."""

    source_file: str
    source_row: int = pa.Field(ge=0)
    record_id: str = pa.Field(nullable=True)
    klass: str = pa.Field(isin=CLASSES, alias="class")
    reason: str
    flags: str = pa.Field(nullable=True)
    cluster_id: str = pa.Field(nullable=True)
    person_id: str = pa.Field(nullable=True)
    survivor_id: str = pa.Field(nullable=True)
    mx_status: str
    email_masked: str = pa.Field(nullable=True)

    class Config:
        strict = True
        unique = ["source_file", "source_row"]
