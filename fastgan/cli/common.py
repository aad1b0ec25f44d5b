"""What every ``fastgan`` subcommand shares: exit statuses, the one-line error, the parser."""

from __future__ import annotations

import argparse
from typing import NoReturn

from ..errors import ConfigError

EXIT_ERROR, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 1, 2, 3, 130
"""Exit statuses: a clear error, a bad command line, training diverged, interrupted."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (plus where to get help)."""

    def error(self, message: str) -> NoReturn:
        """Exit with :data:`EXIT_USAGE` and one line naming the problem."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def fail(message: str) -> NoReturn:
    """Stop the command with a clear error message (printed as one ``fastgan: error:`` line)."""
    raise ConfigError(message)
