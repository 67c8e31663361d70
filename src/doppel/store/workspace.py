"""The workspace: one folder, one SQLite database, folders for face sets, models, renders and keys.

Everything in the database is reached through the typed query objects a :class:`Workspace` holds
(``ws.clips``, ``ws.identities``, ``ws.faces``, ``ws.models``, ``ws.renders``, ``ws.scores``,
``ws.consents``, ``ws.jobs``): one owner per table, and no SQL anywhere else. Each of their writes
is one transaction; :meth:`Workspace.atomic` groups several into one. Files are written to a
temporary name and renamed (see :mod:`doppel.io.atomic`).

:meth:`Workspace.init` makes the folders and the database only; making a workspace with its
signing keys is :func:`doppel.workflow.workspace.create_workspace`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from doppel.core.errors import WorkspaceError
from doppel.store import db as database
from doppel.store.clips import Clips
from doppel.store.consents import Consents
from doppel.store.faces import Faces
from doppel.store.identities import Identities
from doppel.store.jobs import Jobs
from doppel.store.models import Models
from doppel.store.renders import Renders
from doppel.store.scores import Scores

DB_NAME = "doppel.db"
SUBDIRS = ("facesets", "models", "renders", "keys")


class Workspace:
    """An open workspace. Create with :meth:`init`, open with :meth:`open`; close when done."""

    def __init__(self, root: Path, db: database.Database) -> None:
        self.root = root
        self._db = db
        self.identities = Identities(db, root)
        self.clips = Clips(db, root)
        self.faces = Faces(db, root, self.identities)
        self.models = Models(db, root, self.identities)
        self.renders = Renders(db, root)
        self.scores = Scores(db)
        self.consents = Consents(db, self.identities)
        self.jobs = Jobs(db)

    # -- lifecycle -----------------------------------------------------------------------------
    @classmethod
    def init(cls, root: str | Path) -> Workspace:
        """A new, empty workspace at ``root`` (a new or empty folder)."""
        root = Path(root)
        if (root / DB_NAME).exists():
            raise WorkspaceError("is already a doppel workspace", path=root)
        if root.exists() and any(root.iterdir()):
            raise WorkspaceError("exists and is not empty; choose a new folder", path=root)
        root.mkdir(parents=True, exist_ok=True)
        for sub in SUBDIRS:
            (root / sub).mkdir(exist_ok=True)
        database.create(root / DB_NAME)  # the workspace exists only once its database is complete
        return cls.open(root)

    @classmethod
    def open(cls, root: str | Path) -> Workspace:
        root = Path(root)
        db = root / DB_NAME
        if not root.is_dir():
            raise WorkspaceError("no such workspace; create it with `doppel init`", path=root)
        if not db.is_file():
            raise WorkspaceError(f"not a doppel workspace (no {DB_NAME}); create one with `doppel init`",
                                 path=root)
        return cls(root, database.open_db(db))

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """Writes made through the query objects inside this block commit together or not at all."""
        with self._db.transaction():
            yield

    @property
    def schema_version(self) -> int:
        return self._db.schema_version

    # -- paths ---------------------------------------------------------------------------------
    def faceset_dir(self, identity: str) -> Path:
        return self.root / "facesets" / identity

    def models_dir(self) -> Path:
        return self.root / "models"

    def renders_dir(self) -> Path:
        return self.root / "renders"

    def keys_dir(self) -> Path:
        return self.root / "keys"

    def rel(self, path: Path) -> str:
        return path.resolve().relative_to(self.root.resolve()).as_posix()

    def abs(self, rel: str) -> Path:
        return self.root / rel


def owner_workspace(path: Path) -> Path | None:
    """The workspace folder that contains ``path``, if any."""
    for parent in [path, *path.parents]:
        if (parent / DB_NAME).is_file():
            return parent
    return None
