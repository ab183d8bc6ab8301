"""The one validated configuration model, and its sources: YAML file < environment < flags."""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from exporter.timestamps import compile_name_format
from exporter.units import (
    format_duration,
    format_fraction,
    format_size,
    parse_duration,
    parse_fraction,
    parse_size,
    printable,
)

ENV_PREFIX = "BACKUP_MONITOR_"

Duration = Annotated[
    float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]


Size = Annotated[int, BeforeValidator(parse_size), PlainSerializer(format_size, return_type=str)]
Fraction = Annotated[
    float, BeforeValidator(parse_fraction), PlainSerializer(format_fraction, return_type=str)
]


def _within(low: float, high: float, fmt: Callable[[float], str]) -> AfterValidator:
    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"must be between {fmt(low)} and {fmt(high)}")
        return value

    return AfterValidator(check)


DAY = 86400.0
YEAR = 365 * DAY


def DurationIn(low: float, high: float) -> Any:
    """A duration bounded on both sides: a zero interval is a busy loop, a huge one an
    overflow in the threads that wait for it."""
    return Annotated[Duration, _within(low, high, format_duration)]


def SizeIn(low: int, high: int) -> Any:
    return Annotated[Size, _within(low, high, format_size)]


# Intervals of loops that poll or retry, timeouts, and spans of backup history.
Interval = DurationIn(0.1, DAY)
Timeout = DurationIn(0.1, 3600.0)
Span = DurationIn(0.0, 100 * YEAR)
MAX_SIZE = 1024**5  # 1 PiB

# Files a backup tool is still writing, or that are not backups at all.
DEFAULT_EXCLUDES = [
    ".*", "*.tmp", "*.temp", "*.part", "*.partial", "*.lock", "*.swp", "*~",
    "*.sha256", "*.sha256sum", "SHA256SUMS*",
    # SQLite's own companions of a database being written (rollback journal, WAL):
    "*-journal", "*-wal", "*-shm",
]  # fmt: skip

# \Z, not $: "$" also matches before a trailing newline.
_NAME = re.compile(r"[A-Za-z0-9_.:-]+\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_RESERVED_LABELS = {"target", "check", "instance", "job", "mode", "result", "version"}


class ConfigError(Exception):
    """Bad configuration: the message is one line naming the key and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class S3Config(_Strict):
    """How an ``s3://`` target is listed (the options of object storage only)."""

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    list_interval: Interval = 300.0  # there are no events for a bucket
    timeout: Timeout = 30.0


class VerifyConfig(_Strict):
    """Content checks of each newest complete backup (see verify.py)."""

    kind: Literal["auto", "sqlite", "archive", "checksum", "download", "none"] = "auto"
    query: str | None = None  # SQLite: a query that must return a row
    sqlite_check: Literal["integrity_check", "quick_check"] = "integrity_check"
    timeout: DurationIn(1.0, DAY) = 60.0
    # Decompressed bytes a verification reads at most (a gzip bomb stops here).
    max_bytes: SizeIn(1024**2, MAX_SIZE) = 64 * 1024**3
    # kind download (s3:// targets): larger objects are not downloaded.
    max_download: SizeIn(0, MAX_SIZE) = 1024**3

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `verify: sqlite` is `verify: {kind: sqlite}`.
        return {"kind": data} if isinstance(data, str) else data


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    return value


Regex = Annotated[str, Field(min_length=1, max_length=1000), AfterValidator(_check_regex)]


class JobLogConfig(_Strict):
    """A log the backup job writes: its matching lines are the job's run records."""

    path: str
    success: Regex | None = None
    failure: Regex | None = None
    start: Regex | None = None

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return str(_absolute_path(value))

    @model_validator(mode="after")
    def _needs_an_end(self) -> JobLogConfig:
        if self.success is None and self.failure is None:
            raise ValueError("job.log needs success or failure (a regular expression)")
        return self


class JobConfig(_Strict):
    """The backup job's own results: pings, the ``run`` wrapper, or its log."""

    # A run started and not ended after this long is a failure.
    max_runtime: DurationIn(1.0, 30 * DAY) = 6 * 3600.0
    # After a successful run, a new backup must appear within this.
    output_grace: DurationIn(0.0, DAY) = 60.0
    # When set, pings must carry it (?token= or Authorization: Bearer).
    token: str | None = Field(default=None, min_length=8, max_length=512)
    log: JobLogConfig | None = None


class DrillQuery(_Strict):
    """A query a restored backup must answer: bounds on the first column of its first
    row, or a least number of rows."""

    sql: str = Field(min_length=1, max_length=10_000)
    min: float | None = None
    max: float | None = None
    rows_min: int | None = Field(default=None, ge=1, le=10**9)


def _absolute_path(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.strip():
        raise ValueError("must not be empty")
    return os.path.abspath(os.path.expanduser(value))


class DrillConfig(_Strict):
    """Restore drills: restore a backup for real on a schedule (see verify/drill.py)."""

    schedule: str = "0 4 1 * *"  # monthly, the 1st at 04:00
    # newest: the newest complete backup; random: also one older backup, chosen at random.
    pick: list[Literal["newest", "random"]] = Field(default_factory=lambda: ["newest"])
    scratch_dir: str | None = None  # None: drills/<target> under the state directory
    queries: list[DrillQuery] = Field(default_factory=list, max_length=100)
    live: str | None = None  # the live SQLite database, opened read-only to compare
    min_ratio: Fraction = 0.9
    timeout: DurationIn(1.0, DAY) = 600.0

    @field_validator("pick", mode="before")
    @classmethod
    def _one_pick(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError(f"invalid cron expression {value!r} (e.g. '0 4 1 * *')")
        return value

    @field_validator("scratch_dir", "live")
    @classmethod
    def _paths(cls, value: str | None) -> str | None:
        return _absolute_path(value)

    @field_validator("min_ratio")
    @classmethod
    def _ratio(cls, value: float) -> float:
        if value > 1:
            raise ValueError("must be at most 100%")
        return value

    @model_validator(mode="after")
    def _newest_first(self) -> DrillConfig:
        if "newest" not in self.pick:
            raise ValueError("pick must include newest (random adds an older backup)")
        return self


def _file_mode(value: Any) -> Any:
    """'0600' (octal, as chmod takes it); an int is taken as YAML read it (0600 unquoted
    is octal there)."""
    if isinstance(value, str):
        text = value.strip()
        if not text or any(ch not in "01234567" for ch in text.removeprefix("0o")):
            raise ValueError(f"not an octal mode: {value!r} (quote it: '0600')")
        value = int(text.removeprefix("0o"), 8)
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= 0o7777:
        raise ValueError("must be a mode between '0000' and '7777'")
    return value


Mode = Annotated[
    int,
    BeforeValidator(_file_mode),
    PlainSerializer(lambda mode: f"{mode:04o}", return_type=str),
]


def _account(value: Any, lookup: Callable[[str], Any], what: str) -> int | None:
    """A user or group given by name or id, as its id (a name must exist here)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 2**32:
            raise ValueError(f"invalid {what} id {value}")
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    try:
        return int(lookup(str(value))[2])
    except KeyError:
        raise ValueError(f"unknown {what} {value!r}") from None


# The flat keys of targets before s3: and verify: existed, and where they are now.
MOVED_KEYS = {
    "endpoint_url": "s3.endpoint_url",
    "region": "s3.region",
    "profile": "s3.profile",
    "poll_interval": "s3.list_interval",
    "remote_timeout": "s3.timeout",
    "verify_query": "verify.query",
    "sqlite_check": "verify.sqlite_check",
    "verify_timeout": "verify.timeout",
    "verify_max_bytes": "verify.max_bytes",
    "verify_max_size": "verify.max_download",
}


class TargetConfig(_Strict):
    name: str = ""
    path: str
    patterns: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    exclude: list[str] = Field(default_factory=lambda: list(DEFAULT_EXCLUDES))
    recursive: bool = False
    # None: 24h without a schedule, no age check with one (the schedule check replaces it).
    max_age: DurationIn(1.0, 100 * YEAR) | None = None
    min_size: SizeIn(0, MAX_SIZE) = 1024
    min_count: int | None = Field(default=None, ge=0, le=10**9)
    max_count: int | None = Field(default=None, ge=0, le=10**9)
    labels: dict[str, str] = Field(default_factory=dict)
    notify_tags: list[str] = Field(default_factory=list)
    timestamp: Literal["mtime", "name"] = "mtime"
    name_format: str | None = None
    timezone: str | None = None
    schedule: str | None = None
    grace: Span = 3600.0
    gaps: bool | None = None  # None: on with a schedule, off without
    gap_window: DurationIn(60.0, 100 * YEAR) = 7 * 86400.0
    max_missing_runs: int = Field(default=0, ge=0, le=10**6)
    size_history: int = Field(default=7, ge=0, le=1000)
    max_shrink: Fraction | None = 0.5
    max_growth: Fraction | None = None
    retention: DurationIn(60.0, 100 * YEAR) | None = None
    retention_grace: Span = 86400.0
    # A backup is complete once unchanged for ``settle``; one still changing after
    # ``max_write_time`` is stuck.
    settle: DurationIn(0.0, DAY) = 30.0
    # None: the top-level watch_mode (auto: polling on network and FUSE filesystems).
    watch_mode: Literal["auto", "inotify", "polling"] | None = None
    max_write_time: DurationIn(1.0, 30 * DAY) = 6 * 3600.0
    mirror_of: str | None = None
    mirror_lag: Span = 7200.0
    s3: S3Config | None = None  # object storage (s3:// paths) only
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    job: JobConfig | None = None  # present: the job's runs are tracked (pings, run, log)
    drill: DrillConfig | None = None  # present: restore drills on a schedule
    # Capacity: the target's filesystem must keep this much free, or room for this many
    # more backups of the expected size.
    min_free: SizeIn(0, MAX_SIZE) | None = None
    min_free_runs: float | None = Field(default=None, ge=0, le=10**6)
    # Permissions: the most a backup file or directory may allow, and who owns them.
    file_mode: Mode | None = None
    dir_mode: Mode | None = None
    owner: int | None = None
    group: int | None = None
    # Encryption: required makes a plaintext newest backup a failure.
    encryption: Literal["none", "required"] = "none"
    decrypt_identity: str | None = None  # an age identity file: verify inside the envelope

    @field_validator("owner", mode="before")
    @classmethod
    def _owner(cls, value: Any) -> int | None:
        return _account(value, pwd.getpwnam, "user")

    @field_validator("group", mode="before")
    @classmethod
    def _group(cls, value: Any) -> int | None:
        return _account(value, grp.getgrnam, "group")

    @field_validator("decrypt_identity")
    @classmethod
    def _identity_path(cls, value: str | None) -> str | None:
        return _absolute_path(value)

    @field_validator("job", "drill", mode="before")
    @classmethod
    def _switched_on(cls, value: Any) -> Any:
        # `job:` with nothing under it (YAML null), or `job: true`, turns it on with the
        # defaults; `job: false` is the same as leaving it out. Likewise `drill:`.
        if value is None or value is True:
            return {}
        return None if value is False else value

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        """Keys of the flat layout before ``s3:`` and ``verify:``: say where they went."""
        if isinstance(data, dict):
            for key, place in MOVED_KEYS.items():
                if key in data:
                    raise ValueError(f"{key} is now {place}")
        return data

    @property
    def effective_max_age(self) -> float | None:
        if self.max_age is not None:
            return self.max_age
        return None if self.schedule else 86400.0

    @property
    def gaps_enabled(self) -> bool:
        return self.gaps if self.gaps is not None else self.schedule is not None

    @property
    def needs_history(self) -> bool:
        """Whether a check looks past the newest backup (gaps, shrink, growth, retention,
        mirror: the checks marked needs_history in the table of checks)."""
        return bool(
            self.gaps_enabled
            or (self.size_history and (self.max_shrink is not None or self.max_growth is not None))
            or self.retention is not None
            or self.mirror_of is not None
        )

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"unknown time zone {value!r} (use e.g. Europe/Berlin, UTC)"
                ) from None
        return value

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"invalid cron expression {value!r} (e.g. '0 2 * * *')")
        return value

    @field_validator("max_shrink")
    @classmethod
    def _check_shrink(cls, value: float | None) -> float | None:
        if value is not None and value > 1:
            raise ValueError("must be at most 100%")
        return value

    @model_validator(mode="after")
    def _check_applies(self) -> TargetConfig:
        """An option given where it cannot apply is an error, not silently ignored."""
        if self.s3 is not None and not self.remote:
            raise ValueError("s3: applies to s3:// paths only")
        if self.verify.kind == "download" and not self.remote:
            raise ValueError("verify.kind download applies to s3:// paths only")
        if self.remote and self.watch_mode is not None:
            raise ValueError("watch_mode applies to directories, not s3:// paths")
        if self.remote and self.drill is not None:
            raise ValueError("drill applies to directories, not s3:// paths")
        if self.remote and self.encryption != "none":
            raise ValueError("encryption applies to directories, not s3:// paths")
        local_only = ("min_free", "min_free_runs", "file_mode", "dir_mode", "owner", "group")
        for key in local_only:
            if self.remote and getattr(self, key) is not None:
                raise ValueError(f"{key} applies to directories, not s3:// paths")
        return self

    @model_validator(mode="after")
    def _check_timestamp(self) -> TargetConfig:
        if self.timestamp == "name":
            if not self.name_format:
                raise ValueError("timestamp: name needs name_format, e.g. backup-%Y-%m-%d-%H-%M-%S")
            compile_name_format(self.name_format)
        if (
            self.min_count is not None
            and self.max_count is not None
            and self.max_count < self.min_count
        ):
            raise ValueError("max_count is below min_count")
        return self

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name") and data.get("path"):
            data = {**data, "name": Path(str(data["path"]).rstrip("/")).name or "root"}
        return data

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"invalid target name {value!r} (letters, digits, _ . : - only)")
        return value

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("path must not be empty")
        if value.startswith("s3://"):
            if len(value) <= len("s3://") or value[5] == "/":
                raise ValueError("an s3:// path needs a bucket: s3://bucket/prefix/")
            return value
        if "://" in value:
            raise ValueError(f"unsupported URL scheme in {value!r} (a directory or s3://)")
        return os.path.abspath(os.path.expanduser(value))

    @property
    def remote(self) -> bool:
        return self.path.startswith("s3://")

    @property
    def storage(self) -> S3Config:
        """The object-storage options (their defaults where ``s3:`` is not given)."""
        return self.s3 or S3Config()

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _LABEL.match(key) or key.startswith("__"):
                raise ValueError(f"invalid label name {key!r}")
            if key in _RESERVED_LABELS:
                raise ValueError(f"label name {key!r} is reserved by backup-monitor")
        return value


DEFAULT_TITLE = "[{status}] {summary}: {target}"
DEFAULT_BODY = """{reason}
{details}
Target:    {target}
Host:      {host}
Directory: {path}
Newest:    {newest}
Age:       {age} (max {max_age})
Size:      {size} (min {min_size})
Count:     {count}
Since:     {since}
Checked:   {time}
"""
# Fields a template may use; a template naming any other is a config error.
TEMPLATE_FIELDS = (
    "status", "summary", "target", "check", "reason", "details", "host", "path", "newest",
    "age", "max_age", "size", "min_size", "count", "since", "time",
)  # fmt: skip


def _check_template(value: str) -> str:
    try:
        value.format(**dict.fromkeys(TEMPLATE_FIELDS, ""))
    except (KeyError, IndexError, ValueError) as exc:
        allowed = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
        raise ValueError(f"bad template field {exc} (allowed: {allowed})") from None
    return value


Template = Annotated[str, AfterValidator(_check_template)]


class NotifyUrl(_Strict):
    url: str
    tags: list[str] = Field(default_factory=list)


class HeartbeatConfig(_Strict):
    url: str
    interval: DurationIn(1.0, DAY) = 60.0
    timeout: Timeout = 10.0

    @field_validator("url")
    @classmethod
    def _http_only(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


def split_urls(text: str) -> list[Any]:
    """URLs from one string: a YAML/JSON list (``[a, b]``), or separated by white space or
    newlines. Never by commas: apprise URLs carry them (``mailto://...?to=a@x,b@y``)."""
    if text.lstrip().startswith("["):
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"not a valid list of URLs: {str(exc).splitlines()[0]}") from None
        if isinstance(loaded, list):
            return loaded
    return text.split()


class NotifyConfig(_Strict):
    urls: list[NotifyUrl] = Field(default_factory=list)
    config: str | None = None
    for_: DurationIn(0.0, 30 * DAY) = Field(default=0.0, alias="for")
    repeat_interval: DurationIn(60.0, 100 * YEAR) = 86400.0
    min_interval: DurationIn(0.0, DAY) = 60.0
    send_resolved: bool = True
    timeout: Timeout = 10.0
    retry_initial: Timeout = 2.0
    retry_max: DurationIn(0.1, DAY) = 300.0
    # /healthz is degraded once a notification has waited longer than this.
    max_queue_age: DurationIn(1.0, 30 * DAY) = 900.0
    title_template: Template = DEFAULT_TITLE
    body_template: Template = DEFAULT_BODY
    heartbeat: HeartbeatConfig | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("urls", mode="before")
    @classmethod
    def _plain_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = split_urls(value)
        if isinstance(value, list):
            return [{"url": v} if isinstance(v, str) else v for v in value]
        return value


class AlertmanagerAuth(_Strict):
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(max_length=4096)


class AlertmanagerConfig(_Strict):
    """Post the daemon's own alerts to an Alertmanager cluster (its API v2), as Prometheus
    does: every URL gets every alert, the cluster deduplicates."""

    urls: list[str] = Field(min_length=1, max_length=16)
    resend_interval: DurationIn(1.0, DAY) = 60.0
    timeout: Timeout = 10.0
    # Labels on every alert; `instance` defaults to the host name. Daemons that watch the
    # same backups (a shared NAS) must agree on them to be deduplicated.
    external_labels: dict[str, str] = Field(default_factory=dict)
    external_url: str | None = None  # base of generatorURL; default http://HOST:PORT/
    basic_auth: AlertmanagerAuth | None = None
    bearer_token: str | None = Field(default=None, max_length=4096)
    ca_file: str | None = None

    @field_validator("urls", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_urls(value) if isinstance(value, str) else value

    @field_validator("urls")
    @classmethod
    def _http(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError("each must be an http:// or https:// URL")
        return value

    @field_validator("external_labels")
    @classmethod
    def _label_names(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _LABEL.match(key) or key in ("alertname", "target", "check", "severity"):
                raise ValueError(f"invalid or reserved label name {key!r}")
        return value

    @model_validator(mode="after")
    def _one_auth(self) -> AlertmanagerConfig:
        if self.basic_auth is not None and self.bearer_token is not None:
            raise ValueError("basic_auth and bearer_token: one of them")
        return self


def default_state_dir() -> str:
    if os.geteuid() == 0:
        return "/var/lib/backup-monitor"
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "backup-monitor")


class Config(_Strict):
    listen: str = ":19117"
    metrics_path: str = "/metrics"
    web_config_file: str | None = None
    hide_paths: bool = False
    status_refresh: DurationIn(1.0, 3600.0) = 10.0
    rescan_interval: DurationIn(1.0, 30 * DAY) = 300.0
    poll_interval: Interval = 5.0
    retry_interval: Interval = 2.0
    watch_mode: Literal["auto", "inotify", "polling"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    namespace: str = "backup"
    verify_workers: int = Field(default=2, ge=1, le=16)
    state_dir: str = Field(default_factory=default_state_dir)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    alertmanager: AlertmanagerConfig | None = None
    targets: list[TargetConfig] = Field(default_factory=list)

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("metrics_path")
    @classmethod
    def _check_metrics_path(cls, value: str) -> str:
        if not value.startswith("/") or value in ("/", "/healthz"):
            raise ValueError("must start with / and not be / or /healthz")
        return value

    @field_validator("namespace")
    @classmethod
    def _check_namespace(cls, value: str) -> str:
        if not _LABEL.match(value):
            raise ValueError(f"invalid metric namespace {value!r}")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        seen: set[str] = set()
        for target in self.targets:
            if target.name in seen:
                raise ValueError(f"duplicate target name {target.name!r}")
            seen.add(target.name)
        for target in self.targets:
            if target.mirror_of is not None and target.mirror_of not in seen - {target.name}:
                raise ValueError(f"target {target.name!r}: mirror_of names no other target")
        return self


def parse_listen(value: str) -> tuple[str, int]:
    """``":19117"`` (all interfaces), ``"127.0.0.1:9"``, ``"[::1]:9"`` -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid listen address {value!r} (use HOST:PORT or :PORT)")
    return host.strip("[]"), int(port)


def parse_target_spec(spec: str) -> dict[str, str]:
    """``NAME=PATH`` or ``PATH`` (the name is then the directory's base name)."""
    name, sep, path = spec.partition("=")
    if sep and _NAME.match(name) and path:
        return {"name": name, "path": path}
    return {"path": spec}


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for field in Config.model_fields:
        value = environ.get(ENV_PREFIX + field.upper())
        if value is None or field in ("targets", "notify"):
            continue
        overrides[field] = value
    urls = environ.get(ENV_PREFIX + "NOTIFY_URLS")
    if urls:
        overrides["notify"] = {"urls": urls}
    targets = environ.get(ENV_PREFIX + "TARGETS")
    if targets:
        overrides["targets"] = [parse_target_spec(s) for s in targets.split(",") if s.strip()]
    return overrides


MAX_CONFIG_BYTES = 1 << 20


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                mark = key_node.start_mark
                raise ConfigError(
                    f"duplicate key {key!r} at line {mark.line + 1}, column {mark.column + 1}"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str) -> Any:
    """A YAML document, or ConfigError with one line saying what is wrong and where."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader
    except ConfigError as exc:
        raise ConfigError(f"invalid YAML in {source}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML in {source}{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"invalid YAML in {source}: nested too deeply") from None


def read_text(path: str, what: str = "config file") -> str:
    """A small UTF-8 text file, or ConfigError (unreadable, not a file, too big, not UTF-8)."""
    try:
        with open(path, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ConfigError(f"{what} {path} is not a regular file")
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{what} {path} is larger than 1 MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def _read_yaml(path: str) -> dict[str, Any]:
    data = parse_yaml(read_text(path), path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must contain a mapping at the top level")
    return data


def format_validation_error(error: ValidationError) -> str:
    """One line: the first problem, naming its key as ``targets[0].max_age``."""
    first = error.errors()[0]
    parts: list[str] = []
    for item in first["loc"]:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(str(item))
    # A key is the user's text: a newline or control character in it stays on this line.
    key = printable(".".join(parts)) or "config"
    message = printable(first["msg"].removeprefix("Value error, "))
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    more = len(error.errors()) - 1
    return f"{key}: {message}" + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def load_config(
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Merge the sources (later wins) and validate; raises ConfigError with one line."""
    data = _read_yaml(path) if path else {}
    env = _env_overrides(os.environ if environ is None else environ)
    if "notify" in env and isinstance(data.get("notify"), dict):
        env["notify"] = {**data["notify"], **env["notify"]}
    data.update(env)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def render_config(config: Config, redact: Callable[[str], str]) -> str:
    """The effective configuration as YAML, in the units a person writes.

    ``redact`` turns a notification URL into a form without its secrets.
    """
    data = config.model_dump(mode="json", by_alias=True)
    for target, dumped in zip(config.targets, data["targets"], strict=True):
        effective = target.effective_max_age
        dumped["max_age"] = format_duration(effective) if effective is not None else None
    for item in data["notify"]["urls"]:
        item["url"] = redact(item["url"])
    manager = data["alertmanager"]
    if manager:
        manager["urls"] = [redact(url) for url in manager["urls"]]
        if manager["basic_auth"]:
            manager["basic_auth"]["password"] = "<secret>"  # noqa: S105 - the placeholder
        if manager["bearer_token"]:
            manager["bearer_token"] = "<secret>"  # noqa: S105 - the placeholder
    for dumped in data["targets"]:
        if dumped["job"] and dumped["job"]["token"]:
            dumped["job"]["token"] = "<secret>"  # noqa: S105 - the placeholder shown instead
    if data["notify"]["heartbeat"]:
        data["notify"]["heartbeat"]["url"] = redact(data["notify"]["heartbeat"]["url"])
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
