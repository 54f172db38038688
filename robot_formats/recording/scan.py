"""A tolerant MCAP scanner and in-place summary writer, the machinery behind `recover`.

`scan` walks the data section record by record, checks every chunk (complete, decompresses,
CRC matches) and parses every other record as strictly as the official reader needs it (no field
runs past its record, strings are UTF-8). It stops at the first record that is cut off or a
damaged chunk: everything before that point (`ScanResult.valid_end`) is intact. A damaged
metadata, attachment, schema, channel or message-index record whose frame is intact (the record
after it parses) is dropped instead: `ScanResult.patches` turns its opcode into `DROPPED_OPCODE`, a
private opcode every MCAP reader skips, and the scan goes on. A damaged header is repaired (same
length, a library string that says so), and so are magic bytes with one damaged byte before a
header. `write_tail` then cuts the file there and appends what a
finished MCAP has after its data (missing message indexes of the last chunk, extra metadata,
DataEnd, summary with schemas/channels/statistics/indexes, footer, magic), so the standard
readers (`mcap.reader.make_reader`) open it with its summary.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import lz4.frame
import zstandard
from mcap.data_stream import ReadDataStream, RecordBuilder
from mcap.opcode import Opcode
from mcap.records import (
    Attachment,
    AttachmentIndex,
    Channel,
    ChunkIndex,
    DataEnd,
    Footer,
    Header,
    MessageIndex,
    Metadata,
    MetadataIndex,
    Schema,
    Statistics,
    SummaryOffset,
)

MAGIC = bytes([137, 77, 67, 65, 80, 48, 13, 10])
RECORD_HEAD = struct.Struct("<BQ")
MESSAGE_HEAD = struct.Struct("<HIQQ")  # channel_id, sequence, log_time, publish_time
CHUNK_HEAD = struct.Struct("<QQQI")  # start, end, uncompressed size, uncompressed crc
SUMMARY_ONLY = {
    Opcode.CHUNK_INDEX,
    Opcode.ATTACHMENT_INDEX,
    Opcode.STATISTICS,
    Opcode.METADATA_INDEX,
    Opcode.SUMMARY_OFFSET,
}


DROPPED_OPCODE = 0x80  # a private record (MCAP reserves 0x80-0xFF): readers skip it
DROPPABLE = {Opcode.METADATA, Opcode.ATTACHMENT, Opcode.SCHEMA, Opcode.CHANNEL, Opcode.MESSAGE_INDEX}
REPAIRED_LIBRARY = "header damaged; repaired by teleop-replay recover"


class ChunkError(ValueError):
    """A chunk record is complete on disk but its content is damaged."""


class _StrictStream(ReadDataStream):
    """`ReadDataStream` whose reads never come up short: a field that runs past its record raises."""

    def read(self, length: int) -> bytes:
        data = super().read(length)
        if len(data) != length:
            raise ValueError(f"a field of {length} bytes runs past the end of its record")
        return data


def strict_stream(payload: bytes) -> ReadDataStream:
    """A reader of one record's body that raises where the official reader would read past it."""
    return _StrictStream(io.BytesIO(payload))


@dataclass
class Dropped:
    """A damaged record that was left out (its opcode patched to `DROPPED_OPCODE`) or repaired."""

    offset: int
    length: int  # whole record, opcode and length field included
    opcode: int
    reason: str
    repaired: bool = False

    def describe(self) -> str:
        what = "repaired" if self.repaired else "dropped"
        if self.offset == 0:
            return f"repaired the magic bytes: {self.reason}"
        return f"{what} record (opcode 0x{self.opcode:02x}) at byte {self.offset}, {self.length} bytes: {self.reason}"


@dataclass
class ChunkEntry:
    """One intact chunk: where it is and what it holds."""

    offset: int
    length: int  # whole record, opcode and length field included
    start_ns: int
    end_ns: int
    compression: str
    compressed_size: int
    uncompressed_size: int
    counts: dict[int, int] = field(default_factory=dict)  # channel id -> messages
    index_offsets: dict[int, int] = field(default_factory=dict)  # MessageIndex records on disk
    index_end: int = 0  # end offset of the MessageIndex records that follow it


@dataclass
class ScanResult:
    """What an MCAP file's data section holds, up to its first damaged or missing byte."""

    path: Path
    file_size: int
    valid_end: int = 0  # bytes [0, valid_end) are intact, complete records
    complete: bool = False  # a DataEnd record was reached: the file had been finished
    stop_reason: str = ""
    header: Header | None = None
    schemas: dict[int, Schema] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    chunks: list[ChunkEntry] = field(default_factory=list)
    metadata: list[tuple[int, int, Metadata]] = field(default_factory=list)  # (offset, length, record)
    attachments: list[AttachmentIndex] = field(default_factory=list)
    channel_counts: dict[int, int] = field(default_factory=dict)
    channel_last_ns: dict[int, int] = field(default_factory=dict)
    start_ns: int = 0
    end_ns: int = 0
    last_chunk_index: dict[int, list[tuple[int, int]]] = field(default_factory=dict)  # to rebuild it
    bare_messages: int = 0  # messages outside chunks (an unchunked file)
    dropped: list[Dropped] = field(default_factory=list)  # damaged records left out or repaired
    patches: list[tuple[int, bytes]] = field(default_factory=list)  # (offset, bytes) to write before the tail

    @property
    def messages(self) -> int:
        return sum(self.channel_counts.values())

    @property
    def truncated_bytes(self) -> int:
        """Bytes after the intact prefix that are not part of a finished file's summary."""
        return 0 if self.complete else self.file_size - self.valid_end

    def topic_counts(self) -> dict[str, int]:
        """Messages per topic."""
        out: dict[str, int] = {}
        for cid, n in self.channel_counts.items():
            ch = self.channels.get(cid)
            topic = ch.topic if ch is not None else f"<channel {cid}>"
            out[topic] = out.get(topic, 0) + n
        return out

    def metadata_named(self, name: str) -> dict[str, str] | None:
        """Returns the last metadata record called `name`, or None."""
        found = [m.metadata for _, _, m in self.metadata if m.name == name]
        return found[-1] if found else None


def decompress(compression: str, data: bytes, size: int) -> bytes:
    """Decompresses a chunk's records ("", "zstd" or "lz4"); raises `ChunkError` if unsupported."""
    if compression == "":
        return data
    if compression == "zstd":
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
    if compression == "lz4":
        return lz4.frame.decompress(data)
    raise ChunkError(f"unsupported chunk compression {compression!r}")


def _parse_chunk(payload: bytes, offset: int, scan: ScanResult) -> tuple[ChunkEntry, dict[int, list[tuple[int, int]]]]:
    start, end, usize, ucrc = CHUNK_HEAD.unpack_from(payload, 0)
    p = CHUNK_HEAD.size
    (clen,) = struct.unpack_from("<I", payload, p)
    if p + 4 + clen > len(payload):
        raise ChunkError(f"compression name of {clen} bytes overruns its record")
    try:
        compression = payload[p + 4 : p + 4 + clen].decode()
    except UnicodeDecodeError:
        raise ChunkError("compression name is not UTF-8") from None
    p += 4 + clen
    (dlen,) = struct.unpack_from("<Q", payload, p)
    p += 8
    if p + dlen > len(payload):
        raise ChunkError(f"chunk data of {dlen} bytes overruns its record")
    try:
        data = decompress(compression, payload[p : p + dlen], usize)
    except ChunkError:
        raise
    except Exception as exc:  # zstd/lz4 raise their own types on damaged frames
        raise ChunkError(f"cannot decompress ({compression}): {exc}") from None
    if len(data) != usize:
        raise ChunkError(f"decompressed to {len(data)} bytes, header says {usize}")
    if ucrc and zlib.crc32(data) != ucrc:
        raise ChunkError("CRC mismatch")
    entry = ChunkEntry(offset, 0, start, end, compression, dlen, usize)
    index: dict[int, list[tuple[int, int]]] = {}
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    q = 0
    n = len(data)
    while q < n:
        if q + 9 > n:
            raise ChunkError(f"record header cut at {q} of {n}")
        op, ln = RECORD_HEAD.unpack_from(data, q)
        body = q + 9
        if body + ln > n:
            raise ChunkError(f"record of {ln} bytes at {q} overruns the chunk")
        if op == Opcode.MESSAGE:
            if ln < MESSAGE_HEAD.size:
                raise ChunkError(f"message record of {ln} bytes is too short")
            cid, _seq, log_ns, _pub = MESSAGE_HEAD.unpack_from(data, body)
            index.setdefault(cid, []).append((log_ns, q))
        elif op in (Opcode.SCHEMA, Opcode.CHANNEL):
            try:
                if op == Opcode.SCHEMA:
                    s = Schema.read(strict_stream(data[body : body + ln]))
                    schemas[s.id] = s
                else:
                    c = Channel.read(strict_stream(data[body : body + ln]))
                    channels[c.id] = c
            except Exception as exc:  # noqa: BLE001 - bad UTF-8, a field past the record, ...
                raise ChunkError(f"damaged {'schema' if op == Opcode.SCHEMA else 'channel'} record: {exc}") from None
        q = body + ln
    for cid in index:
        if cid not in channels and cid not in scan.channels:
            raise ChunkError(f"message on channel {cid}, which was never defined")
    scan.schemas.update(schemas)
    scan.channels.update(channels)
    entry.counts = {cid: len(v) for cid, v in index.items()}
    return entry, index


def scan(path: Path | str) -> ScanResult:
    """Walks an MCAP file's records and reports its intact prefix (never raises on damage).

    Raises:
        OSError: the file cannot be opened or read.
    """
    path = Path(path)
    with open(path, "rb") as f:
        size = f.seek(0, io.SEEK_END)
        f.seek(0)
        result = ScanResult(path=path, file_size=size)
        magic = f.read(8)
        if magic != MAGIC:
            if not _damaged_magic(magic, f, size):
                result.stop_reason = "not an MCAP file (bad or missing magic bytes)"
                return result
            result.dropped.append(Dropped(0, 8, 0, f"magic bytes damaged: {magic.hex()}", repaired=True))
            result.patches.append((0, MAGIC))
            f.seek(8)
        result.valid_end = pos = 8
        last_chunk: ChunkEntry | None = None
        # A damaged record is dropped (or a damaged header repaired) only once the record after it
        # has parsed: if its length field was what got damaged, the next "record" is garbage, and
        # the file is cut where the damage starts instead.
        pending: tuple[Dropped, bytes] | None = None
        while True:
            if pos + 9 > size:
                if pos == size and pending is not None:
                    _commit(result, pending)
                    pending = None
                elif pending is None:
                    result.stop_reason = "end of file" if pos == size else f"record header cut off at byte {pos}"
                break
            head = f.read(9)
            op, ln = RECORD_HEAD.unpack(head)
            end = pos + 9 + ln
            if end > size:
                if pending is None:
                    result.stop_reason = (
                        f"record (opcode 0x{op:02x}) at byte {pos} is cut off: needs {ln} bytes, {size - pos - 9} left"
                    )
                break
            if op in SUMMARY_ONLY or op == Opcode.FOOTER:
                if pending is None:
                    result.stop_reason = f"unexpected summary record (opcode 0x{op:02x}) at byte {pos} before DataEnd"
                break
            if op == Opcode.DATA_END:
                if pending is not None:
                    _commit(result, pending)
                    pending = None
                result.complete = True
                result.stop_reason = "file is complete (DataEnd reached)"
                break
            payload = f.read(ln)
            if pos == 8 and op != Opcode.HEADER and _parses(Header, payload):
                # the header's opcode byte was damaged: put it back
                damage = Dropped(pos, end - pos, op, "opcode of the header damaged", repaired=True)
                op = Opcode.HEADER
                pending = (damage, bytes([Opcode.HEADER]))
            try:
                follows_chunk = _take(op, payload, pos, end, result, last_chunk)
            except ChunkError as exc:
                if pending is None:
                    result.stop_reason = f"chunk at byte {pos} is damaged: {exc}"
                break
            except Exception as exc:  # a damaged non-chunk record: drop or repair it, or keep what came before
                reason = f"record (opcode 0x{op:02x}) at byte {pos} is damaged: {exc}"
                if pending is not None and pending[0].offset != pos:
                    break  # two damaged records in a row: the first one's length cannot be trusted
                if op in DROPPABLE:
                    pending = (Dropped(pos, end - pos, op, str(exc)), bytes([DROPPED_OPCODE]))
                elif op == Opcode.HEADER and pos == 8 and ln >= 8:
                    result.header, body = _repaired_header(ln)
                    pending = (Dropped(pos, end - pos, op, str(exc), repaired=True), head + body)
                else:
                    result.stop_reason = reason
                    break
                result.stop_reason = reason
                last_chunk = None
                pos = end
                continue
            if pending is not None and pending[0].offset != pos:
                _commit(result, pending)
                pending = None
            if op == Opcode.CHUNK:
                last_chunk = result.chunks[-1]
            elif not follows_chunk:
                last_chunk = None
            result.valid_end = pos = end
            if pending is not None:  # the header's opcode, repaired above, and its body parsed
                _commit(result, pending)
                pending = None
        if pending is not None and pending[0].opcode == Opcode.HEADER:
            result.header = None  # the repair is not kept: the header's length was not right either
    return result


def _damaged_magic(magic: bytes, f: BinaryIO, size: int) -> bool:
    """True if `magic` differs from MCAP's in one byte and a header record follows it (a bit flip
    in an MCAP file, not another kind of file)."""
    if len(magic) != 8 or sum(a != b for a, b in zip(magic, MAGIC)) != 1 or size < 17:
        return False
    op, ln = RECORD_HEAD.unpack(f.read(9))
    return op == Opcode.HEADER and 17 + ln <= size and _parses(Header, f.read(ln))


def _commit(result: ScanResult, pending: tuple[Dropped, bytes]) -> None:
    """Keeps a provisional drop/repair: the record after it parsed (or the file ends right after it)."""
    damage, patch = pending
    result.dropped.append(damage)
    result.patches.append((damage.offset, patch))
    result.valid_end = damage.offset + damage.length
    result.stop_reason = ""


def _parses(record: type, payload: bytes) -> bool:
    """True if `payload` parses strictly as `record` (an mcap.records class)."""
    try:
        record.read(strict_stream(payload))  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - any parse failure
        return False
    return True


def _repaired_header(length: int) -> tuple[Header, bytes]:
    """A valid Header whose body is exactly `length` bytes (>= 8): empty profile, a library that says
    the header was repaired (cut or padded with spaces to fit)."""
    library = REPAIRED_LIBRARY.encode()[: length - 8].ljust(length - 8, b" ")
    body = struct.pack("<I", 0) + struct.pack("<I", len(library)) + library
    return Header(profile="", library=library.decode()), body


def _take(op: int, payload: bytes, pos: int, end: int, result: ScanResult, last_chunk: ChunkEntry | None) -> bool:
    """Accounts for one intact record; returns True if it is a MessageIndex of `last_chunk`.

    Raises:
        ChunkError: a chunk is damaged.
        Exception: another record is damaged (it would not read with the official reader).
    """
    stream = strict_stream(payload)
    if op == Opcode.CHUNK:
        if result.bare_messages:
            raise ChunkError("a chunk after unchunked messages")
        entry, index = _parse_chunk(payload, pos, result)
        entry.length = end - pos
        entry.index_end = end
        result.chunks.append(entry)
        result.last_chunk_index = index
        for cid, recs in index.items():
            result.channel_counts[cid] = result.channel_counts.get(cid, 0) + len(recs)
            last = max(t for t, _ in recs)
            first = min(t for t, _ in recs)
            result.channel_last_ns[cid] = max(result.channel_last_ns.get(cid, 0), last)
            result.start_ns = first if not result.start_ns else min(result.start_ns, first)
            result.end_ns = max(result.end_ns, last)
    elif op == Opcode.MESSAGE_INDEX:
        index = MessageIndex.read(stream)
        if last_chunk is not None and last_chunk.index_end == pos:
            if index.records != result.last_chunk_index.get(index.channel_id):
                raise ValueError(f"message index of channel {index.channel_id} does not match its chunk")
            last_chunk.index_offsets[index.channel_id] = pos
            last_chunk.index_end = end
            return True
    elif op == Opcode.HEADER:
        result.header = Header.read(stream)
    elif op == Opcode.SCHEMA:
        s = Schema.read(stream)
        result.schemas[s.id] = s
    elif op == Opcode.CHANNEL:
        c = Channel.read(stream)
        result.channels[c.id] = c
    elif op == Opcode.METADATA:
        result.metadata.append((pos, end - pos, Metadata.read(stream)))
    elif op == Opcode.ATTACHMENT:
        if len(payload) < 4:
            raise ValueError("attachment record too short")
        crc = struct.unpack_from("<I", payload, len(payload) - 4)[0]
        if crc and zlib.crc32(payload[:-4]) != crc:
            raise ValueError("attachment CRC mismatch")
        a = Attachment.read(stream)
        result.attachments.append(
            AttachmentIndex(
                offset=pos,
                length=end - pos,
                log_time=a.log_time,
                create_time=a.create_time,
                data_size=len(a.data),
                name=a.name,
                media_type=a.media_type,
            )
        )
    elif op == Opcode.MESSAGE:  # an unchunked file
        if len(payload) < MESSAGE_HEAD.size:
            raise ChunkError(f"message record of {len(payload)} bytes is too short")
        cid, _seq, log_ns, _pub = MESSAGE_HEAD.unpack_from(payload, 0)
        if result.chunks:
            raise ChunkError("an unchunked message after chunks")
        if cid not in result.channels:
            raise ChunkError(f"message on channel {cid}, which was never defined")
        result.bare_messages += 1
        result.channel_counts[cid] = result.channel_counts.get(cid, 0) + 1
        result.channel_last_ns[cid] = max(result.channel_last_ns.get(cid, 0), log_ns)
        result.start_ns = log_ns if not result.start_ns else min(result.start_ns, log_ns)
        result.end_ns = max(result.end_ns, log_ns)
    return False


def write_tail(f: BinaryIO, result: ScanResult, extra_metadata: Sequence[tuple[str, Mapping[str, str]]] = ()) -> int:
    """Cuts `f` at `result.valid_end` and appends a finished MCAP's closing sections.

    Args:
        f: the file, opened "r+b" (or a fresh copy of its first `valid_end` bytes).
        result: the scan of that file.
        extra_metadata: (name, str→str map) metadata records to add before DataEnd.

    Returns:
        The new file size in bytes.
    """
    base = result.valid_end
    f.seek(base)
    f.truncate()
    rb = RecordBuilder()
    chunk_indexes: list[ChunkIndex] = []
    last = result.chunks[-1] if result.chunks else None
    if last is not None and last.index_end == base:
        missing = sorted(set(result.last_chunk_index) - set(last.index_offsets))
        for cid in missing:  # the crash cut the last chunk's message indexes: rebuild them
            last.index_offsets[cid] = base + rb.count
            MessageIndex(channel_id=cid, records=result.last_chunk_index[cid]).write(rb)
        last.index_end = base + rb.count
    metadata_indexes = [MetadataIndex(offset=o, length=n, name=m.name) for o, n, m in result.metadata]
    for name, values in extra_metadata:
        start = base + rb.count
        Metadata(name=name, metadata=dict(values)).write(rb)
        metadata_indexes.append(MetadataIndex(offset=start, length=base + rb.count - start, name=name))
    DataEnd(data_section_crc=0).write(rb)
    for c in result.chunks:
        chunk_indexes.append(
            ChunkIndex(
                message_start_time=c.start_ns,
                message_end_time=c.end_ns,
                chunk_start_offset=c.offset,
                chunk_length=c.length,
                message_index_offsets=dict(sorted(c.index_offsets.items())),
                message_index_length=c.index_end - (c.offset + c.length),
                compression=c.compression,
                compressed_size=c.compressed_size,
                uncompressed_size=c.uncompressed_size,
            )
        )
    summary_start = base + rb.count
    summary = RecordBuilder()
    offsets: list[SummaryOffset] = []
    stats = Statistics(
        message_count=result.messages,
        schema_count=len(result.schemas),
        channel_count=len(result.channels),
        attachment_count=len(result.attachments),
        metadata_count=len(metadata_indexes),
        chunk_count=len(result.chunks),
        message_start_time=result.start_ns,
        message_end_time=result.end_ns,
        channel_message_counts=dict(sorted(result.channel_counts.items())),
    )
    groups: list[tuple[int, Sequence[object]]] = [
        (Opcode.SCHEMA, [result.schemas[k] for k in sorted(result.schemas)]),
        (Opcode.CHANNEL, [result.channels[k] for k in sorted(result.channels)]),
        (Opcode.STATISTICS, [stats]),
        (Opcode.CHUNK_INDEX, chunk_indexes),
        (Opcode.ATTACHMENT_INDEX, result.attachments),
        (Opcode.METADATA_INDEX, metadata_indexes),
    ]
    for opcode, records in groups:
        start = summary.count
        for record in records:
            record.write(summary)  # type: ignore[attr-defined]
        offsets.append(
            SummaryOffset(group_opcode=opcode, group_start=summary_start + start, group_length=summary.count - start)
        )
    offset_start = summary_start + summary.count
    for o in offsets:
        o.write(summary)
    summary_bytes = summary.end()
    crc = zlib.crc32(summary_bytes)
    crc = zlib.crc32(struct.pack("<BQQQ", Opcode.FOOTER, 8 + 8 + 4, summary_start, offset_start), crc)
    footer = RecordBuilder()
    Footer(summary_start=summary_start, summary_offset_start=offset_start, summary_crc=crc).write(footer)
    f.write(rb.end())
    f.write(summary_bytes)
    f.write(footer.end())
    f.write(MAGIC)
    return f.tell()
