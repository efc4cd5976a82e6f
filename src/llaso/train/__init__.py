"""Training: the LLaSO two-stage recipe (align, then instruct) on transformers + accelerate.

`llaso train --config configs/train/align.yaml [key=value ...]`; see docs/training.md. Modules:
`config` (typed YAML configs), `data` (dataset, collator, batch order), `cache` (frozen-encoder feature
cache), `checkpoint` (transformers folders, projector files, resume state), `trainer` (the loop: a `Trainer` with a typed `LoopState` and named phases).
"""
