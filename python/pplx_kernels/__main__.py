"""python -m pplx_kernels: the same as the pplx-kernels command."""

import sys

from .cli import main

sys.exit(main())
