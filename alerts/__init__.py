"""Threshold checks, alert state, notification delivery and the bundled Prometheus rules."""
