"""The site's header on the dashboards' pages: put in by the proxy as Voila streams a page.

Voila renders the page without knowing who is logged in here, so the ``metermatrix``
template leaves a marker comment first thing in the body and the proxy replaces it, in the
stream, with the header of the logged-in manager: their name, the way back to
``/management/`` and the log-out form with this site's XSRF token.
"""

from __future__ import annotations

#: Where the header goes (written by the template, replaced once per page).
MARKER = b"<!-- metermatrix:site-header -->"
#: The template of the header (in ``metermatrix/web/templates``).
TEMPLATE = "dashboard_header.html"


class MarkerReplacer:
    """Replace the first ``marker`` in a byte stream fed in chunks of any size.

    Bytes that could be the start of a marker split between two chunks are held back
    until the next chunk (or ``close``) shows what they are.
    """

    def __init__(self, replacement: bytes, marker: bytes = MARKER) -> None:
        self.replacement = replacement
        self.marker = marker
        self.done = False
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        """The bytes of ``chunk`` (and any held back) that can be sent now."""
        if self.done:
            return chunk
        data = self._held + chunk
        at = data.find(self.marker)
        if at >= 0:
            self.done, self._held = True, b""
            return data[:at] + self.replacement + data[at + len(self.marker):]
        keep = self._partial_marker_length(data)
        self._held = data[len(data) - keep:] if keep else b""
        return data[: len(data) - keep]

    def _partial_marker_length(self, data: bytes) -> int:
        """How many bytes at the end of ``data`` begin a marker."""
        for length in range(min(len(self.marker) - 1, len(data)), 0, -1):
            if self.marker.startswith(data[-length:]):
                return length
        return 0

    def close(self) -> bytes:
        """Whatever is still held back (the stream ended without completing a marker)."""
        held, self._held = self._held, b""
        return held


def is_page(content_type: str | None) -> bool:
    """True for an HTML answer (the only kind that carries the marker)."""
    return (content_type or "").split(";", 1)[0].strip().lower() == "text/html"
