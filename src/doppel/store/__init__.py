"""The workspace store: the only code that reads and writes the workspace database.

``Workspace`` opens a workspace and holds one typed query object per aggregate; ``records`` has
the dataclasses they hand out and take in (the only part of the store that stages import).
"""

from doppel.store.workspace import DB_NAME, SUBDIRS, Workspace

__all__ = ["DB_NAME", "SUBDIRS", "Workspace"]
