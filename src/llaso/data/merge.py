"""Placeholder while this command is being written (replaced before the issue is closed)."""

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("not written yet")
