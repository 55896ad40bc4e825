"""The header marker is replaced once in a stream, however the chunks split it."""

from __future__ import annotations

import pytest

from metermatrix.web.siteheader import MARKER, MarkerReplacer, is_page

PAGE = b"<html><body>\n" + MARKER + b"\n<div>cells " + MARKER + b"</div></body></html>"
HEADER = b"<header>boss</header>"


def streamed(page: bytes, size: int) -> bytes:
    replacer = MarkerReplacer(HEADER)
    sent = b"".join(replacer.feed(page[at:at + size]) for at in range(0, len(page), size))
    return sent + replacer.close()


@pytest.mark.parametrize("size", [1, 2, 5, 17, len(MARKER) - 1, len(MARKER), 1000])
def test_the_first_marker_becomes_the_header_whatever_the_chunk_size(size):
    assert streamed(PAGE, size) == PAGE.replace(MARKER, HEADER, 1)


def test_a_page_without_the_marker_passes_unchanged_including_a_marker_like_end():
    page = b"<html><body>no header here <!-- metermatrix:site"
    assert streamed(page, 3) == page


def test_only_html_answers_are_pages():
    assert is_page("text/html; charset=UTF-8") and not is_page("application/javascript")
    assert not is_page(None)
