"""Contact cleansing: read exports, validate, classify by consent evidence, write keep/reconfirm/discard.

Every stage is a plain function on polars frames; ``flows/`` wraps them in Prefect.
"""

__version__ = "0.1.0"
