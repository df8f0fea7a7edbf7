"""Read ROS 1 ``.bag``, ROS 2 sqlite3 and MCAP bags without ROS (``rosbags.highlevel.AnyReader``).

Accepted paths: a ROS 1 ``.bag`` file; a directory of ROS 1 ``.bag`` files (read as one); a ROS 2
bag directory (``metadata.yaml`` + ``.db3``/``.mcap``); a bare ``.db3`` or ``.mcap`` file. Messages
whose bag carries no definitions are decoded with the ROS 2 Humble typestore. Type names are
normalised to ``pkg/msg/Type`` for ROS 1 bags too; ROS 1 messages keep their field names (e.g.
CameraInfo ``K``/``D``) — the converters in :mod:`nerf_loc_ros.conversions` accept both.
Topic names are matched with or without a leading ``/`` (some ROS 1 bags record relative names).
Receive times are the bag's log times (int ns); sensor time is in the message headers.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

from ..datasets.posed_images import DatasetError
from .tf_buffer import TransformBuffer

__all__ = ["BagError", "BagMessage", "BagReader", "bag_info", "iter_messages", "load_tf_buffer", "resolve_bag_paths"]

log = logging.getLogger(__name__)

TF_TOPICS = ("/tf", "/tf_static")


class BagError(DatasetError):
    """A bag is missing, unreadable, or lacks a requested topic; the message names the bag."""


class BagMessage(NamedTuple):
    """One decoded message: topic (as recorded), normalised type, receive (log) time in ns, message."""

    topic: str
    msgtype: str
    recv_ns: int
    msg: Any


def _norm_topic(topic: str) -> str:
    return "/" + str(topic).strip().lstrip("/")


def resolve_bag_paths(path: str | Path) -> tuple[list[Path], str]:
    """Paths to hand to ``AnyReader`` and the storage kind (``rosbag1``, ``sqlite3`` or ``mcap``)."""
    p = Path(path)
    if not p.exists():
        raise BagError(f"bag '{p}' does not exist")
    if p.is_file():
        kind = {".bag": "rosbag1", ".db3": "sqlite3", ".mcap": "mcap"}.get(p.suffix.lower())
        if kind is None:
            raise BagError(f"'{p}' is not a bag: expected a .bag, .db3 or .mcap file or a rosbag2 directory")
        return [p], kind
    if (p / "metadata.yaml").exists():
        files = {f.suffix.lower() for f in p.iterdir()}
        kind = "mcap" if ".mcap" in files else "sqlite3" if ".db3" in files else "unknown"
        return [p], kind
    ros1 = sorted(p.glob("*.bag"))
    if ros1:
        return ros1, "rosbag1"
    single = sorted(list(p.glob("*.db3")) + list(p.glob("*.mcap")))
    if len(single) == 1:
        return single, "sqlite3" if single[0].suffix == ".db3" else "mcap"
    raise BagError(f"directory '{p}' holds no metadata.yaml, no .bag files and not exactly one .db3/.mcap file")


class BagReader:
    """Context manager over one bag (any storage): ``with BagReader(path) as bag: ...``.

    Attributes after opening: ``storage`` (``rosbag1``/``sqlite3``/``mcap``), ``topics`` (topic ->
    ``(msgtype, count)``), ``start_ns``, ``end_ns``, ``duration_ns``, ``message_count``.
    """

    def __init__(self, path: str | Path, typestore: Any = None) -> None:
        self.path = Path(path)
        self.paths, self.storage = resolve_bag_paths(self.path)
        self._typestore = typestore
        self._reader: Any = None

    def __enter__(self) -> "BagReader":
        from rosbags.highlevel import AnyReader, AnyReaderError
        from rosbags.typesys import Stores, get_typestore

        ts = self._typestore if self._typestore is not None else get_typestore(Stores.ROS2_HUMBLE)
        try:
            self._reader = AnyReader(self.paths, default_typestore=ts)
            self._reader.open()
        except (AnyReaderError, OSError, KeyError, ValueError) as exc:
            self._reader = None
            raise BagError(f"cannot open bag '{self.path}': {exc}") from exc
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @property
    def reader(self) -> Any:
        """The open ``rosbags.highlevel.AnyReader``."""
        if self._reader is None:
            raise BagError(f"bag '{self.path}' is not open (use 'with BagReader(path) as bag:')")
        return self._reader

    @property
    def topics(self) -> dict[str, tuple[str, int]]:
        """Topic (as recorded) -> ``(msgtype, message count)``."""
        return {name: (info.msgtype or "?", int(info.msgcount)) for name, info in self.reader.topics.items()}

    @property
    def start_ns(self) -> int:
        """Receive time of the first message (ns)."""
        return int(self.reader.start_time) if self.reader.message_count else 0

    @property
    def end_ns(self) -> int:
        """Receive time of the last message (rosbags' ``end_time`` is one past it)."""
        return int(self.reader.end_time) - 1 if self.reader.message_count else 0

    @property
    def duration_ns(self) -> int:
        """Last minus first receive time (ns), as ``ros2 bag info`` reports it."""
        return self.end_ns - self.start_ns

    @property
    def message_count(self) -> int:
        """Number of messages in the bag."""
        return int(self.reader.message_count)

    def resolve_topic(self, topic: str) -> str | None:
        """The recorded name of ``topic`` (matching with or without leading ``/``), or None."""
        want = _norm_topic(topic)
        return next((t for t in self.topics if _norm_topic(t) == want), None)

    def topics_of_type(self, msgtype: str) -> list[str]:
        """Recorded topics whose type is ``msgtype`` (``pkg/msg/Type`` or ``pkg/Type``)."""
        from ..conversions import normalize_msgtype

        want = normalize_msgtype(msgtype)
        return sorted(t for t, (mt, _) in self.topics.items() if mt == want)

    def messages(
        self,
        topics: Sequence[str] | None = None,
        start_ns: int | None = None,
        stop_ns: int | None = None,
        missing_ok: bool = False,
    ) -> Iterator[BagMessage]:
        """Decoded messages of ``topics`` (all when None) in bag (receive-time) order.

        Unknown topics raise :class:`BagError` listing what the bag has, unless ``missing_ok``.
        ``start_ns``/``stop_ns``: receive-time window ``[start, stop)``.
        """
        reader = self.reader
        wanted: set[str] | None = None
        if topics is not None:
            wanted = set()
            for t in topics:
                rec = self.resolve_topic(t)
                if rec is None:
                    if missing_ok:
                        continue
                    raise BagError(f"bag '{self.path}' has no topic '{t}'; topics: {sorted(self.topics)}")
                wanted.add(rec)
            if not wanted:
                return
        conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
        for conn, recv_ns, raw in reader.messages(connections=conns, start=start_ns, stop=stop_ns):
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except Exception as exc:  # rosbags raises several types; name the message
                raise BagError(
                    f"bag '{self.path}': cannot decode {conn.msgtype} on '{conn.topic}' at {recv_ns}: {exc}"
                ) from exc
            yield BagMessage(conn.topic, conn.msgtype, int(recv_ns), msg)

    def info(self) -> dict:
        """Summary dict (see :func:`bag_info`)."""
        return {
            "path": str(self.path),
            "storage": self.storage,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "duration_ns": self.duration_ns,
            "duration_s": self.duration_ns / 1e9,
            "message_count": self.message_count,
            "topics": {t: {"type": mt, "count": n} for t, (mt, n) in sorted(self.topics.items())},
        }


def bag_info(path: str | Path) -> dict:
    """Summary of a bag: ``path``, ``storage`` (rosbag1/sqlite3/mcap), ``start_ns``, ``end_ns``,
    ``duration_ns``, ``duration_s`` (receive times), ``message_count`` and
    ``topics`` -> ``{topic: {"type": "pkg/msg/Type", "count": n}}``."""
    with BagReader(path) as bag:
        return bag.info()


def iter_messages(
    path: str | Path, topics: Sequence[str] | None = None, start_ns: int | None = None, stop_ns: int | None = None
) -> Iterator[BagMessage]:
    """Decoded :class:`BagMessage` s of ``topics`` (all when None) in bag order, receive times in ns."""
    with BagReader(path) as bag:
        yield from bag.messages(topics, start_ns, stop_ns)


def load_tf_buffer(
    path: str | Path | None = None,
    messages: Iterable[BagMessage] | None = None,
    tf_topics: Sequence[str] = TF_TOPICS,
    **buffer_kwargs: Any,
) -> TransformBuffer:
    """A :class:`TransformBuffer` with every transform of ``tf_topics`` of a bag (or of ``messages``).

    Transforms on a topic ending in ``tf_static`` are static; the rest are dynamic, keyed by their
    header stamps. Missing TF topics give an empty buffer.
    """
    buf = TransformBuffer(**buffer_kwargs)
    if messages is None:
        if path is None:
            raise ValueError("load_tf_buffer needs a bag path or messages")
        with BagReader(path) as bag:
            msgs = bag.messages(tf_topics, missing_ok=True)
            return load_tf_buffer(messages=msgs, tf_topics=tf_topics, **buffer_kwargs)
    want = {_norm_topic(t) for t in tf_topics}
    n = 0
    for m in messages:
        if _norm_topic(m.topic) in want and hasattr(m.msg, "transforms"):
            n += buf.add_tf_message(m.msg, static=_norm_topic(m.topic).endswith("tf_static"))
    log.debug("loaded %d transforms into the TF buffer:\n%s", n, buf.describe())
    return buf
