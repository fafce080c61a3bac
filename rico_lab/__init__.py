"""rico_lab: prototype and evaluate real-time voice agents in a Jupyter notebook."""

from ._magic import load_ipython_extension
from .compare import Comparison, compare
from .errors import LabError, LiveKitServerError, ModelError, RoleError, WorkerError
from .lab import JoinInfo, Lab
from .local_script import LocalScript
from .realtime_server import LocalRealtimeServer
from .record import Log, load_log
from .rehearsal import Rehearsal, Script
from .roles import Role, load_role, roles

__all__ = [
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
