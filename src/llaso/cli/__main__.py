"""`python -m llaso.cli` (and `accelerate launch -m llaso.cli ...`, `torchrun -m llaso.cli ...`)."""

import sys

from llaso.cli import main

sys.exit(main())
