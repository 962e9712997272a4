"""Finding a blank line in a reference file quickly (issue 17) finds what the old pattern did."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.reference.csv_checks import has_blank_line

_OLD = re.compile(rb"(^|\n)[ \t\r]*(\n|$)")


@settings(max_examples=500)
@given(st.lists(st.sampled_from([b"a", b",", b" ", b"\t", b"\r", b"\n"]), max_size=30))
def test_same_as_the_one_pattern(pieces: list[bytes]) -> None:
    text = b"".join(pieces)
    for content in (text, text.rstrip()):
        assert has_blank_line(content) == (_OLD.search(content) is not None), content


def test_examples() -> None:
    assert not has_blank_line(b"prefix,rate\n44,0.1\n4420,0.2")
    assert has_blank_line(b"prefix,rate\n\n44,0.1")
    assert has_blank_line(b"prefix,rate\n \r\n44,0.1")
    assert has_blank_line(b" \nprefix,rate")
    assert has_blank_line(b"")
