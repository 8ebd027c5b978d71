"""The parking service's metrics (DESIGN §9). Counters and histograms are counted where things
happen; state gauges are read from MongoDB before each scrape, so several instances agree.

Every label set a counter or histogram can have is created at 0 before anything is counted: a
series that appears only at its first use has no value on a dashboard until then (a missed round, a
departure with no arrival may not happen for days), and Prometheus sees no increase in its first
value."""

from __future__ import annotations

from typing import TYPE_CHECKING, get_args

from prometheus_client import Counter, Gauge, Histogram

from goldenkey.contracts.vocabulary import IncidentKind, VehicleSource
from goldenkey.kit.metrics import Metrics

if TYPE_CHECKING:
    from goldenkey.parking.service import ParkingService

KINDS: tuple[IncidentKind, ...] = get_args(IncidentKind)
SOURCES: tuple[VehicleSource, ...] = get_args(VehicleSource)
INCIDENT_BUCKETS = (30, 60, 120, 180, 300, 600, 900, 1800, 3600, 7200)
ROUND_STATES = ("planned", "in_progress", "completed", "incomplete", "missed")


class ParkingMetrics:
    def __init__(self, metrics: Metrics) -> None:
        registry = metrics.registry
        self.arrivals = Counter(
            "goldenkey_vehicle_arrivals_total", "Cars that entered the lot", ["source"], registry=registry
        )
        self.departures = Counter(
            "goldenkey_vehicle_departures_total",
            "Cars that left the lot; matched=false when no arrival was recorded for them",
            ["source", "matched"],
            registry=registry,
        )
        self.incidents = Counter(
            "goldenkey_incidents_reported_total", "Problems guards reported on parked cars", ["kind"], registry=registry
        )
        self.escalations = Counter(
            "goldenkey_incidents_escalated_total",
            "Incidents whose owner was not notified within 5 minutes",
            ["kind"],
            registry=registry,
        )
        self.notify = Histogram(
            "goldenkey_incident_notify_seconds",
            "From a guard's report to the owner's page",
            ["kind"],
            buckets=INCIDENT_BUCKETS,
            registry=registry,
        )
        self.resolve = Histogram(
            "goldenkey_incident_resolve_seconds",
            "From a guard's report to the incident's resolution",
            ["kind"],
            buckets=INCIDENT_BUCKETS,
            registry=registry,
        )
        self.patrols_missed = Counter(
            "goldenkey_patrols_missed_total",
            "Scheduled patrol rounds not started within 5 minutes of their time",
            registry=registry,
        )
        self.patrols_completed = Counter(
            "goldenkey_patrols_completed_total",
            "Patrol rounds finished; complete=false when checkpoints were not scanned",
            ["complete"],
            registry=registry,
        )
        for source in SOURCES:
            self.arrivals.labels(source)
            for matched in ("true", "false"):
                self.departures.labels(source, matched)
        for kind in KINDS:
            for counted in (self.incidents, self.escalations, self.notify, self.resolve):
                counted.labels(kind)
        for complete in ("true", "false"):
            self.patrols_completed.labels(complete)
        self.occupied = Gauge("goldenkey_parking_occupied", "Cars in the lot", registry=registry)
        self.capacity = Gauge("goldenkey_parking_capacity", "Spaces in the lot", registry=registry)
        self.full = Gauge("goldenkey_parking_full", "1 while the lot is announced full (lot.full)", registry=registry)
        self.zone_occupied = Gauge(
            "goldenkey_parking_zone_occupied", "Cars in a zone of the lot", ["zone"], registry=registry
        )
        self.zone_capacity = Gauge(
            "goldenkey_parking_zone_capacity", "Spaces in a zone of the lot", ["zone"], registry=registry
        )
        self.incidents_open = Gauge(
            "goldenkey_incidents_open", "Incidents on parked cars not yet resolved", ["kind"], registry=registry
        )
        self.unnotified_oldest = Gauge(
            "goldenkey_incident_unnotified_oldest_seconds",
            "Age of the oldest open incident nobody has taken in hand: its owner not paged, not acknowledged "
            "(0 when there is none)",
            registry=registry,
        )
        self.rounds = Gauge(
            "goldenkey_patrol_rounds", "Today's scheduled patrol rounds, by state", ["state"], registry=registry
        )

    async def refresh(self, parking: ParkingService) -> None:
        """Set the state gauges from the database."""
        store, at = parking.store, parking.clock.now()
        lot = await store.lot()
        if lot is not None:
            self.occupied.set(lot.occupied)
            self.capacity.set(lot.capacity)
            self.full.set(1 if lot.full else 0)
            occupied = lot.occupied_by_zone()
            for zone in lot.plan.zones:
                self.zone_occupied.labels(zone.zone_id).set(occupied.get(zone.zone_id, 0))
                self.zone_capacity.labels(zone.zone_id).set(zone.spaces)
        open_incidents = await store.open_incidents()
        for kind in KINDS:
            self.incidents_open.labels(kind).set(sum(1 for i in open_incidents if i.kind == kind))
        waiting = [i.reported_at for i in open_incidents if i.awaits_someone]
        self.unnotified_oldest.set(max(((at - t).total_seconds() for t in waiting), default=0.0))
        states = await parking.round_states(at)
        for state in ROUND_STATES:
            self.rounds.labels(state).set(states.get(state, 0))
