"""Metric functions: each takes references and predictions (strings) and returns a typed result.

They know nothing about models, files or tasks; `llaso.evaluate.scoring` maps tasks to them.
"""
