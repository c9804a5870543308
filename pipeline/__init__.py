"""Orchestrators: whole runs made of the stages (train → int8 → firmware) and what sits on top.

``build`` (one model from data to an exported bundle), ``tune`` (a multi-objective search over many
builds), ``report`` (one HTML page about a bundle). They sit above the stage packages
(``training``, ``quantize``, ``firmware_bridge``) and import them; no stage imports a pipeline module.
"""
