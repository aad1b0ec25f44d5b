"""Speed: the interleaved training-step benchmark, the step's floor (its GEMMs alone plus the
optimizers' memory traffic) and the PyTorch peer it is compared with; the timing every
benchmark does, and the provenance (command, commit, machine, date) every result records.

Library functions that return figures; printing is the command line's job. May import: ``gan``,
``nn``, ``backends``, ``environment`` and the leaves; torch only inside the peer.
"""
