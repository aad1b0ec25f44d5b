"""Training machinery the GAN uses: the loop (``fit``), its callbacks (monitors), and the
checkpoint format with its JSON serialization.

Written against what they need of a GAN (the protocols :class:`~fastgan.training.loop.Trainable`
and :class:`~fastgan.training.checkpoint.Checkpointable`), not the GAN class, so the GAN can
call them (``GAN.fit``, ``GAN.save``) without a cycle. May import: ``nn``, ``backends`` and the
leaves (``data``, ``viz``, ``fileio``, ``errors``); never ``gan`` or anything above.
"""
