"""The web layer: Tornado application, handlers, templates and static files."""
