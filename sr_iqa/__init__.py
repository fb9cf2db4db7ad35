"""sr_iqa: perceptual SR training with IQA-guided multi-GT supervision."""

from sr_iqa import basicsr_compat

basicsr_compat.install()

__version__ = "0.1.0"
