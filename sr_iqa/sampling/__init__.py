"""Choosing the GT that supervises each sample, in every mode, in one package:

- ``choosers``: the samplers' rule (probabilities over a group's GTs) and the choosers the dataset calls.
- ``cached_scores``: the scores they read from the score cache, once, before training.
- ``build``: the training's chooser from its options.
- ``online_amo``: online AMO, chosen on the device in the training step.
- ``statistics``: what was chosen, per print interval (log and TensorBoard).
- ``preview``: ``sr-iqa sampler preview``, what a sampler would pick before any training.
"""
