"""Exploration: every op sequence up to K ops (exhaust), two targets side by side
(diff, in exhaust.py), and the abstract transitions engines use as feedback."""
