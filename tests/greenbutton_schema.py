"""Validate Green Button feeds offline against the ESPI and Atom schemas in tests/data."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

SCHEMAS = Path(__file__).parent / "data" / "greenbutton"
#: atom.xsd imports the XML namespace schema from the W3C; this copy is served instead.
XML_XSD_URLS = ("https://www.w3.org/2001/03/xml.xsd", "http://www.w3.org/2001/03/xml.xsd",
                "http://www.w3.org/2001/xml.xsd", "https://www.w3.org/2001/xml.xsd")


class _LocalSchemas(etree.Resolver):  # type: ignore[misc]
    """Answers the W3C's xml.xsd from the local copy; nothing is fetched from the network."""

    def resolve(self, url: str, pubid: str | None, context: Any) -> Any:
        if url in XML_XSD_URLS:
            return self.resolve_filename(str(SCHEMAS / "xml.xsd"), context)
        return None


@cache
def espi_schema() -> etree.XMLSchema:
    """usage.xsd (the ESPI schema) with the atom.xsd it imports, loaded offline."""
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_LocalSchemas())
    document = etree.parse(str(SCHEMAS / "usage.xsd"), parser)
    return etree.XMLSchema(document)


def validation_errors(xml: bytes) -> list[str]:
    """Every schema error of the document (empty when it is valid)."""
    schema = espi_schema()
    document = etree.fromstring(xml, etree.XMLParser(no_network=True))
    if schema.validate(document):
        return []
    return [f"line {error.line}: {error.message}" for error in schema.error_log]
