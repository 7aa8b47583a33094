"""The one configuration object.

Settings come, in increasing priority, from defaults, an optional TOML file
(``--config FILE`` or ``ORCH_CONFIG``) and environment variables ``ORCH_<FIELD>``
(upper-case field name, e.g. ``ORCH_BOOTSTRAP_SERVERS``, ``ORCH_PARTITIONS``).
docs/configuration.md lists every field.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from orchestrator.contracts.events import EventLimits
from orchestrator.exceptions import ConfigError

__all__ = [
    "ENV_PREFIX",
    "STAGES",
    "DeliveryFailpoint",
    "Settings",
    "TopicNames",
    "load_settings",
    "secret_list",
]

ENV_PREFIX = "ORCH_"
STAGES = ("ingest", "identify", "customer")
"""The worker's stages, in the order events go through them (docs/runtime.md)."""


@dataclass(frozen=True, slots=True)
class DeliveryFailpoint:
    """Crash tests only (``failpoint = "deliver:<topic part>:<n>:<k>"``): at its ``n``-th batch delivery
    that writes to a topic whose name contains ``topic_part`` and holds more than ``keep`` record
    batches, the worker sends the first ``keep``, waits for the broker's acknowledgement, and kills
    itself with SIGKILL: a kill -9 in the middle of a batch (docs/runtime.md)."""

    topic_part: str
    nth: int
    keep: int

    @classmethod
    def parse(cls, text: str) -> DeliveryFailpoint:
        parts = text.split(":")
        if len(parts) != 4 or parts[0] != "deliver" or not parts[1]:
            raise ValueError(f"{text!r}: expected deliver:<topic part>:<n>:<k>")
        try:
            nth, keep = int(parts[2]), int(parts[3])
        except ValueError:
            raise ValueError(f"{text!r}: <n> and <k> must be whole numbers") from None
        if nth < 1 or keep < 0:
            raise ValueError(f"{text!r}: <n> must be at least 1 and <k> at least 0")
        return cls(parts[1], nth, keep)


class TopicNames(BaseModel):
    """Names of every topic the system uses."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    raw_events: str = "orch.events.raw"
    resolved_events: str = "orch.events.resolved"
    identify: str = "orch.events.identify"
    claims: str = "orch.identity.claims"
    dead_letter: str = "orch.events.dead-letter"
    journeys: str = "orch.journeys"
    timers: str = "orch.timers"
    decisions: str = "orch.decisions"
    action_email: str = "orch.actions.email"
    action_sms: str = "orch.actions.sms"
    action_push: str = "orch.actions.push"
    connector_marks: str = "orch.connector.marks"

    def action_topic(self, channel: str) -> str:
        """The topic that carries actions of ``channel`` (email, sms, push)."""
        try:
            return {"email": self.action_email, "sms": self.action_sms, "push": self.action_push}[channel]
        except KeyError:
            raise ConfigError(f"no action topic for channel {channel!r}") from None


class Settings(BaseModel):
    """Everything the orchestrator's processes can be configured with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    app_id: str = Field("journey-orchestrator", description="Faust app id: consumer group and table prefix.")
    bootstrap_servers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = Field(None, description="SASL password (never logged).")
    ssl_cafile: str | None = Field(None, description="CA bundle (PEM) that signed the brokers' certificates.")
    ssl_certfile: str | None = Field(None, description="Client certificate (PEM), when brokers ask for one.")
    ssl_keyfile: str | None = Field(None, description="Private key (PEM) of the client certificate.")
    ssl_key_password: SecretStr | None = Field(None, description="Password of ssl_keyfile, if encrypted.")
    ssl_check_hostname: bool = Field(True, description="Check that the broker's certificate names its host.")
    partitions: int = Field(
        6, ge=1, description="Partitions of every customer-keyed topic; cannot change without re-keying."
    )
    replication_factor: int = Field(1, ge=1)
    topics: TopicNames = Field(default_factory=TopicNames)
    store: str = Field(
        "rocksdb://", description="Faust table store: rocksdb:// in production, memory:// in tests."
    )
    rocksdb_write_buffer_mb: int = Field(
        4,
        ge=1,
        le=1024,
        description="RocksDB memtable size of each table partition's database (MB): writes are held in "
        "memory until a memtable is full, then flushed to disk.",
    )
    rocksdb_write_buffers: int = Field(
        2,
        ge=2,
        le=8,
        description="Memtables a table partition's database may hold (one filling, the rest flushing).",
    )
    rocksdb_memory_mb: int = Field(
        64,
        ge=8,
        le=65536,
        description="All of the worker's RocksDB memory (MB): one read cache shared by every table "
        "partition's database, which also holds the files' index and bloom filters and is charged for the "
        "memtables (they are flushed once they pass half of it).",
    )
    data_dir: Path = Field(Path("var/worker"), description="Where the worker keeps RocksDB files.")
    web_host: str = Field(
        "127.0.0.1", description="Address the worker's HTTP server binds (loopback by default)."
    )
    api_token: SecretStr | None = Field(
        None,
        description="Bearer token of every HTTP route but /metrics, /healthz, /readyz (unset: 401).",
    )
    erasure_key: SecretStr | None = Field(
        None, description="Secret of the keyed hash of erased-identifier markers; 'new,old' while rotating."
    )
    erasure_compaction_hours: int = Field(
        24,
        ge=1,
        description="How long an erased customer's old values may stay readable in a changelog.",
    )
    web_port: int = Field(6066, ge=0, le=65535, description="Worker web port: /healthz, /readyz, /metrics.")
    dedupe_window_hours: int = Field(72, ge=1, description="How long a seen event_id is remembered.")
    history_window_days: int = Field(
        30, ge=1, description="How far back event history is kept for conditions."
    )
    lateness_hours: int = Field(
        24,
        ge=0,
        description="Older events (vs the partition clock) update the profile but start no journey; 0: off.",
    )
    max_event_bytes: int = Field(
        256 * 1024, ge=1024, le=384 * 1024, description="Largest raw event; larger ones are dead-lettered."
    )
    max_event_depth: int = Field(
        16, ge=2, le=64, description="Deepest nesting of objects/arrays in an event."
    )
    max_event_properties: int = Field(
        1000, ge=1, description="Most keys and array items under an event's properties (all levels)."
    )
    max_event_string_chars: int = Field(
        32 * 1024, ge=64, description="Longest string (or key) in an event, in characters."
    )
    stuck_after_s: float = Field(
        30.0, gt=0, description="A partition with lag and no progress this long is stuck: /readyz false."
    )
    timer_tick_s: float = Field(0.2, gt=0, description="How often a worker looks for due timers.")
    fetch_max_wait_ms: int = Field(
        100,
        ge=1,
        le=1500,
        description="How long the broker may hold a worker's fetch (for new records, or for fetch_min_kb "
        "of them); the consumer's other requests (commits, seeks, offsets) wait behind it.",
    )
    fetch_min_kb: int = Field(
        32,
        ge=0,
        le=1024,
        description="What the broker gathers for a worker's fetch before it answers (at most "
        "fetch_max_wait_ms later): live traffic is read in batches instead of one record at a time. 0: "
        "answer at once (lowest latency, most CPU per event).",
    )
    fast_path: bool = Field(
        False,
        description="Ingest sends an event whose identifiers all belong to one known customer straight to "
        "that customer's partition (docs/runtime.md, the fast path); false: every event goes through the "
        "identity writer. Every worker of a group must have the same value. Off by default until the "
        "kill and rebalance tests under live traffic run with it on (docs/runtime.md).",
    )
    watermark_idle_s: float = Field(
        120.0,
        ge=0,
        description="A raw partition whose ingest sends no watermark for this long is left out of the "
        "event-time order (its events then count as late) so that the others go on; longer than a "
        "takeover after a worker dies (session_timeout_s plus the table restore). 0: wait for it forever.",
    )
    identity_cache: int = Field(
        100_000,
        ge=1,
        le=100_000_000,
        description="Entries of each kind of the identity graph (customers, identifiers, aliases) the "
        "identify stage keeps in memory; the rest are read from the identities table when needed.",
    )
    timer_cache: int = Field(
        50_000,
        ge=1,
        le=100_000_000,
        description="Pending wake-ups a worker keeps in memory per customer partition (the earliest); "
        "the later ones stay in the wake-up table, read again when those are fired.",
    )
    malloc_trim_s: float = Field(
        30.0,
        ge=0,
        description="How often a worker gives memory it freed back to the system (glibc's malloc_trim, "
        "when over 16 MB are free): after a backlog the heap otherwise keeps its high-water mark. 0: never.",
    )
    commit_interval_s: float = Field(
        1.0, gt=0, description="How often a worker commits the offsets of the records it processed."
    )
    session_timeout_s: float = Field(
        30.0, gt=0, description="Kafka consumer session timeout; a dead worker's partitions move after it."
    )
    stages: str = Field(
        ",".join(STAGES),
        description="The stages this worker runs, comma-separated, of: ingest, identify, customer. "
        "Workers with different stages may share one app id: each stage's partitions go to the workers "
        "that run it.",
    )
    connector_web_host: str = Field(
        "127.0.0.1",
        description="Address a connector's HTTP server binds (/metrics, /healthz, unsubscribe links /u/).",
    )
    connector_web_port: int = Field(6070, ge=0, le=65535, description="A connector's HTTP port.")
    connector_public_url: str = Field(
        "",
        description="The base URL recipients reach a connector's HTTP server on (https://mail.example.com): "
        "the unsubscribe links of emails point to <connector_public_url>/u/<token>.",
    )
    unsubscribe_key: SecretStr | None = Field(
        None, description="Secret of the unsubscribe links' HMAC signature; 'new,old' while rotating."
    )
    email_tracking: bool = Field(
        True,
        description="Track opens and clicks of emails: a 1x1 image and signed redirects in the HTML part "
        "(signed with unsubscribe_key), reported as email.opened and email.clicked.",
    )
    connector_max_attempts: int = Field(
        8,
        ge=1,
        le=100,
        description="Attempts of one action a provider refuses for now before its dead letter.",
    )
    connector_backoff_s: float = Field(
        1.0, gt=0, description="Ceiling of the first retry's random wait; it doubles at each retry."
    )
    connector_backoff_max_s: float = Field(
        300.0, gt=0, description="Longest wait between two attempts (and while the provider is down)."
    )
    connector_send_timeout_s: float = Field(
        120.0, gt=0, description="Longest one provider call may take; past it the outcome is unknown."
    )
    connector_max_waiting: int = Field(
        1000,
        ge=1,
        description="Actions read and not done yet per partition before a connector stops fetching it.",
    )
    connector_marks_kept: int = Field(
        20, ge=1, le=1000, description="Action ids per customer and channel the dedupe marks remember."
    )
    connector_marks_days: int = Field(
        7, ge=1, description="Retention of the dedupe marks topic: how long a customer's marks are kept."
    )
    smtp_host: str = Field("127.0.0.1", description="The SMTP server (submission) of the email connector.")
    smtp_port: int = Field(587, ge=1, le=65535, description="Its port: 587 for STARTTLS, 465 for TLS.")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="starttls (upgrade after connecting), tls (TLS from the start) or none."
    )
    smtp_username: str | None = Field(None, description="SMTP AUTH user (none: no AUTH).")
    smtp_password: SecretStr | None = Field(None, description="SMTP AUTH password (never logged).")
    smtp_cafile: str | None = Field(None, description="CA bundle (PEM) of the SMTP server's certificate.")
    smtp_timeout_s: float = Field(30.0, gt=0, description="Timeout of each SMTP command.")
    smtp_connections: int = Field(4, ge=1, le=100, description="SMTP connections an email connector keeps.")
    email_from: str = Field("", description="The From address of emails: 'Shop <news@shop.example>'.")
    twilio_base_url: str = Field(
        "https://api.twilio.com",
        description="Twilio's REST API (the SMS connector); https, or http on loopback only (tests).",
    )
    twilio_account_sid: str = Field("", description="The Twilio account (AC...) the messages are sent from.")
    twilio_auth_token: SecretStr | None = Field(
        None,
        description="The account's auth token (never logged; 'new,old' while rotating: the first signs in); "
        "or an API key: twilio_api_key_sid/secret. The webhooks receiver checks Twilio's callback "
        "signatures with it (either token while rotating).",
    )
    twilio_api_key_sid: str | None = Field(None, description="A Twilio API key (SK...) instead of the token.")
    twilio_api_key_secret: SecretStr | None = Field(None, description="The API key's secret (never logged).")
    twilio_from: str = Field("", description="The sender of SMS: a Twilio number (+E.164) or a sender id.")
    twilio_messaging_service_sid: str = Field(
        "", description="A Messaging Service (MG...) that picks the sender, instead of twilio_from."
    )
    twilio_status_callback_url: str = Field(
        "",
        description="Where Twilio posts each message's status (the receipts endpoint); empty: no callbacks.",
    )
    twilio_timeout_s: float = Field(
        30.0, gt=0, description="Longest wait for Twilio to connect, and then for its answer."
    )
    fcm_base_url: str = Field(
        "https://fcm.googleapis.com",
        description="FCM's HTTP v1 API (the push connector); https, or http on loopback only (tests).",
    )
    fcm_credentials_file: Path | None = Field(
        None,
        description="The Google service-account JSON file whose key signs the push connector's tokens.",
    )
    fcm_project_id: str = Field("", description="The Firebase project (default: the credentials file's).")
    fcm_timeout_s: float = Field(
        30.0, gt=0, description="Longest wait for FCM or its token server to connect, then for the answer."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False
    failpoint: str = Field(
        "",
        description="Crash tests only, never in production: deliver:<topic part>:<n>:<k> kills the worker "
        "(SIGKILL) in the middle of its n-th batch delivery to a topic containing <topic part>, after k "
        "record batches are acknowledged. Empty: off.",
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name at least one host:port")
        return value

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, value: str) -> str:
        names = [part.strip() for part in value.split(",") if part.strip()]
        unknown = [name for name in names if name not in STAGES]
        if unknown or not names:
            raise ValueError(f"unknown stages {unknown}; choose one or more of {', '.join(STAGES)}")
        return ",".join(name for name in STAGES if name in names)

    @field_validator("failpoint")
    @classmethod
    def _failpoint_form(cls, value: str) -> str:
        if value:
            DeliveryFailpoint.parse(value)
        return value

    def rocksdb_options(self) -> dict[str, int]:
        """Faust's RocksDB store options (``app.Table(options=...)``) for the sizes above; the worker
        then gives every database one shared budget of ``rocksdb_memory_mb`` (``runtime/rocksdb_budget``;
        Faust's own defaults are 64 MB * 3 memtables + a 2 GB cache per database)."""
        mb = 1024 * 1024
        return {
            "write_buffer_size": self.rocksdb_write_buffer_mb * mb,
            "max_write_buffer_number": self.rocksdb_write_buffers,
            "block_cache_size": self.rocksdb_memory_mb * mb,
        }

    def delivery_failpoint(self) -> DeliveryFailpoint | None:
        """The crash tests' failpoint, if one is set."""
        return DeliveryFailpoint.parse(self.failpoint) if self.failpoint else None

    def runs(self, stage: str) -> bool:
        """Whether this worker runs ``stage`` (one of :data:`STAGES`)."""
        return stage in self.stages.split(",")

    def event_limits(self) -> EventLimits:
        """The bounds every raw event must respect (docs/contracts.md)."""
        return EventLimits(
            max_bytes=self.max_event_bytes,
            max_depth=self.max_event_depth,
            max_properties=self.max_event_properties,
            max_string_chars=self.max_event_string_chars,
        )


def secret_list(value: SecretStr | str | None) -> tuple[str, ...]:
    """The secrets a setting names: one, or several separated by commas while one is rotated
    (``api_token``, ``erasure_key``: the first is the current one)."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else (value or "")
    return tuple(part.strip() for part in text.split(",") if part.strip())


REMOVED_SETTINGS = {
    "rocksdb_block_cache_mb": "rocksdb_memory_mb (the whole of the worker's RocksDB memory, 2026-12-07)",
}
"""Settings of earlier versions, and what took their place: naming one is an error that says so (an
environment variable would otherwise be ignored without a word)."""


def _removed(named: dict[str, str], where: str) -> ConfigError:
    """The error for removed settings, ``named`` as the source names them."""
    return ConfigError(
        "\n".join(
            f"{where}: {given} is no longer a setting; use {REMOVED_SETTINGS[name]}"
            for given, name in named.items()
        )
    )


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    gone = [name for name in REMOVED_SETTINGS if ENV_PREFIX + name.upper() in environ]
    if gone:
        raise _removed({f"{ENV_PREFIX}{name.upper()}": name for name in gone}, "environment")
    out: dict[str, Any] = {}
    topic_fields = set(TopicNames.model_fields)
    for name in Settings.model_fields:
        if name == "topics":
            continue
        key = ENV_PREFIX + name.upper()
        if key in environ:
            out[name] = environ[key]
    topics = {
        t: environ[ENV_PREFIX + "TOPIC_" + t.upper()]
        for t in topic_fields
        if ENV_PREFIX + "TOPIC_" + t.upper() in environ
    }
    if topics:
        out["topics"] = topics
    return out


def load_settings(
    path: Path | None = None, environ: dict[str, str] | None = None, **overrides: Any
) -> Settings:
    """Build :class:`Settings` from a TOML file, the environment and explicit overrides.

    Raises :class:`~orchestrator.exceptions.ConfigError` naming the source and the field.
    """
    env = dict(os.environ if environ is None else environ)
    data: dict[str, Any] = {}
    file = path or (Path(env[ENV_PREFIX + "CONFIG"]) if env.get(ENV_PREFIX + "CONFIG") else None)
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{file}: config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        gone = [name for name in REMOVED_SETTINGS if name in data]
        if gone:
            raise _removed({name: name for name in gone}, str(file))
    env_data = _env_overrides(env)
    topics = {**data.get("topics", {}), **env_data.pop("topics", {})}
    merged = {**data, **env_data, **{k: v for k, v in overrides.items() if v is not None}}
    if topics:
        merged["topics"] = topics
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        where = str(file) if file else "environment"
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            env_name = ENV_PREFIX + field.upper().replace(".", "_")
            lines.append(f"{where}: field {field!r} (env {env_name}): {err['msg']}")
        raise ConfigError("\n".join(lines)) from None
