"""rico_lab: prototype and evaluate real-time voice agents in a Jupyter notebook."""

from .agent.audio_path import AudioPath
from .errors import LabError, LiveKitServerError, ModelError, RoleError, WorkerError
from .evaluation.compare import Comparison, compare
from .evaluation.record import Log, load_log
from .evaluation.rehearsal import Rehearsal
from .evaluation.script import Script
from .lab import Lab
from .local_model.script import LocalScript
from .local_model.server import LocalRealtimeServer
from .notebook.magic import load_ipython_extension
from .protocol import JoinInfo
from .roles import Role, load_role, roles

__all__ = [
    "AudioPath",
    "Comparison",
    "JoinInfo",
    "Lab",
    "LabError",
    "LiveKitServerError",
    "LocalRealtimeServer",
    "LocalScript",
    "Log",
    "ModelError",
    "Rehearsal",
    "Role",
    "RoleError",
    "Script",
    "WorkerError",
    "compare",
    "load_ipython_extension",
    "load_log",
    "load_role",
    "roles",
]
