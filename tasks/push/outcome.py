"""What an inbound delivery did, and the error for one that is not an event at all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["recorded", "updated", "ignored", "duplicate"]


class InvalidDelivery(Exception):
    """The body is not the event shape the platform sends; ``field`` names the first wrong part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class InboundOutcome:
    """``recorded``: a new version or endpoint status; ``updated``: aliases or tags; ``ignored``: nothing
    to do (an unmonitored model, an event ModelPulse does not act on); ``duplicate``: seen before."""

    status: Status
    detail: str
