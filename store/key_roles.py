"""The roles an API key can have, most powerful first (what each may call: ``api/permissions.py``).

Kept apart from ``store/organizations.py`` so the CLI can offer them without importing SQLAlchemy.
"""

KEY_ROLES = ("admin", "publisher", "viewer")
DEFAULT_KEY_ROLE = "admin"  # what every key could do before roles, and what keys made before them are
