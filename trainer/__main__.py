"""`python -m trainer train ...`: the per-process entry point that torchrun runs."""

import sys

from trainer.cli_train import main

sys.exit(main())
