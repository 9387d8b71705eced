"""Scenario files: what a simulation does, read from TOML and validated by pydantic.

    name = "smoke"
    duration = 5            # seconds of arrivals, then a drain
    [patients]    count = 4
    [pharmacies]  count = 2
    [arrivals]    process = "poisson", rate = 4, ramp_up = 1
    [requests]    pharmacies = 3, choose = "first_accepted"   # ask 3 at once, take the first yes
    [pharmacy]    accept_ratio = 0.8, audio_share = 0.2, ws_share = 0.7
                  think_time = { distribution = "exponential", mean = 0.3 }
    [churn]       share = 0.2, mode = "reconnect", interval = 2, offline = [0.1, 0.5]
    [server]      max_connections_per_client = 0, rate_limit = false   # what it needs of --url

Every field has a bound, so a scenario cannot ask for an unbounded run. A bad file raises
`ScenarioError` whose message names the file and each bad field (``arrivals.rate: …``).
"""

from __future__ import annotations

import math
import random
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ScenarioError(ValueError):
    """A scenario file that cannot be read or does not validate."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- think-time distributions -------------------------------------------------------------------


class Constant(_Strict):
    distribution: Literal["constant"]
    value: float = Field(ge=0, le=600)

    def sample(self, rng: random.Random) -> float:
        return self.value


class Uniform(_Strict):
    distribution: Literal["uniform"]
    min: float = Field(ge=0, le=600)
    max: float = Field(ge=0, le=600)

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.max < self.min:
            raise ValueError("max must be >= min")
        return self

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.min, self.max)


class Exponential(_Strict):
    distribution: Literal["exponential"]
    mean: float = Field(gt=0, le=600)
    cap: float = Field(default=60.0, gt=0, le=600, description="longest think time drawn")

    def sample(self, rng: random.Random) -> float:
        return min(self.cap, rng.expovariate(1.0 / self.mean))


class LogNormal(_Strict):
    distribution: Literal["lognormal"]
    median: float = Field(gt=0, le=600)
    sigma: float = Field(default=0.5, gt=0, le=5)
    cap: float = Field(default=60.0, gt=0, le=600)

    def sample(self, rng: random.Random) -> float:
        return min(self.cap, rng.lognormvariate(math.log(self.median), self.sigma))


ThinkTime = Annotated[Constant | Uniform | Exponential | LogNormal, Field(discriminator="distribution")]


# --- sections ------------------------------------------------------------------------------------


class Population(_Strict):
    count: int = Field(ge=1, le=20_000)


class Arrivals(_Strict):
    """The open-loop arrival process of new requests, over all patients."""

    process: Literal["constant", "poisson"] = "poisson"
    rate: float = Field(gt=0, le=5_000, description="requests per second at full rate")
    ramp_up: float = Field(default=0.0, ge=0, le=3_600, description="seconds to reach `rate` linearly")
    max_requests: int = Field(default=100_000, ge=1, le=1_000_000)
    max_in_flight: int = Field(default=500, ge=1, le=10_000, description="POSTs open at once")

    def rate_at(self, elapsed: float) -> float:
        if self.ramp_up <= 0 or elapsed >= self.ramp_up:
            return self.rate
        return max(self.rate * elapsed / self.ramp_up, self.rate * 0.05)

    def gap(self, elapsed: float, rng: random.Random) -> float:
        rate = self.rate_at(elapsed)
        return rng.expovariate(rate) if self.process == "poisson" else 1.0 / rate


class Requests(_Strict):
    image_share: float = Field(default=0.5, ge=0, le=1, description="share sent with a PNG prescription")
    quantity_max: int = Field(default=10, ge=1, le=1_000)
    pharmacies: int = Field(
        default=1, ge=1, le=5, description="pharmacies each request is asked of at once (a group when > 1)"
    )
    choose: Literal["first_accepted", "none"] = Field(
        default="first_accepted",
        description="how the patient chooses among a group's answers: the first acceptance it hears of, or never",
    )


class PharmacyBehaviour(_Strict):
    think_time: ThinkTime = Exponential(distribution="exponential", mean=0.5)
    accept_ratio: float = Field(default=0.8, ge=0, le=1)
    audio_share: float = Field(default=0.1, ge=0, le=1, description="replies with audio (always REST)")
    ws_share: float = Field(default=0.7, ge=0, le=1, description="text replies sent over the WebSocket")
    max_concurrent_answers: int = Field(default=50, ge=1, le=1_000, description="per pharmacy")


class Churn(_Strict):
    """Clients that lose their connection and come back.

    ``reconnect``: the client closes its socket, stays offline for ``offline`` seconds and
    reconnects with ``?after=<last event_id>``. ``cut``: its traffic goes through a local TCP
    proxy that aborts its connections (REST and WebSocket) mid-stream; the client library's
    own reconnect-and-resume has to cope.
    """

    share: float = Field(default=0.0, ge=0, le=1)
    mode: Literal["reconnect", "cut"] = "reconnect"
    interval: float = Field(default=5.0, gt=0.05, le=3_600, description="mean seconds between drops")
    offline: tuple[float, float] = (0.1, 1.0)

    @model_validator(mode="after")
    def _offline_range(self) -> Churn:
        low, high = self.offline
        if not 0 <= low <= high <= 600:
            raise ValueError("offline must be [min, max] seconds with 0 <= min <= max <= 600")
        return self


class ServerNeeds(_Strict):
    """What the scenario needs of a server it runs against with ``--url``, past the limits of a
    default `medreq serve` (``--embedded`` starts one that meets them all). When such a server
    refuses it during setup, the run stops at once and says which flag lifts the limit."""

    max_connections_per_client: int | None = Field(
        default=None, ge=0, le=1_000_000, description="0: no cap; unset: the default (256) is enough"
    )
    rate_limit: bool = Field(default=True, description="false: needs `medreq serve --no-rate-limit`")


class Scenario(_Strict):
    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    duration: float = Field(gt=0, le=3_600, description="seconds of arrivals")
    drain_timeout: float = Field(default=30.0, gt=0, le=600, description="seconds to wait for stragglers")
    setup_timeout: float = Field(default=120.0, gt=0, le=1_800)
    setup_concurrency: int = Field(default=32, ge=1, le=500)
    seed: int | None = None
    target: str | None = Field(default=None, description="server URL, unless --url or --embedded")
    patients: Population
    pharmacies: Population
    arrivals: Arrivals
    requests: Requests = Requests()
    pharmacy: PharmacyBehaviour = PharmacyBehaviour()
    churn: Churn = Churn()
    server: ServerNeeds = ServerNeeds()

    @model_validator(mode="after")
    def _enough_pharmacies(self) -> Scenario:
        if self.requests.pharmacies > self.pharmacies.count:
            raise ValueError(
                f"requests.pharmacies ({self.requests.pharmacies}) is more than pharmacies.count "
                f"({self.pharmacies.count})"
            )
        return self

    @property
    def connections(self) -> int:
        return self.patients.count + self.pharmacies.count


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; `ScenarioError` with every problem otherwise."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"{path}: invalid scenario\n{describe(exc)}") from None


def describe(exc: ValidationError) -> str:
    """One ``  - field.path: message`` line per pydantic error."""
    lines = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"] if not _is_union_tag(part)) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        lines.append(f"  - {loc}: {message}")
    return "\n".join(lines)


def _is_union_tag(part: object) -> bool:
    return part in ("constant", "uniform", "exponential", "lognormal")
