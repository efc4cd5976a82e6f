"""Metric functions: each takes references and predictions (strings) and returns a typed result.

They know nothing about models, files or tasks. `registry` maps the metric names of the task registry's
catalogue to scorers, which apply these functions to the records of one file.
"""
