from twisted.internet.task import Clock

from ingest.jt808.codec import Header
from ingest.jt808.reassembly import Assembled, Incomplete, SubpackageAssembler

PHONE = bytes.fromhex("013912345678")


def chunk_header(index: int, total: int, serial: int, msg_id: int = 0x0801, phone: bytes = PHONE) -> Header:
    return Header(msg_id, 0x2000, None, phone, serial, total, index)


def test_chunks_in_any_order_assemble_in_index_order():
    assembler = SubpackageAssembler(Clock())
    assert assembler.add(chunk_header(2, 3, 11), b"BB") is None
    assert assembler.add(chunk_header(1, 3, 10), b"AA") is None
    done = assembler.add(chunk_header(3, 3, 12), b"CC")
    assert isinstance(done, Assembled) and done.body == b"AABBCC" and done.first_serial == 10
    assert done.header.serial == 12 and assembler.held_bytes == 0


def test_last_index_with_gaps_asks_for_the_missing_ones():
    assembler = SubpackageAssembler(Clock())
    assembler.add(chunk_header(1, 4, 20), b"a")
    result = assembler.add(chunk_header(4, 4, 23), b"d")
    assert result == Incomplete(first_serial=20, missing=(2, 3))
    assembler.add(chunk_header(2, 4, 30), b"b")
    done = assembler.add(chunk_header(3, 4, 31), b"c")
    assert isinstance(done, Assembled) and done.body == b"abcd"


def test_distinct_keys_do_not_mix():
    assembler = SubpackageAssembler(Clock())
    assembler.add(chunk_header(1, 2, 1, msg_id=0x0801), b"x")
    assembler.add(chunk_header(1, 2, 1, msg_id=0x0802), b"y")
    assert assembler.add(chunk_header(2, 2, 2, msg_id=0x0802), b"Y").body == b"yY"
    assert assembler.add(chunk_header(2, 2, 2, msg_id=0x0801), b"X").body == b"xX"


def test_stale_partials_expire_on_the_clock():
    clock = Clock()
    assembler = SubpackageAssembler(clock, timeout=60)
    assembler.add(chunk_header(1, 2, 1), b"old")
    clock.advance(61)
    assert isinstance(assembler.add(chunk_header(2, 2, 2), b"new"), Incomplete)
    assert assembler.dropped == 1


def test_memory_is_bounded_by_bytes_and_messages():
    assembler = SubpackageAssembler(Clock(), max_bytes=100, max_messages=2)
    for msg_id in range(10):
        assembler.add(chunk_header(1, 5, 1, msg_id=msg_id), b"z" * 40)
        assert assembler.held_bytes <= 100
    assert assembler.dropped >= 8


def test_bad_indices_are_dropped_and_single_chunk_passes_through():
    assembler = SubpackageAssembler(Clock())
    assert assembler.add(chunk_header(0, 2, 1), b"x") is None
    assert assembler.add(chunk_header(3, 2, 1), b"x") is None
    assert assembler.add(chunk_header(1, 1, 5), b"solo").body == b"solo"
