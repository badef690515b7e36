"""Cases of a synthetic province, deterministic for a seed, with every date the oracle needs.

Each case is planned on the simulator's own working days (simulator.workdays): receipt inside
office hours, supplement rounds and verification pauses of whole working days (so the statutory due
instant moves by whole days), an ending early, on the due date before the due instant, or late by
whole days, apologies on time, late or missing, payments, digitization, ratings, transfers. The
`due_at` of a case is the simulator's own computation from the procedure's rules in config/.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from simulator.workdays import CLOSE, Workdays, at

# Agencies whose own calendar differs from the province's (office hours) are left out: the
# simulator's day-level arithmetic assumes the province's 8-hour day.
SKIP_AGENCIES = {"015.30.00.H99"}
WEEKDAY_LOAD = [1.3, 1.1, 1.0, 1.0, 0.8, 0.5, 0.3]  # Monday busiest; make-up Saturdays are quieter
MORNING = [time(7, 30), time(8, 0), time(8, 30), time(9, 0), time(9, 15), time(9, 45), time(10, 30), time(11, 0)]
AFTERNOON = [time(13, 45), time(14, 0), time(14, 30), time(15, 15), time(15, 30), time(16, 0), time(16, 30)]


@dataclass
class Procedure:
    code: str
    field_code: str
    durations: dict[str, dict[str, Any]]
    convention: str
    supplement_mode: str
    full_online_eligible: bool
    fee_bearing: bool
    cutoff: str | None
    non_counting_reasons: tuple[str, ...] = ()  # pauses not counted: only where the procedure opts in

    def duration(self, channel: str) -> dict[str, Any]:
        return self.durations.get(channel) or self.durations["direct"]


@dataclass
class Case:
    code: str
    agency: str
    level: str
    procedure: Procedure
    channel: str
    online_mode: str | None
    received_at: datetime
    due_at: datetime
    wire: str  # "ours" | "dvcqg"
    supplements: list[tuple[datetime, datetime]] = field(default_factory=list)  # answered rounds
    waiting_since: datetime | None = None  # a last request the citizen has not answered by the horizon
    pauses: list[tuple[datetime, datetime]] = field(default_factory=list)  # verification pauses
    transfers: list[tuple[datetime, str]] = field(default_factory=list)
    end_at: datetime | None = None
    end_type: str | None = None  # processed | withdrawn
    returned_at: datetime | None = None
    result_channel: str | None = None
    apology_at: datetime | None = None
    apology_on_time: bool | None = None
    paid_online: bool = False
    components_digitized: bool = False
    reused: bool = False
    rating: tuple[datetime, bool, bool] | None = None


def load_procedures(config_dir: Path) -> list[Procedure]:
    specs = json.loads((config_dir / "registry" / "procedures.json").read_text(encoding="utf-8"))
    return [
        Procedure(
            code=s["procedure_code"],
            field_code=s["field_code"],
            durations=s["durations"],
            convention=s.get("convention", "working_hours"),
            supplement_mode=s.get("supplement_mode", "pause"),
            full_online_eligible=bool(s.get("full_online_eligible")),
            fee_bearing=bool(s.get("fee_bearing")),
            cutoff=s.get("cutoff"),
            non_counting_reasons=tuple(s.get("non_counting_reasons") or ()),
        )
        for s in specs
        if not s.get("legs")
    ]


def load_agencies(config_dir: Path) -> list[dict[str, Any]]:
    specs = json.loads((config_dir / "registry" / "agencies.json").read_text(encoding="utf-8"))
    return [
        a
        for a in specs
        if a["parent_code"]
        and a["agency_code"] not in SKIP_AGENCIES
        and not a.get("calendar")
        and not a.get("valid_to")
    ]


class Province:
    def __init__(self, config_dir: Path, seed: int) -> None:
        self.days = Workdays(config_dir)
        self.procedures = load_procedures(config_dir)
        self.agencies = load_agencies(config_dir)
        self.rng = random.Random(seed)
        self.seed = seed
        self.serial = 0

    # -- the statutory due instant, by the simulator's own rules --------------------------------

    def due(self, procedure: Procedure, channel: str, start: datetime) -> datetime:
        spec = procedure.duration(channel)
        value, unit = int(spec["value"]), spec["unit"]
        day = start.date()
        if unit == "calendar_days":
            return at(self.days.next_working(day + timedelta(days=value)), CLOSE)
        if unit == "working_hours":
            whole, hours = divmod(value, 8)
            assert hours == 0, "the simulator plans whole-day durations only"
            value = whole
        if procedure.convention == "end_of_day" and unit == "working_days":
            return at(self.days.after(day, value), CLOSE)
        return at(self.days.after(day, value), start.time())

    # -- one case --------------------------------------------------------------------------------

    def receipt_time(self, procedure: Procedure) -> time:
        slots = MORNING + AFTERNOON
        if procedure.cutoff == "15:00":
            slots = [t for t in slots if t < time(14, 45)]
        elif procedure.cutoff == "1h_before_close":
            slots = [t for t in slots if t < time(15, 45)]
        return self.rng.choice(slots)

    def case(self, day: date, horizon: datetime) -> Case:
        rng = self.rng
        agency = rng.choice(self.agencies)
        procedure = rng.choice(self.procedures)
        channel = rng.choices(["online", "direct", "postal"], [0.45, 0.5, 0.05])[0]
        online_mode = None
        if channel == "online":
            online_mode = "full" if procedure.full_online_eligible and rng.random() < 0.6 else "partial"
        received = at(day, self.receipt_time(procedure))
        self.serial += 1
        code = f"{agency['agency_code']}-{day:%y%m%d}-S{self.seed % 1000:03d}{self.serial:06d}"
        wire = "dvcqg" if rng.random() < 0.5 else "ours"
        case = Case(
            code,
            agency["agency_code"],
            agency["level"],
            procedure,
            channel,
            online_mode,
            received,
            self.due(procedure, channel, received),
            wire,
        )
        self.plan_clock_stops(case, horizon)
        self.plan_ending(case, horizon)
        self.plan_extras(case, horizon)
        return case

    def plan_clock_stops(self, case: Case, horizon: datetime) -> None:
        """Supplement rounds (some cases twice) and verification pauses, each whole working days."""
        rng = self.rng
        rounds = rng.choices([0, 1, 2], [0.8, 0.15, 0.05])[0]
        restart = case.procedure.supplement_mode == "restart"
        cursor = case.received_at
        spec = case.procedure.duration(case.channel)
        raw_day = case.received_at.date() + timedelta(days=int(spec["value"]))  # calendar days, before moving
        for _ in range(rounds):
            lead = self.days.between(cursor.date(), case.due_at.date())
            if lead < 2:
                break
            ask_day = self.days.after(cursor.date(), rng.randint(1, lead - 1))
            ask = at(ask_day, time(9, 30))
            back = at(self.days.after(ask_day, rng.randint(1, 4)), time(9, 30))
            if back >= horizon:
                break
            case.supplements.append((ask, back))
            if restart:
                case.due_at = self.due(case.procedure, case.channel, back)
            elif spec["unit"] == "calendar_days":
                # the paused days lengthen the count; only the final day moves to a working day
                raw_day += back.date() - ask.date()
                case.due_at = at(self.days.next_working(raw_day), CLOSE)
            else:
                case.due_at = self._shift(case.due_at, self.days.between(ask.date(), back.date()))
            cursor = back
        if case.wire == "ours" and rng.random() < 0.04:
            # a request the citizen has not answered yet, sometimes after due: the case waits
            ask = at(self.days.after(cursor.date(), rng.randint(1, 12)), time(10, 15))
            if ask < horizon:
                case.waiting_since = ask
                return
        unit = case.procedure.duration(case.channel)["unit"]
        if case.wire == "ours" and rng.random() < 0.06 and unit != "calendar_days":
            lead = self.days.between(cursor.date(), case.due_at.date())
            if lead >= 2:
                start_day = self.days.after(cursor.date(), rng.randint(1, lead - 1))
                start = at(start_day, time(10, 0))
                end = at(self.days.after(start_day, rng.randint(1, 3)), time(10, 0))
                if end < horizon:
                    case.pauses.append((start, end))
                    if "verification" in case.procedure.non_counting_reasons:  # else the time counts
                        case.due_at = self._shift(case.due_at, self.days.between(start.date(), end.date()))

    def _shift(self, due: datetime, working_days: int) -> datetime:
        return at(self.days.after(due.date(), working_days), due.timetz().replace(tzinfo=None))

    def plan_ending(self, case: Case, horizon: datetime) -> None:
        if case.waiting_since is not None:
            return  # waiting for the citizen when the simulation stops
        rng = self.rng
        due_day = case.due_at.date()
        last_stop = max([b for _, b in case.supplements] + [e for _, e in case.pauses] + [case.received_at])
        kind = rng.choices(["early", "on_time", "late", "withdrawn"], [0.68, 0.1, 0.2, 0.02])[0]
        if kind == "on_time" and case.due_at.time() >= time(8, 30) and last_stop.date() < due_day:
            end = at(due_day, time(8, 0))
        elif kind == "late" or kind == "on_time":
            end = at(self.days.after(due_day, rng.choice([1, 1, 2, 3, 5, 8])), time(10, 0))
        else:
            room = self.days.between(last_stop.date(), due_day) - 1  # working days strictly between
            if room < 1:
                end = at(self.days.after(due_day, 1), time(10, 0))  # no room to be early: late
            else:
                end = at(self.days.after(last_stop.date(), rng.randint(1, room)), time(14, 0))
        if end >= horizon:
            return  # still pending when the simulation stops
        case.end_at = end
        case.end_type = "withdrawn" if kind == "withdrawn" else "processed"
        if case.end_type == "processed" and rng.random() < 0.8:
            returned = at(self.days.after(end.date(), rng.randint(0, 2)), time(16, 45))
            if returned < horizon:
                case.returned_at = returned
                case.result_channel = (
                    case.channel if case.wire == "dvcqg" else rng.choice(["direct", "online", "postal"])
                )

    def plan_extras(self, case: Case, horizon: datetime) -> None:
        rng = self.rng
        if case.waiting_since is not None:  # judged at the request (S-766DOC 2.1), late after two
            late = bool(case.supplements) or case.waiting_since > case.due_at
        else:
            late = case.end_at > case.due_at if case.end_at else case.due_at < horizon
        if late and case.wire == "ours":
            choice = rng.choices(["on_time", "late", "missing"], [0.5, 0.2, 0.3])[0]
            two_before = at(self.days.before(case.due_at.date(), 2), time(8, 0))
            if (
                choice == "on_time"
                and two_before > case.received_at
                and two_before
                > max([b for _, b in case.supplements] + [e for _, e in case.pauses] + [case.received_at])
            ):
                case.apology_at, case.apology_on_time = two_before, True
            elif choice in ("on_time", "late"):
                issued = at(self.days.after(case.due_at.date(), 1), time(9, 0))
                if issued < horizon and (case.end_at is None or issued < case.end_at):
                    case.apology_at, case.apology_on_time = issued, False
        case.components_digitized = rng.random() < 0.7
        case.reused = case.components_digitized and rng.random() < 0.3
        if case.procedure.fee_bearing:
            case.paid_online = rng.random() < (0.6 if case.channel == "online" else 0.15)
        if case.wire == "ours" and rng.random() < 0.05:
            target = rng.choice([a for a in self.agencies if a["agency_code"] != case.agency])
            moment = case.received_at + timedelta(hours=1)
            case.transfers.append((moment, target["agency_code"]))
        if case.wire == "ours" and case.end_at and rng.random() < 0.3:
            rated = case.returned_at or case.end_at
            rating_at = rated + timedelta(minutes=10)
            if rating_at < horizon:
                case.rating = (rating_at, rng.random() < 0.9, rng.random() < 0.03)

    # -- a province over a span of days ------------------------------------------------------------

    def cases(self, first: date, last: date, per_day: float, horizon: datetime) -> list[Case]:
        out: list[Case] = []
        for day in self.days.days(first, last):
            mean = per_day * WEEKDAY_LOAD[day.weekday()]
            count = max(0, round(self.rng.gauss(mean, mean**0.5)))
            out.extend(self.case(day, horizon) for _ in range(count))
        return out
