"""pandera schemas for the pipeline's boundaries: after mapping, and before writing."""
