"""The daemon's own alerts: state machine, state file, messages, delivery, evaluator, heartbeat."""
