"""Reading finished recordings: summary, metadata, decoded messages and a fast per-topic index.

`RecordingReader.index()` gets every message's log time from the MCAP message indexes (no
decompression) and, if asked, its sequence and publish time by decompressing each chunk once and
reading those fields in place, so a 10-minute recording is indexed in seconds.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mcap.decoder import DecoderFactory as McapDecoderFactory
from mcap.reader import SeekingReader, make_reader
from mcap.records import Channel, Schema
from mcap.summary import Summary
from mcap_protobuf.decoder import DecoderFactory as ProtobufDecoderFactory

from robot_formats.recording.errors import RecordingError
from robot_formats.recording.scan import CHUNK_HEAD, RECORD_HEAD, ChunkError, decompress

_MSG_SEQ_AT = 9 + 2  # record head, channel id
_MSG_PUB_AT = 9 + 2 + 4 + 8  # … sequence, log time


class JsonDecoderFactory(McapDecoderFactory):
    """Decodes "json" messages into plain Python objects."""

    def decoder_for(self, message_encoding: str, schema: Schema | None) -> Callable[[bytes], Any] | None:
        if message_encoding != "json":
            return None
        return lambda data: json.loads(data)


@dataclass
class TopicIndex:
    """Per-topic message times and counters, in file (write) order.

    Attributes:
        log_ns: (n,) int64 log times, ns.
        publish_ns: (n,) int64 publish times, ns (empty if sequences were not read).
        sequence: (n,) int64 sequence numbers (empty if not read).
    """

    topic: str
    schema: str
    encoding: str
    log_ns: np.ndarray
    publish_ns: np.ndarray
    sequence: np.ndarray

    @property
    def count(self) -> int:
        return int(self.log_ns.size)


class RecordingReader:
    """A finished (summary-bearing) MCAP recording, opened for reading.

    Raises:
        RecordingError: the file is missing, not an MCAP file, or has no summary (e.g. a crash
            leftover: run `teleop-replay recover` on it first).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self._f = open(self.path, "rb")
        except OSError as exc:
            raise RecordingError(f"cannot open recording {self.path}: {exc}") from exc
        try:
            self._reader = make_reader(self._f, decoder_factories=[ProtobufDecoderFactory(), JsonDecoderFactory()])
            assert isinstance(self._reader, SeekingReader)
            summary = self._reader.get_summary()
        except Exception as exc:  # the mcap library raises many types on truncated files
            self._f.close()
            raise RecordingError(
                f"{self.path} is not a finished MCAP recording ({exc.__class__.__name__}: {exc}); "
                f"if it was cut short, run `teleop-replay recover {self.path}`"
            ) from None
        if summary is None or summary.statistics is None:
            self._f.close()
            raise RecordingError(f"{self.path} has no summary section; run `teleop-replay recover {self.path}`")
        self.summary: Summary = summary

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._f.close()

    # -- summary-level facts ----------------------------------------------------------------------
    @property
    def start_ns(self) -> int:
        return int(self.summary.statistics.message_start_time)  # type: ignore[union-attr]

    @property
    def end_ns(self) -> int:
        return int(self.summary.statistics.message_end_time)  # type: ignore[union-attr]

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9 if self.message_count else 0.0

    @property
    def message_count(self) -> int:
        return int(self.summary.statistics.message_count)  # type: ignore[union-attr]

    def channels(self) -> dict[str, tuple[Channel, Schema | None]]:
        """topic -> (channel, schema)."""
        out = {}
        for ch in self.summary.channels.values():
            out[ch.topic] = (ch, self.summary.schemas.get(ch.schema_id))
        return out

    def topic_counts(self) -> dict[str, int]:
        """Messages per topic, from the statistics record (topics with none included as 0)."""
        counts = self.summary.statistics.channel_message_counts  # type: ignore[union-attr]
        return {ch.topic: int(counts.get(cid, 0)) for cid, ch in self.summary.channels.items()}

    def metadata(self) -> dict[str, dict[str, str]]:
        """Metadata records by name (the last one wins when a name repeats)."""
        return {m.name: dict(m.metadata) for m in self._reader.iter_metadata()}

    def attachments(self) -> list[tuple[str, str, int]]:
        """(name, media type, size bytes) of each attachment."""
        return [(a.name, a.media_type, int(a.data_size)) for a in self.summary.attachment_indexes]

    def attachment(self, name: str) -> bytes:
        """Returns the data of the attachment called `name`.

        Raises:
            RecordingError: there is none.
        """
        for a in self._reader.iter_attachments():
            if a.name == name:
                return bytes(a.data)
        raise RecordingError(f"{self.path} has no attachment {name!r}; it has {[a[0] for a in self.attachments()]}")

    # -- messages ----------------------------------------------------------------------------------
    def messages(
        self, topics: Iterable[str] | None = None, start_ns: int | None = None, end_ns: int | None = None
    ) -> Iterator[tuple[str, int, int, int, Any]]:
        """Yields (topic, log_ns, publish_ns, sequence, decoded message) in log-time order.

        JSON messages decode to dicts, protobuf messages to Foxglove message objects.
        """
        wanted = list(topics) if topics is not None else None
        if wanted is not None:
            present = set(self.channels())
            wanted = [t for t in wanted if t in present]
            if not wanted:
                return
        kwargs: dict[str, Any] = {}
        if start_ns is not None:
            kwargs["starting_at"] = start_ns
        if end_ns is not None:
            kwargs["ending_before"] = end_ns
        for _schema, channel, message, decoded in self._reader.iter_decoded_messages(topics=wanted, **kwargs):
            yield channel.topic, message.log_time, message.publish_time, message.sequence, decoded

    # -- fast index --------------------------------------------------------------------------------
    def index(self, sequences: bool = True) -> dict[str, TopicIndex]:
        """Returns every topic's log times (and sequences / publish times if `sequences`).

        Log times come from the message indexes without decompressing anything; sequences need
        each chunk decompressed once (their fields are then read in place, not decoded).
        """
        f = self._f
        per: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        for ci in sorted(self.summary.chunk_indexes, key=lambda c: c.chunk_start_offset):
            entries: dict[int, np.ndarray] = {}
            if ci.message_index_length:
                f.seek(ci.chunk_start_offset + ci.chunk_length)
                entries = _parse_message_indexes(f.read(ci.message_index_length))
            data = None
            if sequences or not entries:
                f.seek(ci.chunk_start_offset)
                data = _chunk_records(f.read(ci.chunk_length))
                if not entries:
                    entries = _walk_messages(data)
            for cid, pairs in entries.items():
                log_ns = pairs[:, 0].astype(np.int64)
                if data is not None:
                    buf = np.frombuffer(data, dtype=np.uint8)
                    offs = pairs[:, 1].astype(np.int64)
                    seq = buf[offs[:, None] + _MSG_SEQ_AT + np.arange(4)].copy().view("<u4").ravel().astype(np.int64)
                    pub = buf[offs[:, None] + _MSG_PUB_AT + np.arange(8)].copy().view("<u8").ravel().astype(np.int64)
                else:
                    seq = pub = np.empty(0, dtype=np.int64)
                per.setdefault(cid, []).append((log_ns, pub, seq))
        out: dict[str, TopicIndex] = {}
        for cid, ch in self.summary.channels.items():
            parts = per.get(cid, [])
            schema = self.summary.schemas.get(ch.schema_id)

            def cat(k: int, parts: list = parts) -> np.ndarray:
                return np.concatenate([p[k] for p in parts]) if parts else np.empty(0, dtype=np.int64)

            out[ch.topic] = TopicIndex(
                topic=ch.topic,
                schema=schema.name if schema else "",
                encoding=ch.message_encoding,
                log_ns=cat(0),
                publish_ns=cat(1) if sequences else np.empty(0, dtype=np.int64),
                sequence=cat(2) if sequences else np.empty(0, dtype=np.int64),
            )
        return out


def _parse_message_indexes(block: bytes) -> dict[int, np.ndarray]:
    """Parses consecutive MessageIndex records into channel id -> (n, 2) uint64 (log time, offset)."""
    out: dict[int, np.ndarray] = {}
    p = 0
    n = len(block)
    while p + 9 <= n:
        op, ln = RECORD_HEAD.unpack_from(block, p)
        if op == 0x07 and ln >= 6:
            cid, rlen = struct.unpack_from("<HI", block, p + 9)
            arr = np.frombuffer(block, dtype="<u8", count=rlen // 8, offset=p + 15).reshape(-1, 2)
            out[cid] = arr
        p += 9 + ln
    return out


def _chunk_records(record: bytes) -> bytes:
    """Returns the decompressed records of a whole Chunk record (opcode and length included)."""
    p = 9
    _start, _end, usize, _crc = CHUNK_HEAD.unpack_from(record, p)
    p += CHUNK_HEAD.size
    (clen,) = struct.unpack_from("<I", record, p)
    compression = record[p + 4 : p + 4 + clen].decode()
    p += 4 + clen
    (dlen,) = struct.unpack_from("<Q", record, p)
    p += 8
    try:
        return decompress(compression, record[p : p + dlen], usize)
    except ChunkError as exc:
        raise RecordingError(str(exc)) from None


def _walk_messages(data: bytes) -> dict[int, np.ndarray]:
    out: dict[int, list[tuple[int, int]]] = {}
    p = 0
    while p + 9 <= len(data):
        op, ln = RECORD_HEAD.unpack_from(data, p)
        if op == 0x05:
            cid, _seq, log_ns = struct.unpack_from("<HIQ", data, p + 9)
            out.setdefault(cid, []).append((log_ns, p))
        p += 9 + ln
    return {cid: np.array(v, dtype=np.uint64).reshape(-1, 2) for cid, v in out.items()}


def open_recording(path: Path | str) -> RecordingReader:
    """Opens a finished recording (see `RecordingReader`)."""
    return RecordingReader(path)


__all__ = ["JsonDecoderFactory", "RecordingReader", "TopicIndex", "open_recording"]
