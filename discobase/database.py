"""The :class:`Database`: a guild bound as storage, its catalog, and its tables."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import logging
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Container,
    Coroutine,
    Generator,
    Mapping,
)
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .classes import (
    TABLE_ATTRIBUTES,
    check_catalog_fits,
    field_spec,
    runtime_class,
    schema_of,
    ttl_seconds,
)
from .crypto import KeyInput, KeyRing
from .engine.access import exposure, missing_own
from .engine.catalog import Catalog
from .engine.horizon import ServerClock
from .engine.layout import CATALOG_CHANNEL, StorageLayout, shard_channel_name
from .engine.reshard import MAX_SHARDS, check_growth
from .engine.schema import DEFAULT_SHARDS, TableSchema, check_name, check_new_field_names
from .engine.storage import StoredChannel, StoredMessage
from .engine.table import Compaction, TableEngine, Write
from .engine.tasks import BackgroundTasks
from .errors import (
    ActiveThreadLimitError,
    MissingPermissionsError,
    NotATableError,
    NotConnectedError,
    SchemaError,
    SchemaMismatchError,
    StorageCorruptError,
    TableExistsError,
    TableNotFoundError,
    TableShardsMissingError,
)
from .model import Table, settings_of
from .problems import Problem, ProblemKind
from .sealed import KeyRotation, SealedTransport
from .transport import RetryPolicy, Transport

if TYPE_CHECKING:
    import discord

__all__ = ("CheckReport", "Connection", "Database")

log = logging.getLogger(__name__)
T = TypeVar("T", bound=type[Table])
T_result = TypeVar("T_result")
#: Attachments are capped here even where a guild allows more (SimCord enforces none).
MAX_ATTACHMENT = 10 * 1024 * 1024
DEFAULT_COMPACTION = Compaction()


@dataclass
class CheckReport:
    """What ``Database.check`` found. ``ok`` when there are no problems."""

    problems: list[Problem] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        lines = [f"{len(self.tables)} tables, {sum(self.tables.values())} records"]
        lines += [
            f"{p.kind}: table={p.table} channel={p.channel_id} message={p.message_id}: {p.detail}"
            for p in self.problems
        ]
        return "\n".join(lines)


class Connection:
    """What :meth:`Database.connect` returns: await it (the open database), or use it as an
    async context manager (open, and close at the end). Opening starts at either."""

    def __init__(
        self, open: Callable[[], Awaitable[Database]], close: Callable[[], Awaitable[None]]
    ) -> None:
        self._open = open
        self._close = close

    def __await__(self) -> Generator[Any, None, Database]:
        return self._open().__await__()

    async def __aenter__(self) -> Database:
        return await self._open()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._close()


@dataclass
class _Entry:
    """A table the database knows: its class, whether ``@db.table`` declared it (a declared
    class stays registered while its table is closed or reloaded), and its engine once attached."""

    cls: type[Table]
    declared: bool
    engine: TableEngine | None = None


class Database:
    """A database stored in one Discord guild.

    ``guild`` is the guild's id, or its name (the first guild with exactly that name).
    Pass ``bot`` to share a discord.py client that runs elsewhere (the bot's own process);
    without it the database makes its own, which :meth:`connect` logs in. ``category`` names
    the (hidden) category that holds the storage channels; ``admin_role`` is a role id that
    may read them. ``compaction`` sets when tables compact by themselves (None: never).

    ``encryption_key`` (a key from ``discobase keygen``, or several: the first seals what is
    written, every one opens what is read) encrypts every stored message with AES-GCM; see
    docs/operations.md. Reading encrypted storage without its key raises
    :class:`MissingKeyError` or :class:`WrongKeyError`. ``encryption_required=True`` (needs a
    key) also refuses storage messages that are not encrypted: reading one raises
    :class:`UnencryptedMessageError` (an open, a catch-up) and it is never applied;
    :meth:`rotate_key` still seals them.

    ``compat="1.0"`` turns on discobase 1.0's behaviour where it differs from this version's:
    writes return tasks that run without being awaited, and ``find_unique`` raises when nothing
    matches (see docs/migrating-from-1.0.md). ``logging`` is accepted for 1.0 code and ignored:
    discobase logs to the standard ``logging`` module's ``discobase`` loggers.
    """

    def __init__(
        self,
        guild: int | str,
        *,
        bot: discord.Client | None = None,
        category: str = "discobase",
        admin_role: int | None = None,
        retry: RetryPolicy | None = None,
        compaction: Compaction | None = DEFAULT_COMPACTION,
        compat: Literal["1.0"] | None = None,
        logging: bool = False,
        encryption_key: KeyInput = None,
        encryption_required: bool = False,
    ) -> None:
        if not isinstance(guild, int | str) or isinstance(guild, bool):
            raise TypeError("guild must be a guild id (int) or name (str)")
        if compat not in (None, "1.0"):
            raise ValueError(f"compat must be None or '1.0', not {compat!r}")
        keys = KeyRing.of(encryption_key)
        self.compat = compat
        self.guild_ref = guild
        self.category = category
        self.admin_role = admin_role
        self.compaction = compaction
        self._owns_bot = bot is None
        self.bot = bot if bot is not None else Transport.create_client()
        self.transport = SealedTransport(self.bot, retry, keys, required=encryption_required)
        self.transport.on_channel_gone = self._channel_gone
        self._layout = StorageLayout(self.transport, category)
        self.guild_id: int | None = None
        self.size_limit = MAX_ATTACHMENT
        #: Every table by name: declared classes, and the tables of the guild once open.
        self._registry: dict[str, _Entry] = {}
        self._catalog: Catalog | None = None
        #: Storage channels the gateway had not announced when a catalog event named them,
        #: confirmed by a REST read.
        self._confirmed_channels: set[int] = set()
        #: Threads of storage channels the gateway cache does not hold (archived threads
        #: never are), confirmed by a REST read: thread id -> parent id.
        self._confirmed_threads: dict[int, int] = {}
        #: Storage channels and threads deleted since (Discord said so), by the table whose
        #: shard each was, if any: never storage again (ids are not reused).
        self._gone: dict[int, str | None] = {}
        #: Tables this process created, by name: the id of its ``create`` event.
        self._own_creates: dict[str, int] = {}
        self._open_lock = asyncio.Lock()
        # Local schema changes and following other processes' changes take turns, so the
        # gateway echo of our own catalog event never attaches a table twice.
        self._schema_lock = asyncio.Lock()
        self._ready = asyncio.Event()
        self._login_task: asyncio.Task[None] | None = None
        self._opener: asyncio.Task[None] | None = None
        #: Set each time :meth:`login_task` starts a login (``wait_ready`` then watches it).
        self._login_started = asyncio.Event()
        self._background = BackgroundTasks("the database")
        self._v1_writes: set[asyncio.Task[Any]] = set()
        self._clock = ServerClock(self.transport.now)
        #: Gateway messages that arrived while the database opens (handled once it is open).
        self._early: list[StoredMessage] | None = None
        self._sync_when_open = False

    # -- tables declared by classes ---------------------------------------------------------

    def table(self, cls: T) -> T:
        """Register a :class:`Table` subclass (use as ``@db.table``). Returns the class.

        Raises :class:`NotATableError` for anything else, :class:`TableExistsError` if a class
        with that table name is registered already, :class:`SchemaError` for a bad definition.
        A class registered after :meth:`open` is attached by :meth:`build_tables`.
        """
        if not (isinstance(cls, type) and issubclass(cls, Table)):
            raise NotATableError(
                f"{cls!r} is not a subclass of discobase.Table; did you forget it?"
            )
        schema = schema_of(cls)
        if schema.name == CATALOG_CHANNEL:
            raise SchemaError(
                f"{cls.__name__}: the table name 'catalog' is reserved; set another in Settings.name"
            )
        loaded = self._registry.get(schema.name)
        if loaded is not None and loaded.declared:
            raise TableExistsError(schema.name)
        cls.__discobase_name__ = schema.name
        cls.__discobase_database__ = self
        # A table loaded with a generated class keeps its engine until build_tables()
        # reloads it with this class.
        engine = loaded.engine if loaded is not None else None
        self._registry[schema.name] = _Entry(cls, declared=True, engine=engine)
        return cls

    @property
    def tables(self) -> Mapping[str, type[Table]]:
        """Table name -> its Table class, for every table in the guild (runtime ones too) and
        every class registered with ``@db.table``: a read-only snapshot (register a class
        with ``@db.table``, make a table with :meth:`create_table`)."""
        return MappingProxyType({name: entry.cls for name, entry in self._registry.items()})

    def _declared(self, name: str) -> type[Table] | None:
        """The class ``@db.table`` registered for the table, if any."""
        entry = self._registry.get(name)
        return entry.cls if entry is not None and entry.declared else None

    def _engines(self) -> dict[str, TableEngine]:
        """The attached tables' engines, by name (a new dict: safe to change the registry
        while iterating it)."""
        return {n: e.engine for n, e in self._registry.items() if e.engine is not None}

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._ready.is_set()

    @property
    def guild(self) -> discord.Guild | None:
        """The bound guild, once the database has opened (None before)."""
        return self.bot.get_guild(self.guild_id) if self.guild_id is not None else None

    @property
    def name(self) -> str | None:
        """The bound guild's name (the name given, before the database opened by name)."""
        guild = self.guild
        if guild is not None:
            return guild.name
        return self.guild_ref if isinstance(self.guild_ref, str) else None

    def connect(self, token: str | None = None) -> Connection:
        """Open the database: the way in. Either form works (as aiosqlite's ``connect``):

        - ``async with db.connect(token):`` opens it and closes it at the end, also when the
          body raises (writes already queued are sent first);
        - ``db = await discobase.Database(guild).connect(token)`` opens and returns it;
          ``await db.close()`` when done.

        ``token`` logs the database's own client in; it runs until :meth:`close`. Without a
        token the client runs elsewhere: the one passed as ``bot=`` (the database waits until
        it is ready; closing leaves it running), or an own client logged in already.
        Connecting a database that is open returns it. A database that fails to open is
        closed again (its own client logged out) and raises why: :class:`InvalidTokenError`,
        :class:`GuildNotFoundError`, :class:`GuildUnavailableError`,
        :class:`MissingPermissionsError`, :class:`SchemaMismatchError`,
        :class:`UnsupportedFormatError`, :class:`NotConnectedError` (no token for a client
        that is not running).
        """
        return Connection(functools.partial(self._connect, token), self.close)

    async def _connect(self, token: str | None) -> Database:
        if self.is_open:
            return self
        try:
            if token is not None:
                self.login_task(token)
                await self.wait_ready()
            elif self._owns_bot and not self.bot.is_ready() and self._login_task is None:
                raise NotConnectedError(
                    "the database runs its own client: pass the bot token, db.connect(token)"
                )
            else:
                await self.open()
        except BaseException:
            await self.close()
            raise
        return self

    async def open(self) -> None:
        """Bind to the guild, create or verify the storage layout, load every table: what
        :meth:`connect` does once the client is ready (``await db.connect()`` is the same for a
        client that runs elsewhere, except that it closes the database again if opening fails).

        Waits until the client is ready. Idempotent. Raises :class:`GuildNotFoundError`,
        :class:`GuildUnavailableError`, :class:`MissingPermissionsError`, :class:`SchemaMismatchError`,
        :class:`UnsupportedFormatError`.
        """
        async with self._open_lock:
            if self.is_open:
                return
            await self.bot.wait_until_ready()
            guild = self.transport.bind(self.guild_ref, self.admin_role)
            self.guild_id = guild.id
            self.size_limit = min(guild.filesize_limit, MAX_ATTACHMENT) - self.transport.overhead
            # Listen before reading: a message stored before a read begins is in the read,
            # one stored after it reaches the gateway; those that arrive meanwhile wait.
            self._early = []
            self.transport.listen(self._on_message, self._on_reconnect, guild_id=guild.id)
            try:
                await self._load()
            except BaseException:
                self.transport.unlisten()
                raise
            finally:
                early, self._early = self._early, None
            self._ready.set()
            for message in early:
                self._on_message(message)
            if self._sync_when_open:
                self._sync_when_open = False
                self._background.spawn(self.sync())
            log.info("database open: guild %s, %d tables", guild.id, len(self._engines()))

    async def _load(self) -> None:
        # Channels and threads confirmed while open before: one may be deleted since.
        self._confirmed_channels.clear()
        self._confirmed_threads.clear()
        await self._layout.ensure_category()
        channels = self._layout.channels()
        catalog_ids = [i for i, name in channels.items() if name == CATALOG_CHANNEL]
        if not catalog_ids:
            if channels:
                raise StorageCorruptError(
                    f"the storage category {self.category!r} holds {len(channels)} channels "
                    f"but no {CATALOG_CHANNEL!r} channel: it was deleted by hand, and "
                    "without it the tables cannot be read. Restore it from a backup, or "
                    "move the old channels out of the category to start an empty database"
                )
            catalog_ids = await self._layout.create_catalog()
        self._check_access(catalog_ids)
        self._catalog = self._new_catalog(catalog_ids)
        await self._catalog.load()
        await self._confirm_unknown_channels(self._catalog)
        self._check_access({c for schema in self._catalog.tables.values() for c in schema.channels})
        for name, entry in list(self._registry.items()):
            if entry.declared:
                await self._open_class_table(name, entry.cls)
        for name, entry in list(self._registry.items()):
            if not entry.declared and name not in self._catalog.tables:
                del self._registry[name]  # a generated class of a table gone while closed
        attached = self._engines()
        await asyncio.gather(
            *(
                self._attach_found(schema)
                for name, schema in self._catalog.tables.items()
                if name not in attached
            )
        )
        for name, lost_creates in self._catalog.lost_creates.items():
            for lost in lost_creates:
                await self._fold_lost_create(lost, self._engines()[name])

    async def _attach_found(self, schema: TableSchema) -> None:
        """Attach a table the catalog names; one whose shard turns out to be gone while it
        loads is left out (``unusable_tables``), as if the catalog had said so."""
        try:
            await self._attach(schema, self._declared(schema.name))
        except TableShardsMissingError:
            engine = self._engines().get(schema.name)
            if engine is not None:
                await engine.close()
            self._detach(schema.name)

    def _check_access(self, channel_ids: Collection[int]) -> None:
        """Refuse storage channels the bot cannot use (:class:`MissingPermissionsError`, before
        reading them); warn about those whose overwrites let others read or change them
        (``check()`` reports them; nothing is changed)."""
        channels = {c.id: c for c in self.transport.cached_channels()}
        lacking: list[str] = []
        parents = {channels[c].parent_id for c in channel_ids if c in channels}
        for channel_id in sorted(channel_ids):
            channel = channels.get(channel_id)
            if channel is None:
                continue
            missing = missing_own(channel, threads=channel_id in parents)
            lacking.extend(f"{name} in #{channel.name}" for name in missing)
            for problem in exposure(channel, self.admin_role):
                log.warning(
                    "storage channel #%s (%s): %s; db.reset_permissions() (the command line's "
                    "reset-permissions) restores discobase's overwrites",
                    channel.name,
                    channel.id,
                    problem,
                )
        if lacking:
            raise MissingPermissionsError(self.guild_id, lacking)

    async def build_tables(self) -> None:
        """Attach the table classes registered since :meth:`open`: create their tables, or load
        them and check their schema; open the database first if it is not open. Safe to call
        again. Raises what :meth:`open` raises."""
        if not self.is_open:
            await self.open()
            return
        async with self._schema_lock:
            for name, entry in list(self._registry.items()):
                if not entry.declared:
                    continue
                if entry.engine is not None:
                    if entry.cls.__discobase_engine__ is entry.engine:
                        continue
                    # loaded before the class was registered: reload it with the class
                    await entry.engine.close()
                    entry.engine = None
                await self._open_class_table(name, entry.cls)

    async def clean(self) -> None:
        """Delete everything this database stored in the guild: the channels of every table,
        the catalog and the storage category. Irreversible. The database is closed afterwards
        (its client keeps running) and its table classes stay registered: ``await db.open()``
        starts an empty database with them."""
        self._require_open()
        assert self.guild_id is not None
        async with self._schema_lock:
            self.transport.unlisten()
            for name, engine in self._engines().items():
                await engine.close()
                self._detach(name)
            self._catalog = None
            self._ready.clear()
            self.transport.bind(self.guild_id, self.admin_role)
            for thread_id in await self._layout.read_threads():
                await self.transport.delete_channel(thread_id)
            await self._layout.delete_all()

    def _v1_write(self, work: Coroutine[Any, Any, T_result]) -> asyncio.Task[T_result]:
        """Run a write as 1.0 did: as a task that runs whether or not it is awaited."""
        task = asyncio.get_running_loop().create_task(work)
        self._v1_writes.add(task)
        task.add_done_callback(self._v1_writes.discard)
        return task

    async def close(self) -> None:
        """Send pending writes, stop background work, and (own client only) log out. An open
        still waiting for a login that failed is stopped."""
        opener = self._opener
        if opener is not None and not opener.done():
            opener.cancel()
            await asyncio.wait([opener])
        if self._v1_writes:
            await asyncio.wait(self._v1_writes)
        self.transport.unlisten()
        for engine in self._engines().values():
            await engine.close()
        await self._background.wait()
        for entry in self._registry.values():
            entry.cls.__discobase_engine__ = None
            entry.engine = None
        self._ready.clear()
        if self._owns_bot and not self.bot.is_closed():
            await self.bot.close()
        if self._login_task is not None:
            await asyncio.wait([self._login_task])  # the client's run ends with the close

    # -- discobase 1.0's names: thin aliases of the above ----------------------------------

    async def init(self) -> None:
        """1.0's name for :meth:`open`."""
        await self.open()

    def conn(self, token: str) -> Connection:
        """1.0's name for :meth:`connect`: ``async with db.conn(token):``."""
        return self.connect(token)

    async def login(self, token: str) -> None:
        """1.0's: log the own client in, open the database, and run until the client closes
        (:meth:`connect` returns once the database is open instead)."""
        await self.login_task(token)

    def login_task(self, token: str) -> asyncio.Task[None]:
        """1.0's: start logging the own client in and opening the database, and return the
        client's task (kept referenced; it ends when the client closes). ``await
        db.wait_ready()`` waits for the database. :meth:`connect` does both."""
        if not self._owns_bot:
            raise NotConnectedError(
                "this database shares a client (bot=): run that client, and "
                "`await db.connect()` without a token"
            )
        if self._login_task is None or self._login_task.done():
            loop = asyncio.get_running_loop()
            # This open() is the login's: the task below must not start another one when this
            # one has already failed (on a client that is ready, it fails before the login).
            self._opener = loop.create_task(self.open())
            self._login_task = loop.create_task(self.transport.run(token))
            self._login_started.set()
        return self._login_task

    async def wait_ready(self) -> None:
        """1.0's: wait until the database is open; raise if logging in failed first. A login
        started after the wait began (``asyncio.create_task(db.login(token))`` has not run
        yet when ``wait_ready`` is awaited) is watched too: its failure raises here."""
        ready = asyncio.ensure_future(self._ready.wait())
        watched: set[asyncio.Future[Any]] = set()
        try:
            while not ready.done():
                self._login_started.clear()
                started = asyncio.ensure_future(self._login_started.wait())
                tasks = {t for t in (self._login_task, self._opener) if t is not None} - watched
                done, _ = await asyncio.wait(
                    {ready, started, *tasks}, return_when=asyncio.FIRST_COMPLETED
                )
                started.cancel()
                for task in done & tasks:
                    watched.add(task)
                    if task.exception() is not None or task is self._login_task:
                        task.result()  # raises why the open or the client failed
                        raise NotConnectedError("the client stopped before the database opened")
        finally:
            ready.cancel()

    # -- tables -----------------------------------------------------------------------------

    def _require_open(self) -> Catalog:
        if self._catalog is None or not self.is_open:
            raise NotConnectedError(
                "the database is not open: open it first (async with db.connect(token))"
            )
        return self._catalog

    def _new_catalog(self, channel_ids: list[int]) -> Catalog:
        return Catalog(
            self.transport,
            channel_ids,
            storage_channels=self._storage_channel_ids,
            thread_parents=self._thread_parents,
            check_schema=runtime_class,
        )

    def _catalog_channels(self) -> set[int]:
        return self._layout.catalog_ids()

    def _storage_channel_ids(self) -> set[int]:
        """This guild's storage channels: a table may use only these."""
        return (set(self._layout.channels()) | self._confirmed_channels) - self._gone.keys()

    def _thread_parents(self) -> dict[int, int]:
        """Known threads of storage channels, thread id -> parent id: those the gateway
        announced and those confirmed by a REST read. A thread stays known when it archives
        (discord.py then drops it from its cache), so a table does not drop out of the catalog's
        fold, nor need a read, because its shards were idle."""
        self._confirmed_threads |= self._layout.threads()
        for gone in self._gone.keys() & self._confirmed_threads.keys():
            del self._confirmed_threads[gone]
        return dict(self._confirmed_threads)

    async def _confirm_threads(self, thread_ids: Collection[int]) -> bool:
        """Read threads by id (archived ones are in no cache: topics/threads.mdx, the
        gateway syncs active threads only) and remember those that are threads of storage
        channels; return whether any was."""
        storage = self._storage_channel_ids()
        found = await asyncio.gather(*(self.transport.fetch_thread(t) for t in thread_ids))
        confirmed = {
            t.id: t.parent_id
            for t in found
            if t is not None and t.parent_id is not None and t.parent_id in storage
        }
        self._confirmed_threads |= confirmed
        return bool(confirmed)

    @property
    def unusable_tables(self) -> dict[str, str]:
        """Tables the catalog names that are left out, name -> why: a shard channel or thread
        of theirs is gone (deleted by hand) or is not this guild's. Opening a class declared
        for one raises :class:`TableShardsMissingError`; ``check()`` reports them."""
        return dict(self._require_open().unusable)

    def _unconfirmed(self, catalog: Catalog) -> bool:
        """Whether the catalog names channels neither the gateway nor a REST read confirmed
        (and not known to be deleted)."""
        return bool(catalog.unknown_channels - self._confirmed_channels - self._gone.keys())

    def _channel_gone(self, channel_id: int) -> TableShardsMissingError | None:
        """Discord says a channel or thread is gone. If it was a shard of an attached table,
        the table is left out as :meth:`open` leaves such a table out (``unusable_tables``;
        its class raises :class:`TableShardsMissingError`) once its writes already queued for
        its other shards are sent. Returns the error a request to the channel raises."""
        if channel_id not in self._gone:
            owner = next((n for n, e in self._engines().items() if e.owns(channel_id)), None)
            self._gone[channel_id] = owner
            catalog = self._catalog
            if owner is not None and catalog is not None:
                catalog.fold()
                # Only a table the catalog now refuses: one moved to other channels, or
                # dropped, had its old ones deleted on purpose.
                if owner in catalog.unusable:
                    log.warning("table %s: its shard %s was deleted", owner, channel_id)
                    if self.is_open:  # an open in progress leaves the table out itself
                        self._background.spawn(self._follow_catalog())
        name = self._gone[channel_id]
        unusable = self._catalog.unusable if self._catalog is not None else {}
        if name is None or name not in unusable:
            return None
        return TableShardsMissingError(name, unusable[name])

    async def _confirm_unknown_channels(self, catalog: Catalog) -> None:
        """Read by REST the storage channels when the catalog names channels the gateway has
        not announced (another process just made them, maybe in a category we have not seen
        yet, or they are archived threads); refold when some are this guild's storage."""
        if not self._unconfirmed(catalog):
            return
        unknown = catalog.unknown_channels - self._confirmed_channels
        storage = await self._layout.read_channels()
        confirmed = unknown & storage.keys()
        self._confirmed_channels |= confirmed
        threads = await self._confirm_threads(unknown - confirmed) if unknown - confirmed else False
        if confirmed or threads:
            catalog.fold()

    async def _create_in_guild(self, schema: TableSchema) -> tuple[TableSchema | None, bool]:
        """Make the table's channels and write its ``create``; return the table as the
        catalog settles it and whether it is ours (empty). Another process may have created
        the same table at once: the first ``create`` wins, so re-read the catalog and, when
        ours lost, delete the channels only ours used."""
        catalog = self._catalog
        assert catalog is not None
        schema.channels, schema.threads = await self._create_shards(schema)
        created = await catalog.append("create", schema)
        await catalog.load()
        await self._confirm_unknown_channels(catalog)
        settled = catalog.tables.get(schema.name)
        if settled is not None and settled.channels == schema.channels:
            self._own_creates[schema.name] = created.id
            return settled, True
        kept = set(settled.channels) if settled is not None else set()
        log.info("table %s: another process created it first; using its channels", schema.name)
        await self._delete_shards([c for c in schema.channels if c not in kept])
        return settled, False

    async def _create_shards(self, schema: TableSchema) -> tuple[list[int], bool]:
        """Make a new table's shards: its channel, then its other shards as private threads
        of it (they cost none of the guild's 500 channels nor the category's 50, and each
        has its own rate limit: topics/threads.mdx, topics/rate-limits.mdx); return their ids
        and whether they are threads. A guild at its cap of active threads gets channel
        shards instead (the threads made so far are deleted)."""
        parent = await self._layout.create_channel(shard_channel_name(schema.name, 0))
        # What this process made is storage, whenever the gateway gets to announce it.
        self._confirmed_channels.add(parent)
        threads: list[int] = []
        try:
            for index in range(1, schema.shards):
                name = shard_channel_name(schema.name, index)
                threads.append(await self.transport.create_thread(parent, name))
                self._confirmed_threads[threads[-1]] = parent
        except ActiveThreadLimitError as error:
            log.warning(
                "table %s: %s; its shards are channels instead of threads", schema.name, error
            )
            await self._delete_shards(threads)
            others = [
                await self._layout.create_channel(shard_channel_name(schema.name, i))
                for i in range(1, schema.shards)
            ]
            self._confirmed_channels.update(others)
            return [parent, *others], False
        return [parent, *threads], bool(threads)

    async def _delete_shards(self, channels: list[int]) -> None:
        """Delete shard channels and threads, threads (listed after their channel) first."""
        for channel_id in reversed(channels):
            await self._layout.delete(channel_id)

    async def _open_class_table(self, name: str, cls: type[Table]) -> None:
        assert self._catalog is not None
        declared = schema_of(cls)
        if self.transport.keys:  # schema_of checked the plain event; sealed, it is longer
            check_catalog_fits(declared, self.transport.keys)
        stored = self._catalog.tables.get(name)
        if stored is None and name in self._catalog.unusable:
            raise TableShardsMissingError(name, self._catalog.unusable[name])
        if stored is None:
            stored, ours = await self._create_in_guild(declared)
            if stored is None:
                raise TableNotFoundError(name)  # dropped by another process meanwhile
            if ours:
                await self._attach(stored, cls, new=True)
                return
        if not declared.shards_chosen:  # the default: the table keeps the count it has
            declared.shards = stored.shards
        if declared.shards != stored.shards:
            raise SchemaMismatchError(
                name,
                f"shards changed from {stored.shards} to {declared.shards}; the class cannot "
                f"change them: leave Settings.shards out or set it to {stored.shards}, and grow "
                f"the table with `await db.reshard({name!r}, shards=...)`",
            )
        if declared.primary_key != stored.primary_key:
            raise SchemaMismatchError(
                name,
                f"the primary key changed from {stored.primary_key!r} to "
                f"{declared.primary_key!r}; a table's key cannot change: keep "
                f"primary_key = {stored.primary_key!r}, or create a new table with the new key "
                "and copy the records into it",
            )
        if "claim_unique" not in settings_of(cls):  # no opinion: the stored value holds
            declared.claim_unique = stored.claim_unique
        declared.channels, declared.threads = stored.channels, stored.threads
        declared.resharding = stored.resharding
        engine = await self._attach(declared, cls, publish=False)
        # Stored records that the class refuses (a new field, or stricter validators of the
        # same shape) would be invisible here: refuse the class instead.
        invalid = engine.state.undecodable
        if invalid:
            await engine.close()
            self._detach(name)
            detail = next(
                p.detail for p in engine.state.problems if p.kind is ProblemKind.INVALID_RECORD
            )
            raise SchemaMismatchError(
                name,
                f"{len(invalid)} stored records do not fit the class {cls.__name__} "
                f"({detail}); loosen the class or migrate the records",
            )
        if not declared.same_shape(stored):
            repeated = _repeated_unique(engine, stored, declared)
            if repeated is not None:
                await engine.close()
                self._detach(name)
                raise SchemaMismatchError(name, repeated)
            await self._catalog.append("alter", declared)
        cls.__discobase_engine__ = engine

    async def _attach(
        self,
        schema: TableSchema,
        cls: type[Table] | None,
        *,
        new: bool = False,
        publish: bool = True,
    ) -> TableEngine:
        """Make the table's engine and load it. The class gets the engine only once it is
        loaded (with ``publish``): until then its verbs raise :class:`NotConnectedError`."""
        if cls is None:
            cls = runtime_class(schema)
        cls.__discobase_name__ = schema.name
        cls.__discobase_database__ = self
        cls.__discobase_engine__ = None
        engine = self._engine_for(schema, cls, self.compaction)
        entry = self._registry.get(schema.name)
        if entry is None or entry.cls is not cls:
            entry = self._registry[schema.name] = _Entry(cls, declared=False)
        entry.engine = engine
        if not new:  # a table this process just created has nothing to read
            await engine.load()
        if publish:
            cls.__discobase_engine__ = engine
        return engine

    def _engine_for(
        self, schema: TableSchema, cls: type[Table], compaction: Compaction | None
    ) -> TableEngine:
        return TableEngine(
            schema,
            self.transport,
            self.size_limit,
            cls._decode,
            cls._encode,
            compaction=compaction,
            clock=self._clock,
            fields=list(cls.model_fields),
            decode_many=cls._decode_many,
        )

    def _detach(self, name: str) -> None:
        """The table is closed here: its class is detached; a class ``@db.table`` declared
        stays registered, a generated one is forgotten."""
        entry = self._registry.get(name)
        if entry is None:
            return
        entry.cls.__discobase_engine__ = None
        entry.engine = None
        if not entry.declared:
            del self._registry[name]

    async def create_table(
        self,
        name: str,
        fields: Mapping[str, Any],
        *,
        primary_key: str | None = None,
        indexes: list[str] | tuple[str, ...] = (),
        unique: list[str] | tuple[str, ...] = (),
        shards: int = DEFAULT_SHARDS,
        ttl: datetime.timedelta | None = None,
        claim_unique: bool = False,
    ) -> type[Table]:
        """Create a table without a Python class; return its (generated) Table class.

        ``fields`` maps names to a type (``str``, ``int | None``), a type name (``"int"``,
        ``"datetime?"`` for optional; see ``TYPE_NAMES``), or ``(type, default)``; ``ttl`` and
        ``claim_unique`` as in ``Settings``; ``shards`` as ``Settings.shards`` (6: the table's
        channel and five private threads of it). Raises
        :class:`TableExistsError` or :class:`SchemaError`.
        """
        catalog = self._require_open()
        check_name(name)
        if name == CATALOG_CHANNEL:
            raise SchemaError("'catalog' is reserved: pick another table name")
        if name in catalog.tables or self._declared(name) is not None:
            raise TableExistsError(name)
        if not isinstance(fields, Mapping):
            raise SchemaError("fields must map field names to types")
        schema = TableSchema(
            name,
            [field_spec(name, fname, spec) for fname, spec in fields.items()],
            primary_key,
            list(indexes),
            list(unique),
            shards,
            ttl=ttl_seconds(name, ttl),
            claim_unique=claim_unique,
        ).validate()
        check_new_field_names(name, schema.field_names, TABLE_ATTRIBUTES)
        runtime_class(schema)  # defaults must fit their types before anything is written
        check_catalog_fits(schema, self.transport.keys)
        async with self._schema_lock:
            if name in catalog.tables:
                raise TableExistsError(name)
            settled, ours = await self._create_in_guild(schema)
            if settled is None or not (ours or settled.same_shape(schema)):
                raise TableExistsError(name)  # another process made it at once, differently
            if name not in self._engines():
                await self._attach(settled, None, new=ours)
        return self._registry[name].cls

    def schema(self, name: str) -> TableSchema:
        """The table's schema, with its current ``record_count``, bound to the table's class
        (``schema.json_schema()`` is the JSON Schema of one record)."""
        self._require_open()
        engine = self._engine(name)
        engine.expire()
        schema = TableSchema.from_dict(engine.schema.to_dict())
        schema.record_count = len(engine.state.records)
        schema.model = self._registry[name].cls
        return schema

    def _engine(self, name: str) -> TableEngine:
        entry = self._registry.get(name)
        if entry is None or entry.engine is None:
            raise TableNotFoundError(name)
        return entry.engine

    async def drop_table(self, name: str) -> None:
        """Delete the table and its records (its channels are deleted too)."""
        catalog = self._require_open()
        async with self._schema_lock:
            engine = self._engine(name)
            await engine.close()
            await catalog.append("drop", engine.schema)
            self._detach(name)
            self._registry.pop(name, None)  # a declared class too: @db.table may declare it anew
            # Never a channel outside the storage category, whatever the catalog says (the
            # fold checked that a table's threads are threads of its channel).
            if engine.schema.threads and engine.schema.channels[0] in self._storage_channel_ids():
                await self._delete_shards(engine.schema.channels)
                return
            storage = self._storage_channel_ids()
            for channel_id in engine.schema.channels:
                if channel_id in storage:
                    await self.transport.delete_channel(channel_id)

    async def reshard(self, name: str, shards: int) -> bool:
        """Grow the table to ``shards`` shards: a multiple of its count, at most 16 (1 to 2,
        3, ... 16; 6 to 12). Each shard is about one awaited write per second, so a table
        made with one shard (or by discobase 1.0) writes about ``shards`` times as fast after.
        Returns True once the table has grown (or a reshard to ``shards`` that had stopped
        midway is finished), False when it has ``shards`` shards already: nothing to do, and
        nothing is read or written.

        The new shards are private threads of the table's channel (a table whose shards are
        channels gets channels). The records that now belong to them are moved there (a
        compaction of the old shards); the table stays readable and writable throughout,
        and every other open process follows (:mod:`discobase.engine.reshard`). A crash or
        an error midway loses nothing: the table then reads whole, and running the same
        reshard again finishes it. Raises :class:`TableNotFoundError`, :class:`SchemaError`
        (fewer shards, not a multiple, more than 16, another reshard of the table under way
        or made meanwhile, or another process compacted an old shard since this one loaded
        it: reopen and run it again), :class:`ActiveThreadLimitError` and
        :class:`MissingPermissionsError` (the thread permissions on the table's channel;
        nothing changed)."""
        catalog = self._require_open()
        async with self._schema_lock:
            engine = self._engine(name)
            schema = engine.schema
            if schema.resharding is None:
                check_growth(schema, shards)
                if shards == schema.shards:
                    log.info("table %s: %d shards already; nothing to do", name, shards)
                    return False
                await self._start_reshard(catalog, engine, shards)
            elif shards != schema.shards:
                raise SchemaError(
                    f"table {name!r} is growing from {schema.resharding} to {schema.shards} "
                    f"shards: run reshard({name!r}, shards={schema.shards}) to finish that first"
                )
            # A reshard another process wrote at about the same time can have a lower id and
            # reach the catalog after our first read (ids are only k-sorted): read it again
            # before the move deletes anything.
            await catalog.load()
            await self._confirm_unknown_channels(catalog)
            current = catalog.tables.get(name)
            if current is None or current.channels != schema.channels:
                if current is not None:
                    await self._join_winner(current, engine)
                raise SchemaError(f"table {name!r} was dropped or resharded by another process")
        # The move: compacting each old shard sends its records of the new shards there first.
        await engine.compact()
        skipped = engine.foreign_snapshots(below=schema.resharding or schema.shards)
        if skipped:
            # Its snapshot (another process's) still holds the records just moved: the move
            # is done only once this process has written its own, after a reopen.
            raise SchemaError(
                f"table {name!r}: another process compacted shards {skipped} since this one "
                f"loaded them; reopen the database and run reshard({name!r}, shards={shards}) "
                "again to finish (the table is whole meanwhile)"
            )
        async with self._schema_lock:
            current = catalog.tables.get(name)
            if current is None or current.channels != schema.channels:
                raise SchemaError(f"table {name!r} was dropped or resharded meanwhile")
            if current.resharding is not None:
                await catalog.append("reshard", dataclasses.replace(current, resharding=None))
            await engine.follow_layout(catalog.tables[name])
        log.info("table %s: now %d shards", name, shards)
        return True

    async def _start_reshard(self, catalog: Catalog, engine: TableEngine, shards: int) -> None:
        """Make the new shards and write the ``reshard`` that starts the move; every process
        (this one included) writes with the new shard count from then on."""
        schema = engine.schema
        parent = schema.channels[0]
        threads = schema.threads or schema.shards == 1
        if threads:
            # Checked before anything is made: without them the moves would fail after the
            # reshard is recorded, and every open would then refuse the database.
            channel = next((c for c in self.transport.cached_channels() if c.id == parent), None)
            if channel is not None and (missing := missing_own(channel, threads=True)):
                raise MissingPermissionsError(
                    self.guild_id, [f"{name} in #{channel.name}" for name in missing]
                )
        unused = await self._unused_threads(schema) if threads else {}
        added: list[int] = []
        created: list[int] = []
        try:
            for index in range(schema.shards, shards):
                shard_name = shard_channel_name(schema.name, index)
                if shard_name in unused:
                    added.append(unused[shard_name])  # a reshard that stopped made it
                elif threads:
                    created.append(await self.transport.create_thread(parent, shard_name))
                    added.append(created[-1])
                else:
                    created.append(await self._layout.create_channel(shard_name))
                    added.append(created[-1])
                if threads:
                    self._confirmed_threads[added[-1]] = parent
                else:
                    self._confirmed_channels.add(added[-1])
        except ActiveThreadLimitError:
            await self._delete_made(catalog, created)
            raise
        grown = dataclasses.replace(
            schema,
            shards=shards,
            channels=[*schema.channels, *added],
            threads=threads,
            resharding=schema.shards,
        )
        # A reshard that fails here may have been written: its threads are left in place.
        await catalog.append("reshard", grown)
        await catalog.load()
        await self._confirm_unknown_channels(catalog)
        settled = catalog.tables.get(schema.name)
        if settled is None or settled.channels != grown.channels:
            if settled is None:
                await self._delete_made(catalog, created)
            else:
                # Processes that followed our reshard meanwhile wrote into our shards: move
                # those writes into the winner's, then delete ours.
                await engine.follow_layout(settled)
                await self._fold_lost_create(grown, engine)
            raise SchemaError(
                f"table {schema.name!r} was dropped or resharded by another process meanwhile"
            )
        await engine.follow_layout(settled)

    async def _unused_threads(self, schema: TableSchema) -> dict[str, int]:
        """The threads of the table's channel that bear its new shards' names and that no
        table uses, by name: what a reshard that stopped before its catalog event made (or
        one under way in another process: both then name the same threads)."""
        assert self._catalog is not None
        used = {c for table in self._catalog.tables.values() for c in table.channels}
        names = {shard_channel_name(schema.name, i) for i in range(schema.shards, MAX_SHARDS)}
        return {
            thread.name: thread.id
            for thread in sorted(
                await self.transport.list_threads(schema.channels[0]), key=lambda t: t.id
            )
            if thread.name in names and thread.id not in used
        }

    async def _delete_made(self, catalog: Catalog, made: list[int]) -> None:
        """Delete shards this reshard made that no table uses after all (read the catalog
        again first: another process's reshard may have taken them up)."""
        await catalog.load()
        used = {c for table in catalog.tables.values() for c in table.channels}
        await self._delete_shards([c for c in made if c not in used])

    async def compact(self, name: str | None = None) -> int:
        """Snapshot the table (all tables with no name) now; return old messages deleted."""
        self._require_open()
        names = [name] if name is not None else list(self._engines())
        return sum([await self._engine(n).compact() for n in names])

    async def flush(self) -> None:
        """Wait until every queued write has been sent."""
        for engine in self._engines().values():
            await engine.flush()

    @property
    def metrics(self) -> dict[str, int]:
        """REST calls made by this database, by route."""
        return dict(self.transport.calls)

    # -- consistency ------------------------------------------------------------------------

    def _on_message(self, message: StoredMessage) -> None:
        if self._early is not None:
            self._early.append(message)
            return
        catalog = self._catalog
        if catalog is None:
            return
        if message.channel_id in catalog.channel_ids:
            if catalog.ingest(message) or self._unconfirmed(catalog):
                self._follow_choices()  # before any later read, not behind the schema lock
                self._background.spawn(self._follow_catalog())
            return
        for entry in self._registry.values():
            engine = entry.engine
            if engine is not None and engine.owns(message.channel_id):
                engine.spawn_ingest(message)
                return
        channel = self.bot.get_channel(message.channel_id)
        if getattr(channel, "name", None) == CATALOG_CHANNEL and (
            message.channel_id in self._catalog_channels()
        ):
            catalog.add_channel(message.channel_id)
            self._background.spawn(self.sync())

    async def _on_reconnect(self) -> None:
        """Catch up after a fresh gateway session; raises when that failed (the transport
        then catches up at the session's next signal)."""
        if self.is_open:
            await self._background.spawn(self.sync())
        elif self._early is not None:
            # A fresh session while opening: what the reads had already passed and the lost
            # session missed is caught up once open.
            self._sync_when_open = True

    async def _follow_catalog(self) -> None:
        """Attach tables another process created; detach ones it dropped (a table dropped and
        created again has other channels: its engine is replaced)."""
        assert self._catalog is not None
        async with self._schema_lock:
            await self._confirm_unknown_channels(self._catalog)
            tables = self._catalog.tables
            for name, engine in self._engines().items():
                current = tables.get(name)
                if current is not None and current.channels == engine.schema.channels:
                    if current.resharding != engine.schema.resharding:
                        await engine.follow_layout(current)  # a reshard ended
                    continue
                if current is not None and _grew(engine.schema, current):
                    await engine.follow_layout(current)  # another process resharded it
                    continue
                own = self._own_creates.pop(name, None)
                winner = self._catalog.created_by.get(name)
                if current is not None and own is not None and winner is not None and winner < own:
                    await self._join_winner(current, engine)
                    continue
                await engine.close()
                self._detach(name)
            self._follow_choices()
            for name, schema in list(self._catalog.tables.items()):
                if name not in self._engines():
                    await self._attach(schema, self._declared(name))

    def _follow_choices(self) -> None:
        """Follow the catalog's ``claim_unique`` and ``ttl`` in the tables attached to the
        channels it names, at once: claims work only if every writer makes them, and a record
        expires for all or none."""
        assert self._catalog is not None
        tables = self._catalog.tables
        for name, engine in self._engines().items():
            current = tables.get(name)
            if current is None or current.channels != engine.schema.channels:
                continue
            engine.schema.claim_unique = current.claim_unique
            if current.ttl != engine.schema.ttl:
                engine.follow_ttl(current.ttl)
                if engine.forgot_live:
                    log.warning(
                        "table %s: its ttl grew after this process forgot records under the "
                        "shorter one; it compacts the table once reopened",
                        name,
                    )

    async def _join_winner(self, schema: TableSchema, lost: TableEngine) -> None:
        """Another process created the same table at once and its ``create`` (a lower id,
        which reached us late) won: switch to the winner's channels, move what this process
        wrote into them (last writer wins by message id, as within one table), then delete
        ours. The table's class stays usable throughout."""
        log.warning("table %s: another process created it first; moving our writes", schema.name)
        entry = self._registry[schema.name]
        cls = entry.cls
        engine = self._engine_for(schema, cls, self.compaction)
        await engine.load()
        entry.engine = engine
        cls.__discobase_engine__ = engine
        await lost.close()
        await engine.write(_newer_writes(lost, engine.state.versions, engine.state.records))
        await self._delete_shards([c for c in lost.schema.channels if c not in schema.channels])

    async def rotate_key(self) -> KeyRotation:
        """Seal every storage message under the first encryption key, in place (unencrypted
        ones too). Messages keep their ids; a crash midway leaves each under the old or the new
        key, both of which this database holds, and running it again finishes the work.

        Give every other process of the database the new key first (new key first, old after
        it), so that nothing is written under the old key meanwhile. Raises
        :class:`InvalidKeyError` without a key, and the key errors for a message sealed under a
        key this database was not given."""
        self._require_open()
        await self.flush()
        channels = sorted(await self._layout.read_channels())
        threads = sorted(await self._layout.read_threads())
        return await self.transport.rotate([*channels, *threads])

    async def _fold_lost_create(self, lost: TableSchema, winner: TableEngine) -> None:
        """A ``create`` that lost a race to the table's first one, whose channels are still
        there: the process that made it may have written to them and exited before it learnt
        it lost. Move those writes into the table (last writer wins by message id, against
        the table's versions before the move), then delete the channels. Records that do not
        fit the table's class stay where they are (``check()`` reports the channels)."""
        extra = [c for c in lost.channels if c not in winner.schema.channels]
        storage = self._storage_channel_ids()
        if lost.threads and extra:
            unknown = [t for t in lost.channels[1:] if t not in self._thread_parents()]
            if unknown:
                await self._confirm_threads(unknown)
            parents = self._thread_parents()
            storage |= {t for t in lost.channels[1:] if parents.get(t) == lost.channels[0]}
        if not extra or not set(lost.channels) <= storage:
            return  # deleted already (by the process that lost, or an earlier open)
        cls = self._registry[lost.name].cls
        scratch = self._engine_for(lost, cls, None)
        try:
            await scratch.load()
            if scratch.state.undecodable:
                log.warning(
                    "table %s: channels %s of a create that lost a race hold records the "
                    "table's class does not accept; left in place",
                    lost.name,
                    extra,
                )
                return
            before = dict(winner.state.versions)
            read = dict(scratch.state.versions)
            await winner.write(_newer_writes(scratch, before, winner.state.records))
            # A process still writing there (it has not learnt yet) may have added some.
            await scratch.catch_up()
            since = {k: v for k, v in scratch.state.versions.items() if read.get(k) != v}
            await winner.write(
                _newer_writes(scratch, before, winner.state.records, only=since.keys())
            )
        finally:
            await scratch.close()
        log.warning(
            "table %s: moved the writes of a create that lost a race into the table", lost.name
        )
        await self._delete_shards(extra)

    async def sync(self) -> dict[str, str]:
        """Catch up with writes made by other processes (e.g. after a gateway reconnect).

        A table one of whose shards this catch-up finds deleted is left out, as the gateway's
        delete event would leave it out (``unusable_tables``), and every other table is still
        caught up. Returns those tables, name -> what is missing (empty: every table caught
        up)."""
        catalog = self._require_open()
        for channel_id in self._catalog_channels():
            catalog.add_channel(channel_id)
        # The catalog is small: read it whole, so an event that reached Discord late (a lower
        # id than one already seen) is not missed.
        before = {name: schema.to_dict() for name, schema in catalog.tables.items()}
        await catalog.load()
        after = {name: schema.to_dict() for name, schema in catalog.tables.items()}
        # A table can be left out only for channels not confirmed yet (its threads archived
        # while this process was disconnected): following confirms them by id and attaches it.
        if before != after or self._unconfirmed(catalog):
            await self._follow_catalog()
        missing: dict[str, str] = {}
        for name, engine in self._engines().items():
            try:
                await engine.catch_up()
            except TableShardsMissingError as error:
                log.warning("table %s: left out: %s", name, error.detail)
                missing[name] = error.detail
        return missing

    async def _listed_storage(self) -> list[StoredChannel]:
        """The storage text channels, read by REST (with their overwrites)."""
        listed = await self.transport.list_channels()
        categories = {c.id for c in self._layout.categories(listed)}
        return [c for c in listed if c.kind == "text" and c.category_id in categories]

    async def reset_permissions(self) -> list[int]:
        """Give each storage channel that ``check()`` reports as ``channel-access`` the
        permission overwrites discobase gives the channels it makes: hidden from
        ``@everyone``, what storage needs for the bot, read only for ``admin_role``; every
        other overwrite of the channel is removed. Returns the ids of the channels changed.
        The bot needs Manage Roles (it has it: opening checks it) and to see the channel."""
        self._require_open()
        changed = []
        for channel in await self._listed_storage():
            if missing_own(channel) or exposure(channel, self.admin_role):
                log.warning(
                    "storage channel #%s: resetting its permission overwrites", channel.name
                )
                await self.transport.hide_channel(channel.id)
                changed.append(channel.id)
        return changed

    async def check(self) -> CheckReport:
        """Re-read all storage and report what discobase skips; changes nothing."""
        catalog = self._require_open()
        # Storage as Discord has it now, read by REST (the gateway may not have told of a
        # channel or thread deleted meanwhile): the fresh fold is checked against it.
        listed = set(await self._layout.read_channels())
        threads = await self._layout.read_threads()
        parents = {t: parent for t, (parent, _) in threads.items()}
        self._confirmed_threads = dict(parents)
        fresh = Catalog(
            self.transport,
            catalog.channel_ids,
            storage_channels=lambda: listed,
            thread_parents=lambda: parents,
            check_schema=runtime_class,
        )
        await fresh.load()
        report = CheckReport(problems=list(fresh.problems))
        assert self.guild_id is not None
        self.transport.bind(self.guild_id, self.admin_role)
        known = {*catalog.channel_ids} | {c for s in fresh.tables.values() for c in s.channels}
        for channel_id, channel_name in self._layout.channels().items():
            if channel_id not in known:
                report.problems.append(
                    Problem(
                        None,
                        channel_id,
                        None,
                        ProblemKind.ORPHAN_CHANNEL,
                        f"#{channel_name} is in the storage category but no table uses it",
                    )
                )
        tables = {c: name for name, schema in fresh.tables.items() for c in schema.channels}
        with_threads = {threads[c][0] for c in tables if c in threads}
        for channel in await self._listed_storage():
            missing = missing_own(channel, threads=channel.id in with_threads)
            problems = [f"the bot lacks {name}" for name in missing]
            for detail in [*problems, *exposure(channel, self.admin_role)]:
                report.problems.append(
                    Problem(
                        tables.get(channel.id),
                        channel.id,
                        None,
                        ProblemKind.CHANNEL_ACCESS,
                        f"#{channel.name}: {detail}",
                    )
                )
        for thread_id, (parent, thread_name) in threads.items():
            if thread_id not in known:
                report.problems.append(
                    Problem(
                        None,
                        thread_id,
                        None,
                        ProblemKind.ORPHAN_CHANNEL,
                        f"thread {thread_name!r} of storage channel {parent} is used by no table",
                    )
                )
        for name, schema in fresh.tables.items():
            entry = self._registry.get(name)
            cls = entry.cls if entry is not None else runtime_class(schema)
            scratch = self._engine_for(schema, cls, None)
            try:
                await scratch.load()
            except TableShardsMissingError as error:  # deleted since the listing above
                report.problems.append(
                    Problem(name, None, None, ProblemKind.FOREIGN_CHANNEL, error.detail)
                )
                continue
            report.problems.extend(scratch.state.problems)
            report.tables[name] = len(scratch.state.records)
        return report


def _newer_writes(
    source: TableEngine,
    versions: Mapping[Any, int],
    present: Container[Any],
    only: Collection[Any] | None = None,
) -> list[Write]:
    """The writes that bring ``source``'s keys (those in ``only``, when given) to a table
    whose keys have ``versions``, where ``source``'s are newer: its records, and deletes of
    keys the table holds (``present``). Records it cannot decode are left out."""
    state = source.state
    writes = []
    for key, version in state.versions.items():
        if version <= versions.get(key, 0) or (only is not None and key not in only):
            continue
        record = state.records.get(key)
        if record is not None:
            writes.append(Write(key, record, source.encode(record)))
        elif key in present and key not in state.undecodable:
            writes.append(Write(key))
    return writes


def _grew(engine: TableSchema, stored: TableSchema) -> bool:
    """Whether the catalog's table is the engine's with shards added (a reshard)."""
    count = len(engine.channels)
    return len(stored.channels) > count and stored.channels[:count] == engine.channels


def _repeated_unique(engine: TableEngine, stored: TableSchema, declared: TableSchema) -> str | None:
    """Why a field newly declared unique cannot be: stored records repeat its values."""
    for name in declared.unique:
        if name in stored.unique:
            continue
        taken = engine.state.repeated_values(name)
        if taken:
            value, keys = taken[0]
            return (
                f"{name} cannot become unique: {len(taken)} values repeat, e.g. {name}={value!r} "
                f"in the records with keys {', '.join(map(repr, sorted(keys, key=str)[:3]))}; "
                "make them distinct first"
            )
    return None
