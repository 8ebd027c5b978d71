"""The service kit: the one place for each mechanism every Golden Key Hall service shares."""

from goldenkey.kit.aggregate import Aggregate, AlreadyExists, ConcurrencyError, NotFound, Repository
from goldenkey.kit.app import ServiceKit, serve
from goldenkey.kit.auth import Principal, require
from goldenkey.kit.clock import BusinessCalendar, BusinessHours, Clock, ManualClock, SimulatedClock, SystemClock
from goldenkey.kit.errors import Conflict, DomainError, ErrorBody, Invalid, Missing, error_responses
from goldenkey.kit.http import NewId, creation_id
from goldenkey.kit.mongo import Index
from goldenkey.kit.settings import KitSettings

__all__ = [
    "Aggregate",
    "AlreadyExists",
    "BusinessCalendar",
    "BusinessHours",
    "Clock",
    "ConcurrencyError",
    "Conflict",
    "DomainError",
    "ErrorBody",
    "Index",
    "Invalid",
    "KitSettings",
    "ManualClock",
    "Missing",
    "NewId",
    "NotFound",
    "Principal",
    "Repository",
    "ServiceKit",
    "SimulatedClock",
    "SystemClock",
    "creation_id",
    "error_responses",
    "require",
    "serve",
]
