"""The demo's settings: a profile (`configs/demo/<name>.yaml`: `default`, `all`, `quick`) as typed
sections, and the options of one `llaso demo` run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from llaso.utils.config import load_options

# the profiles shipped in configs/demo (a profile is any NAME.yaml there): `make demo` runs `default`
PROFILES = ("default", "all", "quick")
DEFAULT_PROFILE = "default"


class DemoError(RuntimeError):
    """A step that cannot run; the message says what to do."""


@dataclass
class CorpusSection:
    size: str = "small"  # `llaso data synth --size`
    free_share: float | None = None  # synth's --free-share; None: synth's default
    tasks: list[str] | None = None  # synth's --tasks (None: every synthetic task)
    vocabulary: str = "full"  # synth's --vocabulary: the templated sentences' closed vocabulary
    train_items: int | None = None  # synth's --train-items, --eval-items, --align-items (None: the size's)
    eval_items: int | None = None
    align_items: int | None = None


@dataclass
class AlignSection:
    """Stage 1: an ordinary `llaso train` config (relative to the profile's folder), extra overrides."""

    config: str = "align.yaml"
    overrides: list[str] = field(default_factory=list)
    # seconds per training step of this stage on idle cores with the default threads: a median of 3 steps
    # over 3 times this prints the busy-machine warning. None: only the warning that compares the stage's
    # steps with its own earlier ones
    expected_step_s: float | None = None


@dataclass
class InstructSection:
    """Stage 2, as stage 1, trained on the whole instruct split or a subset of it."""

    config: str = "instruct.yaml"
    overrides: list[str] = field(default_factory=list)
    expected_step_s: float | None = None  # as in AlignSection
    samples: int | None = None  # one epoch over a subset of this many records (None: the whole split)
    task_weights: dict[str, float] | None = (
        None  # each task's share of the subset (default 1; 0 leaves it out)
    )
    # what stage 2 starts from: `projector` (the original recipe: the stage-1 projector on the imported
    # language model) or `model` (the whole stage-1 model, for a stage 1 that also trained LoRA adapters,
    # merged into the language model when it was saved)
    start: Literal["projector", "model"] = "projector"


@dataclass
class InferSection:
    batch_size: int = 16
    dtype: str = "float32"  # a torch dtype name (float32, bfloat16) or auto: bfloat16 where native
    limit: int | None = None  # eval items per file (None: all)
    max_new_tokens: int = 64
    max_new_tokens_per_task: dict[str, int] = field(default_factory=dict)
    real_speech: bool = True  # also decode the pocketsphinx 5.1.1 LibriVox utterances


@dataclass
class TargetsSection:
    wall_minutes: float = 20.0
    closed_margin: float = 0.15  # accuracy at least this much over the majority-class baseline, in (t,a)
    closed_p: float = 0.01  # and a one-sided binomial p-value below this against the baseline's rate
    asr_wer: float = 0.15
    # numeric tasks (PP): an MAE below that of always answering the training answers' median, in (t,a)


@dataclass
class DemoProfile:
    corpus: CorpusSection = field(default_factory=CorpusSection)
    align: AlignSection = field(default_factory=AlignSection)
    instruct: InstructSection = field(default_factory=InstructSection)
    infer: InferSection = field(default_factory=InferSection)
    targets: TargetsSection = field(default_factory=TargetsSection)


@dataclass(frozen=True)
class DemoOptions:
    """The options of one `llaso demo` run (its flags)."""

    out: str = "demo-run"  # folder for everything the demo makes
    profile: str = DEFAULT_PROFILE  # a profile of the config folder (its NAME.yaml)
    seed: int = 0  # seed of the synthetic corpus
    weights: str | None = None  # folder of `llaso weights import` (None: OUT/weights)
    config_dir: str | None = None  # folder of the demo configs (None: configs/demo of this checkout)
    real_speech: bool = True  # False: skip the LibriVox set
    # torch threads for training and inference (None: $OMP_NUM_THREADS, else the cores that other processes
    # leave free, sampled as each heavy step starts: llaso.utils.cores.choose_threads)
    threads: int | None = None


def config_dir(given: str | None = None) -> Path:
    """configs/demo of this checkout (or of the working folder), or the folder given."""
    if given:
        return Path(given)
    for base in (Path(__file__).resolve().parents[3], Path.cwd()):
        d = base / "configs" / "demo"
        if (d / f"{DEFAULT_PROFILE}.yaml").is_file():
            return d
    raise DemoError("configs/demo not found; run from the llaso checkout or pass --config-dir")


def available_profiles(cfg_dir: Path) -> list[str]:
    """The profile names of `cfg_dir`: its YAML files that are not training configs."""
    return sorted(
        p.stem
        for p in cfg_dir.glob("*.yaml")
        if p.stem not in ("align", "instruct") and not p.stem.startswith("_")
    )


def profile_path(cfg_dir: Path, name: str) -> Path:
    path = cfg_dir / f"{name}.yaml"
    if not path.is_file() or name in ("align", "instruct"):
        known = ", ".join(available_profiles(cfg_dir)) or "none"
        raise DemoError(f"no demo profile {name!r} in {cfg_dir} (profiles there: {known})")
    return path


# A profile with `base: other.yaml` that gives one of these per-task tables gives the whole table: merged key by
# key, a base's task would stay in a child's stage-2 shares (and fail there when the child drops the task).
PER_TASK_TABLES = ("task_weights", "max_new_tokens_per_task")


def load_profile(cfg_dir: Path, name: str, overrides: list[str] | None = None) -> DemoProfile:
    """The profile `name` of `cfg_dir`, with dotted `key=value` overrides; an unknown key or a wrong type is
    a `ConfigError` that names it."""
    return load_options(
        DemoProfile,
        profile_path(cfg_dir, name),
        overrides or (),
        atomic_keys=PER_TASK_TABLES,
        what="a demo profile",
    )
