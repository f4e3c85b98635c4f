"""``database_retries``: an export's bookkeeping step outlives a dropped database connection, and any
other error is its answer at once."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from tasks.retries import database_retries


def test_a_step_is_tried_again_while_the_database_refuses_then_answers(tmp_path):
    path = tmp_path / "later" / "modelpulse.db"
    calls = []

    @database_retries(attempts=3, delay_seconds=0.01)
    def read_one() -> int:
        calls.append(1)
        if len(calls) == 2:
            path.parent.mkdir()  # the database becomes reachable
        with create_engine(f"sqlite:///{path}").connect() as connection:
            return connection.execute(text("select 1")).scalar_one()

    assert read_one() == 1
    assert len(calls) == 2


def test_a_database_that_stays_away_fails_the_step_after_its_attempts(tmp_path):
    calls = []

    @database_retries(attempts=3, delay_seconds=0.01)
    def read_one() -> int:
        calls.append(1)
        with create_engine(f"sqlite:///{tmp_path}/missing/modelpulse.db").connect() as connection:
            return connection.execute(text("select 1")).scalar_one()

    with pytest.raises(OperationalError):
        read_one()
    assert len(calls) == 3


def test_any_other_error_is_raised_at_once():
    calls = []

    @database_retries(attempts=3, delay_seconds=0.01)
    def step() -> None:
        calls.append(1)
        raise LookupError("export exp_1 does not exist")

    with pytest.raises(LookupError):
        step()
    assert calls == [1]
