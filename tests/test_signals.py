"""Stop signals (fastgan.cli.signals): the first SIGINT or SIGTERM asks for a stop, a second
quits at once, and the handlers are installed whatever the process inherited."""

from __future__ import annotations

import os
import signal

import pytest

from fastgan.cli.signals import Interrupted, StopSignals, exit_status, signal_name


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_first_signal_asks_and_a_second_quits_at_once(signum):
    asked = []
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)       # as a background job starts
    try:
        with StopSignals(asked.append).installed() as signals:
            os.kill(os.getpid(), signum)
            assert asked == [signum] and signals.received == signum
            with pytest.raises(Interrupted) as stopped:
                os.kill(os.getpid(), signal.SIGTERM)
            assert stopped.value.signum == signal.SIGTERM
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN    # put back as it was
    finally:
        signal.signal(signal.SIGINT, previous)


def test_exit_statuses_and_names_follow_the_shell():
    assert exit_status(signal.SIGINT) == 130 and exit_status(signal.SIGTERM) == 143
    assert signal_name(signal.SIGINT) == "Ctrl-C" and signal_name(signal.SIGTERM) == "SIGTERM"
    assert isinstance(Interrupted(signal.SIGTERM), KeyboardInterrupt)
