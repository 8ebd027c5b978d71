"""Events the parking service emits: vehicles, the lot, patrols and incidents on parked cars.

Plates never travel raw: only `plate_hash` (to link a car to a ticket) and `plate_masked` (to show).
The owner is reached through their ticket, never through a phone number.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from goldenkey.contracts.envelope import EventData
from goldenkey.contracts.registry import event
from goldenkey.contracts.topics import PARKING_INCIDENTS, PARKING_VEHICLES
from goldenkey.contracts.vocabulary import (
    Count,
    EscalationReason,
    Id,
    IncidentKind,
    PlateHash,
    PlateMasked,
    Seconds,
    Text,
)

# --- parking.vehicles ------------------------------------------------------------------------------


@event("vehicle.arrived", topic=PARKING_VEHICLES, producer="parking", key="visit_id")
class VehicleArrived(EventData):
    """A car entered the lot (read by the camera, or typed in by a guard)."""

    visit_id: Id
    plate_hash: PlateHash
    plate_masked: PlateMasked
    arrived_at: AwareDatetime
    manual: bool = False
    """A guard typed the plate because the camera misread it."""
    occupied: Count | None = None
    """Cars in the lot after this arrival."""
    zone: Id | None = None
    """The zone of the lot it was counted in (accessible, EV…)."""
    ticket_id: Id | None = None
    """The owner's ticket, when one issued today carries the same plate hash."""


@event("vehicle.departed", topic=PARKING_VEHICLES, producer="parking", key="visit_id")
class VehicleDeparted(EventData):
    """A car left the lot; a departure without a recorded arrival is reported too, for reconciling."""

    visit_id: Id
    plate_hash: PlateHash
    plate_masked: PlateMasked
    departed_at: AwareDatetime
    arrived_at: AwareDatetime | None = None
    """Absent when no arrival was recorded for this car."""
    ticket_id: Id | None = None
    manual: bool = False
    occupied: Count | None = None
    unseen: bool = False
    """Nobody saw it leave: its visit was closed when its plate came in again, or when the lot found
    it no longer counted the car (`departed_at` is when that was noticed)."""


@event("vehicle.plate_corrected", topic=PARKING_VEHICLES, producer="parking", key="visit_id")
class VehiclePlateCorrected(EventData):
    """A guard corrected the plate the camera misread on a visit: its plate hash changes from here on."""

    visit_id: Id
    plate_hash: PlateHash
    plate_masked: PlateMasked
    previous_plate_hash: PlateHash
    previous_plate_masked: PlateMasked
    corrected_at: AwareDatetime
    guard_id: Id | None = None
    ticket_id: Id | None = None
    """The ticket the visit is linked to under the corrected plate, if any."""


@event("lot.full", topic=PARKING_VEHICLES, producer="parking", key="lot_id")
class LotFull(EventData):
    """The lot's occupancy reached its capacity."""

    lot_id: Id
    capacity: int = Field(ge=1)
    occupied: Count


@event("lot.available", topic=PARKING_VEHICLES, producer="parking", key="lot_id")
class LotAvailable(EventData):
    """A full lot has room again: its configured margin of free spaces, so the sign does not flap."""

    lot_id: Id
    capacity: int = Field(ge=1)
    occupied: Count


@event("patrol.completed", topic=PARKING_VEHICLES, producer="parking", key="patrol_id")
class PatrolCompleted(EventData):
    """A guard finished a patrol round; `complete` is false when checkpoints were not scanned."""

    patrol_id: Id
    guard_id: Id
    started_at: AwareDatetime
    finished_at: AwareDatetime
    complete: bool
    checkpoints_scanned: list[Id] = Field(default_factory=list)
    missing_checkpoints: list[Id] = Field(default_factory=list)
    round_id: Id | None = None
    """The scheduled round it was; absent for a round a guard walked outside the schedule."""
    scheduled_at: AwareDatetime | None = None
    late: bool = False
    """Started after its round had been reported missed."""


@event("patrol.missed", topic=PARKING_VEHICLES, producer="parking", key="patrol_id")
class PatrolMissed(EventData):
    """A scheduled patrol round was not started within 5 minutes of its time."""

    patrol_id: Id
    scheduled_at: AwareDatetime
    guard_id: Id | None = None
    round_id: Id | None = None


# --- parking.incidents -----------------------------------------------------------------------------


class _IncidentReport(EventData):
    """What a guard reported about a parked car."""

    incident_id: Id
    kind: IncidentKind
    space: Id | None = None
    plate_masked: PlateMasked | None = None
    plate_hash: PlateHash | None = None
    ticket_id: Id | None = None
    """The owner's ticket, when the car's visit is linked to one: the way to reach them."""
    visit_id: Id | None = None
    guard_id: Id | None = None
    reported_at: AwareDatetime | None = None
    note: Text | None = None


@event("tyre.alert", topic=PARKING_INCIDENTS, producer="parking")
class TyreAlert(_IncidentReport):
    """A guard found a parked car with a tyre going flat."""

    kind: Literal["flat_tyre"] = "flat_tyre"  # type: ignore[assignment]  # narrows the report's kind


@event("incident.reported", topic=PARKING_INCIDENTS, producer="parking")
class IncidentReported(_IncidentReport):
    """A guard reported any other problem on a parked car (lights on, window open, blocking…)."""


@event("owner.notified", topic=PARKING_INCIDENTS, producer="parking")
class OwnerNotified(EventData):
    """The car's owner was paged through their ticket (at their window or on the display)."""

    incident_id: Id
    ticket_id: Id
    window_id: Id | None = None
    notify_s: Seconds | None = None
    """From the report to the page."""


@event("incident.acknowledged", topic=PARKING_INCIDENTS, producer="parking")
class IncidentAcknowledged(EventData):
    """Someone took the incident in hand (the owner came, or a guard or concierge is on it)."""

    incident_id: Id
    ticket_id: Id | None = None
    guard_id: Id | None = None
    by_ops: bool = False
    """Ops took it over (after an escalation, typically), rather than a guard on the spot."""
    note: Text | None = None


@event("incident.resolved", topic=PARKING_INCIDENTS, producer="parking")
class IncidentResolved(EventData):
    """The problem on the car was dealt with."""

    incident_id: Id
    resolution: Text
    ticket_id: Id | None = None
    kind: IncidentKind | None = None
    assistance_id: Id | None = None
    """The concierge's `vehicle_help` request that resolved it, if any."""
    resolve_s: Seconds | None = None
    """From the report to the resolution."""
    guard_id: Id | None = None
    """The guard in charge: who resolved it, or who reported it when a concierge resolved it."""


@event("incident.escalated", topic=PARKING_INCIDENTS, producer="parking")
class IncidentEscalated(EventData):
    """The owner was not notified within 5 minutes of the report."""

    incident_id: Id
    kind: IncidentKind
    waited_s: Seconds
    ticket_id: Id | None = None
    reason: EscalationReason | None = None
    """`no_ticket`: no ticket is linked to the car, so nobody could be paged; `not_paged`: a ticket is
    linked, but the queue did not page it (the visit may have ended)."""
