"""The ``fastgan`` command: one module per subcommand (train, sample, info, evaluate, bench).

Parses arguments, calls library functions, prints. It may import every other part; nothing
imports it.
"""
