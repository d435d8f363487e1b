"""Ferry's Python client: register dataset contracts, publish day partitions, read and grant."""

from ferry_client.client import Client, Progress, PublishResult, Rows
from ferry_client.errors import (
    FerryError,
    IncompatibleChange,
    InvalidArgument,
    InvalidContract,
    NameTaken,
    NotFound,
    PermissionDenied,
    PublishRejected,
    RowError,
    Unauthenticated,
    Unavailable,
)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "FerryError",
    "IncompatibleChange",
    "InvalidArgument",
    "InvalidContract",
    "NameTaken",
    "NotFound",
    "PermissionDenied",
    "Progress",
    "PublishRejected",
    "PublishResult",
    "RowError",
    "Rows",
    "Unauthenticated",
    "Unavailable",
    "__version__",
]
