"""sr_iqa: perceptual SR training with IQA-guided multi-GT supervision."""

import logging

from sr_iqa import basicsr_compat

basicsr_compat.install()
# peft imports bitsandbytes when it is installed (pyiqa requires it), whose CPU backend warns on every command
# that the optional `kernels` package for 4-bit matmuls is missing; sr_iqa quantizes nothing.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

__version__ = "0.1.0"
