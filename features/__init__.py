"""Canonical data, the synthetic world, feature jobs and the Feast feature repository."""
