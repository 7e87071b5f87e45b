"""thyrocad: computer-aided diagnosis of residual thyroid tissue on planar I-131 neck images."""

import logging

__version__ = "0.4.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
