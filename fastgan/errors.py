"""The package's exception types: every error fastgan raises on purpose is one of these."""


class FastganError(Exception):
    """Base class of every error fastgan raises on purpose."""


class BackendUnavailable(FastganError):
    """A backend was asked for that cannot run here; the message says why and what can."""


class ConfigError(FastganError, ValueError):
    """A bad argument, preset name, layer spec or hyper-parameter."""


class DataError(FastganError):
    """A dataset file is missing, corrupt or fails its checksum."""


class CheckpointError(FastganError):
    """A checkpoint cannot be read or does not fit the model it is loaded into."""


class TrainingDiverged(FastganError):
    """A loss or parameter became NaN or infinite."""
