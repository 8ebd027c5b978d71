"""What a simulated day leaves behind: snapshots of the hall through the day, what happened to each
visit, assistance request and incident, the services' own figures at the end, and the checks that
the books balance. The driver fills it; the report draws it; it round-trips through JSON."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field


class Snapshot(BaseModel):
    """The hall at one simulated instant, as the services' APIs answer."""

    at: datetime
    in_hall: int
    """Visitors with a ticket not yet done, cancelled or set aside."""
    waiting: dict[str, int]
    """Tickets waiting, by category letter (GET /queues)."""
    windows_open: int
    open_by_category: dict[str, int]
    """Open windows serving each category (the lunch dip, never to zero)."""
    loans_out: int
    stock: dict[str, int]
    """Consumables left, by sku."""
    assistance_open: int
    incidents_open: int
    occupied: int
    """Cars in the car park."""
    events_per_s: float
    """Events published per real second since the last snapshot."""


class Visit(BaseModel):
    ticket_id: str
    number: str
    category: str
    item_code: str
    priority: str | None = None
    needs: list[str] = Field(default_factory=list)
    by_car: bool = False
    issued_at: datetime
    called_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    window_id: str | None = None
    outcome: str | None = None
    """done, needs_materials, referred; or no_show / cancelled when it ended so."""
    wait_s: float | None = None
    service_s: float | None = None
    transferred: bool = False
    rejoined: bool = False
    score: int | None = None


class AssistanceRecord(BaseModel):
    assistance_id: str
    kind: str
    ticket_id: str | None = None
    incident_id: str | None = None
    requested_at: datetime
    accepted_at: datetime | None = None
    completed_at: datetime | None = None
    concierge_id: str | None = None
    escalations: int = 0


class IncidentRecord(BaseModel):
    incident_id: str
    kind: str
    ticket_id: str | None = None
    reported_at: datetime
    notified_at: datetime | None = None
    escalated_at: datetime | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None


class Check(BaseModel):
    """One way the books must balance: what the simulator did against what the services say."""

    name: str
    ok: bool
    expected: str
    found: str


class Target(BaseModel):
    category: str
    name_en: str
    target_wait_s: float


class DayRecord(BaseModel):
    day: str
    """The local date played, `YYYY-MM-DD`."""
    seed: int
    visitors: int
    speed: float
    real_seconds: float = 0.0
    started_at: datetime
    """Simulated."""
    finished_at: datetime | None = None
    targets: list[Target] = Field(default_factory=list)
    snapshots: list[Snapshot] = Field(default_factory=list)
    visits: list[Visit] = Field(default_factory=list)
    assistance: list[AssistanceRecord] = Field(default_factory=list)
    incidents: list[IncidentRecord] = Field(default_factory=list)
    stats_today: dict[str, object] = Field(default_factory=dict)
    """The queue's GET /stats/today at the end of the day."""
    satisfaction_by_window: dict[str, object] = Field(default_factory=dict)
    satisfaction_by_category: dict[str, object] = Field(default_factory=dict)
    rankings: dict[str, object] = Field(default_factory=dict)
    complaints_by_status: dict[str, int] = Field(default_factory=dict)
    checks: list[Check] = Field(default_factory=list)
    figures: dict[str, object] = Field(default_factory=dict)
    """Events per second, each service's CPU and memory, and the like."""

    @property
    def balanced(self) -> bool:
        return all(check.ok for check in self.checks)

    def save(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> DayRecord:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))
