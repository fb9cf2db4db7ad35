"""Typed, strict options: ``schema`` holds the keys, ``loader`` the key and value rules. Loading a file to run it
goes through ``sr_iqa.checked_options.load_options``, which also tries the classes the blocks name."""

from sr_iqa.config.loader import InferenceOptions, options_to_yaml, read_inference_options, read_options
from sr_iqa.config.schema import Options

__all__ = ["InferenceOptions", "Options", "options_to_yaml", "read_inference_options", "read_options"]
