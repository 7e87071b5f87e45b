"""Results waiting to be accepted by the PACS: one JSON file per study in `<work-dir>/outbox/`,
re-sent with exponential back-off until every destination took them, kept across restarts.

An entry lists the result files, the destinations still to do ("pacs", "stow"), the attempts
so far, when to try next and the last error (a thyrocad message: addresses and statuses, no
patient data). It is deleted once every destination accepted the results.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from thyrocad.files import write_text_atomic

logger = logging.getLogger(__name__)


@dataclass
class Delivery:
    """The results of one study and where they still have to go."""

    study: str  # the study key (a hash, never the UID)
    files: list[str]
    pending: list[str]  # "pacs", "stow"
    attempts: int = 0
    next_try: float = field(default_factory=time.time)  # epoch seconds
    last_error: str = ""
    job: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def to_status(self) -> dict[str, object]:
        """What `status.json` shows of it."""
        return {
            "study": self.study,
            "pending": list(self.pending),
            "attempts": self.attempts,
            "next_try_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.next_try)),
            "last_error": self.last_error,
        }


class Outbox:
    """The deliveries in `folder`, retried with back-off from `retry_s` doubling up to
    `retry_max_s`."""

    def __init__(self, folder: Path, retry_s: float = 30.0, retry_max_s: float = 3600.0) -> None:
        self.folder = Path(folder)
        self.retry_s = retry_s
        self.retry_max_s = retry_max_s
        self.folder.mkdir(parents=True, exist_ok=True)

    def add(self, delivery: Delivery) -> None:
        self._save(delivery)

    def all(self) -> list[Delivery]:
        """Every delivery not yet accepted everywhere (damaged entries are logged and kept)."""
        found = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                found.append(Delivery(**json.loads(path.read_text())))
            except (OSError, ValueError, TypeError):
                logger.error("outbox entry %s is damaged; left in place for inspection", path.name)
        return found

    def due(self) -> list[Delivery]:
        now = time.time()
        return [d for d in self.all() if d.next_try <= now]

    def sent(self, delivery: Delivery, target: str) -> None:
        """`target` accepted the results; the entry goes once all did."""
        delivery.pending = [t for t in delivery.pending if t != target]
        if delivery.pending:
            self._save(delivery)
        else:
            (self.folder / f"{delivery.job}.json").unlink(missing_ok=True)

    def failed(self, delivery: Delivery, error: str) -> float:
        """Record a failed attempt; seconds until the next one."""
        delivery.attempts += 1
        delay = min(self.retry_s * 2 ** (delivery.attempts - 1), self.retry_max_s)
        delivery.next_try = time.time() + delay
        delivery.last_error = error
        self._save(delivery)
        return delay

    def _save(self, delivery: Delivery) -> None:
        write_text_atomic(self.folder / f"{delivery.job}.json", json.dumps(asdict(delivery)))
