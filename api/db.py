"""The request's database session: created lazily on ``g``, closed (rolled back if open) on teardown."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from store.db import get_sessionmaker


def db() -> Session:
    if "db_session" not in g:
        g.db_session = get_sessionmaker(current_app.config["DATABASE_URL"])()
    return g.db_session


def _close_session(_error: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(_close_session)
