"""Typed, strict options (see ``schema`` for the keys and ``loader`` for the rules)."""

from sr_iqa.config.loader import InferenceOptions, load_inference_options, load_options, options_to_yaml
from sr_iqa.config.schema import Options

__all__ = ["InferenceOptions", "Options", "load_inference_options", "load_options", "options_to_yaml"]
