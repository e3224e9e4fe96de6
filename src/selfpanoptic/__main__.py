"""``python -m selfpanoptic`` (what ``torchrun --nproc-per-node N -m selfpanoptic ...`` runs)."""

import sys

from .cli import main

sys.exit(main())
