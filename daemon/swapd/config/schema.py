"""The config file's shape as msgspec Structs: the source of `config/schema.json`.

These Structs describe what a user writes (camelCase keys, defaults, ranges);
`swapd.config.model` holds the effective, resolved config the daemon uses.
Every key a user may write is a field here: a key that is not one is an
error at load (llama-swap ignores it). Keys llama-swap accepts but swapd has
no use for are fields too, marked "Ignored", so llama-swap configs still load
(a top-level `defs:` block holding YAML anchors, older `performance` keys, a
model's `healthCheckTimeout`). swapd extensions are marked "swapd:" in their
descriptions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, field

NonNegInt = Annotated[int, Meta(ge=0)]
MacroValue = str | int | float | bool
Size = Annotated[
    str | int | float,
    Meta(description="A size with a binary unit (B, KiB, MiB, GiB, TiB), or a plain number."),
]

SizeOrAsleep = Annotated[
    str | int | float | dict[str, Size],
    Meta(description="A size; under `asleep`, a map of resource -> size."),
]


class _Doc(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    pass


class Timeouts(_Doc):
    """Upstream HTTP timeouts in seconds; 0 disables that timeout."""

    connect: int = 30
    keepalive: int = 30
    response_header: int = 0
    tls_handshake: int = 10
    expect_continue: int = 1
    idle_conn: int = 90


class PeerTimeouts(Timeouts):
    """Peer timeouts: as a model's, but the response-header timeout defaults to 60 s."""

    response_header: int = 60


class Filters(_Doc):
    """Request body rewriting applied before relaying (keys are JSON paths)."""

    strip_params: Annotated[str, Meta(description="Comma-separated body keys to delete.")] = ""
    strip_params_legacy: Annotated[
        str, Meta(description="Legacy spelling of stripParams, read when stripParams is empty.")
    ] = field(default="", name="strip_params")
    set_params: Annotated[dict[str, Any], Meta(description="Keys set in the body.")] = field(
        default_factory=dict
    )
    set_params_by_id: Annotated[
        dict[str, dict[str, Any]],
        Meta(
            description="Per requested name (model ID or alias), applied after setParams. "
            "Each key that is not the model ID becomes an alias of the model."
        ),
    ] = field(default_factory=dict, name="setParamsByID")


class PeerFilters(_Doc):
    strip_params: str = ""
    set_params: dict[str, Any] = field(default_factory=dict)
    set_params_by_id: dict[str, dict[str, Any]] = field(default_factory=dict, name="setParamsByID")


Modality = Literal["text", "audio", "image"]


class Capabilities(_Doc):
    """What the model can do, reported in /v1/models."""

    in_: list[Modality] = field(default_factory=list, name="in")
    out: list[Modality] = field(default_factory=list)
    tools: bool = False
    reranker: bool = False
    context: NonNegInt = 0


class Compat(_Doc):
    ignore_websockets: Annotated[
        bool, Meta(description="WebSocket connections never start this model (409 if not ready).")
    ] = False


# --- kv-cache and sleep (swapd) ---------------------------------------------


class KvCacheDoc(_Doc):
    """swapd: keep a llama.cpp server's KV cache (its slots) across planned stops.

    Before a planned stop swapd saves each slot that holds tokens (`POST
    /slots/{id}?action=save`) into `${KV_DIR}`; after the next start is ready,
    and before the first request is granted, it restores them. The server must
    be started with `--slot-save-path ${KV_DIR}`.
    """

    persist: Annotated[
        bool, Meta(description="Save slots before a planned stop, restore after the next start.")
    ] = False
    dir: Annotated[
        str,
        Meta(
            description="Root of the saved slots; each model gets its own directory in it, keyed "
            "by its model ID and a hash of its command. Empty: kv under the state directory."
        ),
    ] = ""
    max_bytes: Annotated[
        Size, Meta(description="Bytes of saved slots kept per model; the oldest files go first.")
    ] = "20GiB"
    timeout: Annotated[
        float,
        Meta(
            gt=0,
            description="Seconds all saves of one stop (or all restores of one start) may take.",
        ),
    ] = 30.0


class SleepCallDoc(_Doc):
    """swapd: an HTTP call to the model's server that puts it to sleep or wakes it."""

    endpoint: Annotated[
        str, Meta(description="Path on the model's proxy URL, e.g. /sleep?level=1, /wake_up.")
    ]
    method: Annotated[Literal["POST", "PUT", "GET"], Meta(description="HTTP method.")] = "POST"


class ModelDoc(_Doc):
    """One model: how to start it and how to reach it."""

    cmd: Annotated[
        str,
        Meta(
            description="Command line (no shell): multi-line, whole-line # comments, "
            "trailing \\ continuation, POSIX quoting. Use ${PORT} for an allocated port."
        ),
    ] = ""
    cmd_stop: Annotated[
        str, Meta(description="Run instead of SIGTERM to stop the process; ${PID} is its PID.")
    ] = ""
    proxy: Annotated[str, Meta(description="Upstream base URL.")] = "http://localhost:${PORT}"
    check_endpoint: Annotated[
        str, Meta(description="Path polled until HTTP 200; 'none' skips health checking.")
    ] = "/health"
    ttl: Annotated[
        int,
        Meta(ge=-1, description="Seconds idle before unloading; -1 = globalTTL, 0 = never."),
    ] = -1
    unload_timeout: Annotated[
        int, Meta(ge=0, description="Grace seconds before a forced kill; 0 = global value.")
    ] = 0
    aliases: list[str] = field(default_factory=list)
    env: Annotated[
        list[str], Meta(description="NAME=value entries added to the inherited environment.")
    ] = field(default_factory=list)
    name: str = ""
    description: str = ""
    unlisted: Annotated[bool, Meta(description="Hidden from /v1/models, still routable.")] = False
    use_model_name: Annotated[
        str, Meta(description="Replaces the model field of request bodies sent upstream.")
    ] = ""
    concurrency_limit: Annotated[
        int, Meta(description="Requests admitted at once; <= 0 means 10. Excess gets 429.")
    ] = 0
    send_loading_state: Annotated[
        bool | None, Meta(description="Stream loading progress; unset = global value.")
    ] = None
    metadata: dict[str, Any] = field(default_factory=dict)
    filters: Filters = field(default_factory=Filters)
    macros: dict[str, MacroValue] = field(default_factory=dict)
    timeouts: Timeouts = field(default_factory=Timeouts)
    compat: Compat = field(default_factory=Compat)
    capabilities: Capabilities = field(default_factory=Capabilities)
    log_ring_bytes: Annotated[
        Annotated[int, Meta(ge=1024)] | None,
        Meta(description="swapd: bytes of process output kept; unset = global value."),
    ] = None
    resources: Annotated[
        dict[str, SizeOrAsleep],
        Meta(
            description="swapd: declared footprint, resource -> size (a resource not named "
            "counts 0); with devices, the one resource that is not in resources.capacity is "
            "what it takes on the device it is given. `asleep`: a map of the same resources, "
            "what it takes while asleep (with sleep/wake or cmdSleep/cmdWake)."
        ),
    ] = field(default_factory=dict)
    devices: Annotated[
        list[str],
        Meta(
            description="swapd: devices (keys of resources.capacity) it may run on, any one "
            "of them; ${DEVICE} and ${DEVICE_INDEX} in cmd and env name the one chosen."
        ),
    ] = field(default_factory=list)
    health_check_timeout: Annotated[
        Any, Meta(description="Ignored: the global healthCheckTimeout applies to every model.")
    ] = None
    kv_cache: Annotated[
        KvCacheDoc | None,
        Meta(description="swapd: slot save/restore; keys not written take the global kvCache's."),
    ] = None
    sleep: Annotated[
        SleepCallDoc | None,
        Meta(description="swapd: put to sleep by this call instead of stopping it (with wake)."),
    ] = None
    wake: Annotated[
        SleepCallDoc | None, Meta(description="swapd: the call that wakes it (with sleep).")
    ] = None
    cmd_sleep: Annotated[
        str,
        Meta(description="swapd: a command that puts it to sleep; ${PID}, ${PORT} (with cmdWake)."),
    ] = ""
    cmd_wake: Annotated[
        str, Meta(description="swapd: a command that wakes it; ${PID}, ${PORT} (with cmdSleep).")
    ] = ""
    sleep_after: Annotated[
        int,
        Meta(
            ge=0,
            description="swapd: seconds idle before it is put to sleep (0 = never for "
            "idleness); ttl still stops it, counted from the same last use.",
        ),
    ] = 0


class PeerDoc(_Doc):
    """Another OpenAI-compatible server whose models are relayed as-is."""

    proxy: str = ""
    models: list[str] = field(default_factory=list)
    api_key: str = ""
    filters: PeerFilters = field(default_factory=PeerFilters)
    timeouts: PeerTimeouts = field(default_factory=PeerTimeouts)


class GroupDoc(_Doc):
    """A routing group (group router)."""

    swap: Annotated[bool, Meta(description="Only one member runs at a time.")] = True
    exclusive: Annotated[bool, Meta(description="Loading a member stops other groups' models.")] = (
        True
    )
    persistent: Annotated[bool, Meta(description="Members are never stopped by other groups.")] = (
        False
    )
    members: list[str] = field(default_factory=list)


class MatrixDoc(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The swap matrix: which models may run together (docs/compat.md, Swap matrix)."""

    vars: Annotated[dict[str, str], Meta(description="Short names for model IDs.")] = field(
        default_factory=dict
    )
    evict_costs: Annotated[
        dict[str, int], Meta(description="Cost of evicting a var or model (default 1).")
    ] = field(default_factory=dict)
    sets: Annotated[
        dict[str, str],
        Meta(description="Name -> DSL (&, |, parentheses, +set); ties go to the first set."),
    ] = field(default_factory=dict)


class BudgetDoc(_Doc):
    """swapd: the budget router: evict the cheapest idle models that make the target fit."""

    costs: Annotated[
        Literal["measured", "uniform"] | dict[str, float],
        Meta(
            description="Cost of evicting a model: measured (its median load time in "
            "seconds, 1 before it ever loaded), uniform (1 each) or a map model -> number."
        ),
    ] = "measured"


class RouterSettings(_Doc):
    groups: dict[str, GroupDoc] = field(default_factory=dict)
    matrix: MatrixDoc | None = None
    budget: BudgetDoc = field(default_factory=BudgetDoc)


class RouterDoc(_Doc):
    use: Annotated[str, Meta(description="group (default), matrix or budget.")] = ""
    settings: RouterSettings = field(default_factory=RouterSettings)


class FifoDoc(_Doc):
    priority: Annotated[
        dict[str, int], Meta(description="Per model ID: higher is served first (default 0).")
    ] = field(default_factory=dict)
    max_wait: Annotated[
        int,
        Meta(
            ge=0,
            description="swapd: seconds the oldest queued request may wait before requests for "
            "the running model stop jumping the queue; 0 = unbounded.",
        ),
    ] = 30
    keep_abandoned_loads: Annotated[
        bool,
        Meta(description="swapd: finish a load even when every request waiting on it has gone."),
    ] = False


class SchedulerSettings(_Doc):
    fifo: FifoDoc = field(default_factory=FifoDoc)


class SchedulerDoc(_Doc):
    use: Annotated[str, Meta(description="fifo (the only scheduler).")] = ""
    settings: SchedulerSettings = field(default_factory=SchedulerSettings)


class RoutingDoc(_Doc):
    router: RouterDoc = field(default_factory=RouterDoc)
    scheduler: SchedulerDoc = field(default_factory=SchedulerDoc)


class OnStartup(_Doc):
    preload: Annotated[list[str], Meta(description="Models loaded at start, in order.")] = field(
        default_factory=list
    )


class HooksDoc(_Doc):
    on_startup: OnStartup = field(default_factory=OnStartup, name="on_startup")


class PerformanceDoc(_Doc):
    disabled: bool = False
    every: Annotated[
        str, Meta(description="Sampling interval as a Go duration (e.g. 5s, 1m30s); >= 5s.")
    ] = "5s"
    enable: Annotated[Any, Meta(description="Ignored: an earlier llama-swap key.")] = None
    max_age: Annotated[Any, Meta(description="Ignored: an earlier llama-swap key.")] = None
    gc: Annotated[Any, Meta(description="Ignored: an earlier llama-swap key.")] = None


class StoreDoc(_Doc):
    path: Annotated[str, Meta(description="SQLite file for activity; absent = in memory.")] = ""


class ActivityDoc(_Doc):
    session_id: list[str] = field(
        default_factory=lambda: ["X-Session-ID", "X-Litellm-Session-Id"], name="session_id"
    )


class UIDoc(_Doc):
    activity: ActivityDoc = field(default_factory=ActivityDoc)


class UpstreamDoc(_Doc):
    ignore_paths: Annotated[
        list[str],
        Meta(description="Regexes of /upstream/<model>/ paths that never trigger a swap."),
    ] = field(default_factory=list)


class ProfileDoc(_Doc):
    description: str = ""
    pins: dict[str, str | None] = field(default_factory=dict)


class SelectorSettings(_Doc):
    spillover: int = 1


class SelectorDoc(_Doc):
    strategy: Literal["warm", "pin", "spillover", ""] = ""
    targets: list[str] = field(default_factory=list)
    settings: SelectorSettings = field(default_factory=SelectorSettings)
    name: str = ""
    description: str = ""
    unlisted: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)


class ControlDoc(_Doc):
    """swapd: the control socket."""

    group: Annotated[
        str | None,
        Meta(description="Unix group given access to the socket (mode 0660); unset = 0600."),
    ] = None


class HttpDoc(_Doc):
    """swapd: the HTTP server's bounds and who may reach it."""

    max_connections: Annotated[
        int,
        Meta(
            ge=1,
            description="Open connections at most; one more closes the longest idle "
            "connection, or gets 503 when none is idle. Read at start.",
        ),
    ] = 1024
    head_timeout: Annotated[
        float, Meta(gt=0, description="Seconds a request head may take from its first byte (408).")
    ] = 10.0
    keep_alive_timeout: Annotated[
        float,
        Meta(gt=0, description="Seconds an idle keep-alive connection is kept. Read at start."),
    ] = 75.0
    request_body_budget: Annotated[
        int,
        Meta(
            ge=1024,
            description="Bytes of request bodies held at once, all requests together; "
            "a body beyond it gets 503 with Retry-After.",
        ),
    ] = 256 * 1024 * 1024
    allowed_hosts: Annotated[
        list[str],
        Meta(
            description="Host names (or host:port) accepted besides loopback ones when swapd "
            "listens on loopback without apiKeys."
        ),
    ] = field(default_factory=list)
    max_form_parts: Annotated[
        int, Meta(ge=1, description="Parts of a multipart or url-encoded form at most (413).")
    ] = 1000
    max_form_field_size: Annotated[
        int, Meta(ge=1, description="Bytes of one form field that is not a file at most (413).")
    ] = 1024 * 1024


class HistoryDoc(_Doc):
    """swapd: the request, swap, exit and reload history kept in the state directory."""

    enabled: Annotated[bool, Meta(description="Record history; false keeps none.")] = True
    retention_days: Annotated[
        float, Meta(ge=0, description="Days of history kept; 0 = no age limit.")
    ] = 7.0
    max_requests: Annotated[
        int, Meta(ge=0, description="Most request records kept (oldest go first); 0 = no limit.")
    ] = 1_000_000


class ResourcesDoc(_Doc):
    """swapd: what this machine has, for routing by what fits."""

    capacity: Annotated[
        dict[str, Size],
        Meta(
            description="Resource or device -> size, e.g. vram: 24GiB, ram: 64GiB, "
            "gpu0: 24GiB; any names."
        ),
    ] = field(default_factory=dict)
    learn: Annotated[
        bool,
        Meta(
            description="Plan with measured footprints too: the larger of declared and "
            "measured (with a 10% margin on measured)."
        ),
    ] = True


class ConfigDoc(_Doc):
    """A swapd (llama-swap compatible) configuration file."""

    models: dict[str, ModelDoc] = field(default_factory=dict)
    health_check_timeout: Annotated[
        int, Meta(description="Seconds a starting model may take to pass its health check (>= 15).")
    ] = 120
    log_level: Annotated[str, Meta(description="debug, info, warn or error.")] = "info"
    log_time_format: str = ""
    log_to_stdout: Literal["proxy", "upstream", "both", "none"] = "proxy"
    log_requests: Annotated[bool, Meta(description="Deprecated, ignored.")] = False
    defs: Annotated[
        Any, Meta(description="Ignored: a place for YAML anchors that other keys use.")
    ] = None
    metrics_max_in_memory: int = 1000
    capture_buffer: Annotated[int, Meta(description="MB for captures; <= 0 disables.")] = 5
    performance: PerformanceDoc = field(default_factory=PerformanceDoc)
    global_ttl: Annotated[
        int, Meta(ge=0, description="Default model ttl in seconds; 0 = never unload.")
    ] = field(default=0, name="globalTTL")
    unload_timeout: Annotated[
        int, Meta(ge=0, description="Grace seconds for unloads before a forced kill; 0 = 10.")
    ] = 10
    start_port: Annotated[int, Meta(ge=1, description="First ${PORT} value.")] = 5800
    send_loading_state: bool = False
    include_aliases_in_list: bool = False
    api_keys: Annotated[
        list[str], Meta(description="Accepted API keys; empty = no authentication.")
    ] = field(default_factory=list)
    macros: dict[str, MacroValue] = field(default_factory=dict)
    hooks: HooksDoc = field(default_factory=HooksDoc)
    peers: dict[str, PeerDoc] = field(default_factory=dict)
    groups: Annotated[
        dict[str, GroupDoc], Meta(description="Legacy layout: use routing.router.settings.groups.")
    ] = field(default_factory=dict)
    matrix: Annotated[
        MatrixDoc | None, Meta(description="Legacy layout: use routing.router.settings.matrix.")
    ] = None
    routing: RoutingDoc = field(default_factory=RoutingDoc)
    profiles: dict[str, ProfileDoc] = field(default_factory=dict)
    selectors: dict[str, SelectorDoc] = field(default_factory=dict)
    store: StoreDoc | None = None
    ui: UIDoc = field(default_factory=UIDoc)
    upstream: UpstreamDoc = field(default_factory=UpstreamDoc)
    control: ControlDoc = field(default_factory=ControlDoc)
    http: HttpDoc = field(default_factory=HttpDoc)
    history: HistoryDoc = field(default_factory=HistoryDoc)
    resources: ResourcesDoc | None = None
    log_ring_bytes: Annotated[
        int, Meta(ge=1024, description="swapd: bytes of each model's output kept in memory.")
    ] = 256 * 1024
    max_request_body_size: Annotated[
        int, Meta(ge=1024, description="Largest request body accepted, in bytes (413 beyond).")
    ] = 32 * 1024 * 1024
    kv_cache: Annotated[
        KvCacheDoc | None, Meta(description="swapd: the default kvCache of every model.")
    ] = None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, generated from `ConfigDoc`."""
    return msgspec.json.schema(ConfigDoc)
