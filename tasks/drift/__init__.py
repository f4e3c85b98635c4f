"""Drift math: statistics over numpy samples, the per-feature method choice, and the check's tasks."""
