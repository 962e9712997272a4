"""A file's batch held in one buffer decodes exactly as the same messages given one by one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from pipeline.rating.decode import decode_cdrs
from pipeline.rating.message_block import MessageBlock
from pipeline.rating.screen import screen
from pipeline.sources.files import read_jsonl_batches
from tests.builders import cdr
from tests.unit.rating.test_decode_hostile import _hostile_message

_GOOD = [json.dumps(cdr(cdr_id=f"g{i}")).encode() for i in range(30)]
_SEPARATORS = [b"\n", b"\n", b"\n", b"\r\n", b"\n\n", b"\n  \n", b"\r\r\n"]


def _block_of(messages: list[bytes], separators: list[bytes], folder: Path) -> MessageBlock:
    """The messages written as lines of a file and read back as one batch."""
    path = folder / "cdrs.jsonl"
    path.write_bytes(b"".join(m + s for m, s in zip(messages, separators, strict=True)))
    (batch,) = read_jsonl_batches(path, len(messages) + 10)
    assert isinstance(batch.lines, MessageBlock)
    return batch.lines


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(_hostile_message(), min_size=1, max_size=6),
    st.lists(st.sampled_from(_SEPARATORS), min_size=40, max_size=40),
    st.randoms(use_true_random=False),
)
def test_a_block_is_screened_and_decoded_as_its_messages_one_by_one(
    tmp_path_factory: pytest.TempPathFactory,
    hostile: list[bytes],
    separators: list[bytes],
    rng: object,
) -> None:
    # A file line cannot hold a line feed, and loses its trailing carriage returns.
    lines = [m.replace(b"\n", b" ").rstrip(b"\r") for m in hostile]
    lines = [m for m in lines if m.strip()]
    messages = [*_GOOD[:10], *lines, *_GOOD[10:]]
    rng.shuffle(messages)  # type: ignore[attr-defined]
    block = _block_of(messages, separators[: len(messages)], tmp_path_factory.mktemp("b"))
    assert block == messages
    assert screen(block) == screen(messages)
    from_block, one_by_one = decode_cdrs(block), decode_cdrs(messages)
    assert_frame_equal(from_block.good, one_by_one.good)
    assert_frame_equal(from_block.rejected, one_by_one.rejected)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.binary(max_size=8).filter(lambda b: b"\n" not in b), min_size=1, max_size=12),
    st.lists(st.sampled_from([b"\n", b"\n\n", b"\n\r\n", b"\r\n"]), min_size=12, max_size=12),
    st.data(),
)
def test_joined_and_line_feeds_are_what_joining_the_messages_gives(
    messages: list[bytes], separators: list[bytes], data: st.DataObject
) -> None:
    text = b"".join(m + s for m, s in zip(messages, separators, strict=False))
    lengths = np.array([len(m) for m in messages], dtype=np.int64)
    starts = np.cumsum([0] + [len(m) + len(s) for m, s in zip(messages, separators, strict=False)])
    block = MessageBlock(text, starts[:-1].astype(np.int64), starts[:-1] + lengths)
    assert list(block) == messages
    positions = data.draw(st.lists(st.integers(0, len(messages) - 1), unique=True))
    positions.sort()
    taken = block.take(positions)
    assert taken.joined() == b"\n".join(messages[i] for i in positions)
    assert block.joined() == b"\n".join(messages)
    values = block.with_line_feeds().to_list()
    assert values == [m + b"\n" for m in messages[:-1]] + [messages[-1]]
    assert taken.with_line_feeds().to_list() == [
        *(messages[i] + b"\n" for i in positions[:-1]),
        *(messages[i] for i in positions[-1:]),
    ]
    assert block[1:] == messages[1:]
    assert (block.lengths() == lengths).all()


def test_a_clean_batch_is_joined_as_one_slice_of_the_file(tmp_path: Path) -> None:
    block = _block_of(_GOOD, [b"\n"] * len(_GOOD), tmp_path)
    assert block.joined() == b"\n".join(_GOOD)
    assert block.with_line_feeds().to_list()[0] == _GOOD[0] + b"\n"
