"""``python -m rnnlab.report <multirun dir> [--metric KEY] [--mode max|min] [--out DIR]``."""

import sys

from rnnlab.report.cli import main

sys.exit(main())
