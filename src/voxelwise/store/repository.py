"""Opening a study repository: its folder, its database and its file store."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, inspect, make_url, select
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from voxelwise.errors import InputError
from voxelwise.store.errors import SchemaVersionError, StoreError
from voxelwise.store.models import SCHEMA_VERSION, Base, Meta
from voxelwise.store.objects import ObjectStore

DATABASE_ENV = "VOXELWISE_DB"
DATABASE_FILE = "repository.db"
OBJECTS_FOLDER = "objects"
DEFAULT_FOLDER = "voxelwise-repository"


class Repository:
    """A study repository: a folder with the database (or a database URL) and a file store.

    Layout of the folder::

        repository.db      the SQLite database (unless a database URL is given)
        objects/ab/cdef... de-identified files, named by their sha256 (see `ObjectStore`)

    Open it with `Repository.open`; use `session()` for each unit of work.
    """

    def __init__(self, root: Path, engine: Engine) -> None:
        self.root = root
        self.engine = engine
        self.objects = ObjectStore(root / OBJECTS_FOLDER)
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, path: str | Path | None = None, url: str | URL | None = None) -> Repository:
        """Open (creating if needed) the repository in folder ``path``.

        ``path`` defaults to ``./voxelwise-repository``. The database is, in this order: ``url``
        when given; else the URL in the environment variable ``VOXELWISE_DB`` when it is set
        (e.g. ``postgresql+psycopg://user@dbhost/voxelwise``); else the SQLite file
        ``repository.db`` in the folder. Files always live in the folder, whatever the database.

        Tables are created when missing. A database written by a newer voxelwise (a higher
        schema version) is refused with `SchemaVersionError`; a folder that cannot be used, or
        a database that cannot be reached, with `InputError` or `StoreError`.
        """
        root = Path(DEFAULT_FOLDER if path is None else path).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise InputError(root, "is a file, not a repository folder")
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(root, f"cannot create the repository folder: {error.strerror}") \
                from None
        if url is None:
            url = os.environ.get(DATABASE_ENV) or URL.create(
                "sqlite", database=str(root / DATABASE_FILE))
        engine = _create_engine(url)
        try:
            _prepare_schema(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(root, engine)

    @property
    def url(self) -> URL:
        """The database URL (``str(repository.url)`` hides the password)."""
        return self.engine.url

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        """Close the database connections (the repository can be opened again later)."""
        self.engine.dispose()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Repository(root={str(self.root)!r}, url={str(self.url)!r})"


def _create_engine(url: str | URL) -> Engine:
    shown = _shown(url)
    try:
        engine = create_engine(url)
    except (ArgumentError, NoSuchModuleError, ValueError) as error:
        raise StoreError(f"{shown}: not a usable database URL ({error})") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
    return engine


def _enable_sqlite_foreign_keys(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _shown(url: str | URL) -> str:
    """The URL as it may be printed: without its password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable database URL>"


def _prepare_schema(engine: Engine) -> None:
    """Refuse a newer schema, create missing tables, record the schema version."""
    shown = _shown(engine.url)
    try:
        with engine.begin() as connection:
            if inspect(connection).has_table(Meta.__tablename__):
                found = connection.scalar(
                    select(Meta.value).where(Meta.key == "schema_version"))
                if found is not None and int(found) > SCHEMA_VERSION:
                    raise SchemaVersionError(
                        f"{shown}: the repository has schema version {found}, newer than the "
                        f"version {SCHEMA_VERSION} this voxelwise knows; upgrade voxelwise")
            Base.metadata.create_all(connection)
            if connection.scalar(select(Meta.value).where(Meta.key == "schema_version")) is None:
                connection.execute(Meta.__table__.insert().values(
                    key="schema_version", value=str(SCHEMA_VERSION)))
    except DBAPIError as error:  # unreachable, refused, no rights
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise StoreError(f"{shown}: cannot open the database: {reason}") from None
