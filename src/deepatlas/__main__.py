"""`python -m deepatlas` is the `deepatlas` command."""

import sys

from deepatlas.cli import main

sys.exit(main())
