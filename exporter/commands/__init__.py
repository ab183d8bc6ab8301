"""The CLI's commands besides serve: check, status, demo, rules and dashboard; exit codes."""
