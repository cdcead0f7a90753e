"""Prefect glue: the flow, its tasks and the command line. The work itself lives in ``cleansing``."""
