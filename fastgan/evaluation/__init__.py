"""Sample quality: the evaluation classifier, the metrics on its features (Fréchet distance,
precision/recall, ...) and their math.

Library functions that return numbers; printing is the command line's job. May import: ``gan``,
``training``, ``nn``, ``backends`` and the leaves.
"""
