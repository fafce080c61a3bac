"""What rico_lab raises: one base class, one subclass per part that can be at fault."""


class LabError(Exception):
    """Base of every rico_lab error, so a notebook can catch them all at once."""


class LiveKitServerError(LabError):
    """The LiveKit server could not be found, started or reached."""


class RoleError(LabError):
    """A role file is missing or invalid; the message names the file and field."""


class ModelError(LabError):
    """The realtime model rejected the lab (bad API key) or could not be reached."""


class WorkerError(LabError):
    """The in-kernel agent worker failed to start or register."""
