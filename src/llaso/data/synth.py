"""Placeholder while this command is being written."""

import argparse

DESCRIPTION = "Not written yet."


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("not written yet")
