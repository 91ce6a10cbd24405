"""The effective configuration the daemon runs with: resolved, expanded, typed.

Built by `swapd.config.validate` from the file's `ConfigDoc`: macros expanded,
ports assigned, defaults resolved against their global values (ttl,
unloadTimeout, sendLoadingState, concurrencyLimit, logRingBytes), commands
parsed into argv, groups completed with `(default)`. Field names are the
Python (snake_case) spelling of the file's keys; `swapd config show --json`
prints this tree.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import field

from swapd.config.schema import (
    Capabilities,
    Compat,
    Filters,
    HooksDoc,
    HttpDoc,
    MatrixDoc,
    PeerDoc,
    ProfileDoc,
    SelectorDoc,
    Timeouts,
)

DEFAULT_GROUP = "(default)"
DEFAULT_CONCURRENCY = 10
RouterUse = Literal["group", "matrix", "budget"]

#: What swapd prints on its output and keeps in the combined log (`GET /logs`).
LogToStdout = Literal["proxy", "upstream", "both", "none"]


class _Frozen(msgspec.Struct, kw_only=True, frozen=True):
    pass


class KvCacheConfig(_Frozen, frozen=True, kw_only=True):
    """A model's effective `kvCache`: `dir` is None when it lives under the state directory."""

    persist: bool = False
    dir: str | None = None
    max_bytes: int = 20 << 30
    timeout: float = 30.0


class SleepCall(_Frozen, frozen=True, kw_only=True):
    """How to put a model to sleep or wake it: an HTTP call, or a command (`argv`)."""

    method: str = "POST"
    endpoint: str = ""
    argv: list[str] | None = None  # `${PID}` still in it, for the supervisor to fill


class SleepConfig(_Frozen, frozen=True, kw_only=True):
    sleep: SleepCall
    wake: SleepCall
    after: int = 0  # sleepAfter, seconds; 0 = never for idleness


class ModelConfig(_Frozen, frozen=True, kw_only=True):
    """One model, ready to supervise. `argv`/`stop_argv` are what gets executed."""

    id: str
    cmd: str
    cmd_stop: str
    argv: list[str]
    stop_argv: list[str] | None  # `${PID}` still in it, for the supervisor to fill
    port: int | None  # the ${PORT} allocated to it, if its cmd uses one
    proxy: str
    check_endpoint: str  # "none" disables health checking
    health_check_timeout: int
    ttl: int  # seconds; 0 = never unload (globalTTL already applied)
    unload_timeout: int  # seconds (the global value already applied)
    env: dict[str, str]
    aliases: list[str]  # explicit aliases, then setParamsByID automatic ones
    use_model_name: str
    unlisted: bool
    name: str
    description: str
    metadata: dict[str, Any]
    filters: Filters
    concurrency_limit: int  # effective: > 0
    send_loading_state: bool
    capabilities: Capabilities
    timeouts: Timeouts
    compat: Compat
    log_ring_bytes: int
    priority: int  # routing.scheduler.settings.fifo.priority
    # Declared footprint, in whole units (bytes for sizes written with a unit).
    resources: dict[str, int] = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)  # candidate devices, in the file's order
    # Declared footprint while asleep (`resources.asleep`), as `resources`.
    resources_asleep: dict[str, int] = field(default_factory=dict)
    kv_cache: KvCacheConfig = field(default_factory=KvCacheConfig)
    sleep: SleepConfig | None = None  # None: a model is stopped, never put to sleep


class GroupConfig(_Frozen, frozen=True, kw_only=True):
    swap: bool = True
    exclusive: bool = True
    persistent: bool = False
    members: list[str] = field(default_factory=list)


class FifoConfig(_Frozen, frozen=True, kw_only=True):
    priority: dict[str, int]  # keyed by model ID (alias keys resolved)
    max_wait: int  # seconds; 0 = unbounded
    keep_abandoned_loads: bool


class BudgetConfig(_Frozen, frozen=True, kw_only=True):
    """`routing.router.settings.budget`: how evictions are priced (a map: by model ID)."""

    costs: Literal["measured", "uniform"] | dict[str, float] = "measured"


class RoutingConfig(_Frozen, frozen=True, kw_only=True):
    use: RouterUse
    groups: dict[str, GroupConfig]  # with "(default)"; empty in matrix and budget modes
    matrix: MatrixDoc | None  # the block in use (matrix mode only)
    scheduler: Literal["fifo"]
    fifo: FifoConfig
    budget: BudgetConfig = field(default_factory=BudgetConfig)


class ResourcesConfig(_Frozen, frozen=True, kw_only=True):
    """`resources`: capacity per resource or device, in whole units, and `learn`."""

    capacity: dict[str, int]
    learn: bool = True
    devices: list[str] = field(default_factory=list)  # capacity keys some model runs on
    sized: list[str] = field(default_factory=list)  # resources written with a unit (bytes)


class PerformanceConfig(_Frozen, frozen=True, kw_only=True):
    disabled: bool
    every: float  # seconds


class ControlConfig(_Frozen, frozen=True, kw_only=True):
    group: str | None


class HistoryConfig(_Frozen, frozen=True, kw_only=True):
    enabled: bool = True
    retention_days: float = 7.0  # 0 = no age limit
    max_requests: int = 1_000_000  # 0 = no limit


class Config(_Frozen, frozen=True, kw_only=True):
    """The whole effective configuration."""

    models: dict[str, ModelConfig]
    health_check_timeout: int
    log_level: str
    log_time_format: str
    log_to_stdout: LogToStdout
    metrics_max_in_memory: int
    capture_buffer: int
    performance: PerformanceConfig
    global_ttl: int
    unload_timeout: int
    start_port: int
    send_loading_state: bool
    include_aliases_in_list: bool
    api_keys: list[str]
    preload: list[str]  # hooks.on_startup.preload, resolved to model IDs
    hooks: HooksDoc
    peers: dict[str, PeerDoc]
    routing: RoutingConfig
    profiles: dict[str, ProfileDoc]
    selectors: dict[str, SelectorDoc]
    store_path: str | None
    session_id_headers: list[str]
    upstream_ignore_paths: list[str]
    control: ControlConfig
    http: HttpDoc
    log_ring_bytes: int
    max_request_body_size: int
    macros: dict[str, str | int | float | bool]
    history: HistoryConfig = field(default_factory=HistoryConfig)
    resources: ResourcesConfig | None = None  # None: no capacity, nothing is budgeted
