"""A training run on disk: the run folder ``fastgan train`` writes (config, metrics, pictures,
checkpoint), started fresh or resumed exactly.

May import: ``evaluation``, ``gan``, ``training``, ``nn``, ``backends`` and the leaves.
"""
