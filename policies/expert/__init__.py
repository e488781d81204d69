"""Scripted privileged expert policy (waypoint state machine over ground-truth object poses)."""
