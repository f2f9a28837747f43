from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PushStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PUSH_STATUS_UNSPECIFIED: _ClassVar[PushStatus]
    PUSH_STATUS_ACCEPTED: _ClassVar[PushStatus]
    PUSH_STATUS_INVALID: _ClassVar[PushStatus]
    PUSH_STATUS_REJECTED: _ClassVar[PushStatus]
    PUSH_STATUS_UNAVAILABLE: _ClassVar[PushStatus]
PUSH_STATUS_UNSPECIFIED: PushStatus
PUSH_STATUS_ACCEPTED: PushStatus
PUSH_STATUS_INVALID: PushStatus
PUSH_STATUS_REJECTED: PushStatus
PUSH_STATUS_UNAVAILABLE: PushStatus

class Job(_message.Message):
    __slots__ = ("jid", "jobtype", "queue", "args", "custom", "retry", "reserve_for", "at", "backtrace", "created_at", "enqueued_at", "failure")
    JID_FIELD_NUMBER: _ClassVar[int]
    JOBTYPE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    RESERVE_FOR_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    BACKTRACE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_AT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    jid: str
    jobtype: str
    queue: str
    args: bytes
    custom: bytes
    retry: int
    reserve_for: int
    at: str
    backtrace: int
    created_at: str
    enqueued_at: str
    failure: Failure
    def __init__(self, jid: _Optional[str] = ..., jobtype: _Optional[str] = ..., queue: _Optional[str] = ..., args: _Optional[bytes] = ..., custom: _Optional[bytes] = ..., retry: _Optional[int] = ..., reserve_for: _Optional[int] = ..., at: _Optional[str] = ..., backtrace: _Optional[int] = ..., created_at: _Optional[str] = ..., enqueued_at: _Optional[str] = ..., failure: _Optional[_Union[Failure, _Mapping]] = ...) -> None: ...

class Failure(_message.Message):
    __slots__ = ("retry_count", "retry_remaining", "errtype", "message", "failed_at", "backtrace")
    RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    RETRY_REMAINING_FIELD_NUMBER: _ClassVar[int]
    ERRTYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    BACKTRACE_FIELD_NUMBER: _ClassVar[int]
    retry_count: int
    retry_remaining: int
    errtype: str
    message: str
    failed_at: str
    backtrace: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, retry_count: _Optional[int] = ..., retry_remaining: _Optional[int] = ..., errtype: _Optional[str] = ..., message: _Optional[str] = ..., failed_at: _Optional[str] = ..., backtrace: _Optional[_Iterable[str]] = ...) -> None: ...

class PushRequest(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class PushResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PushResult]
    def __init__(self, results: _Optional[_Iterable[_Union[PushResult, _Mapping]]] = ...) -> None: ...

class PushResult(_message.Message):
    __slots__ = ("jid", "status", "field", "reason")
    JID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    jid: str
    status: PushStatus
    field: str
    reason: str
    def __init__(self, jid: _Optional[str] = ..., status: _Optional[_Union[PushStatus, str]] = ..., field: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WorkerMessage(_message.Message):
    __slots__ = ("hello", "acks", "fails", "releases", "window", "heartbeat")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    ACKS_FIELD_NUMBER: _ClassVar[int]
    FAILS_FIELD_NUMBER: _ClassVar[int]
    RELEASES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    acks: Acks
    fails: Fails
    releases: Releases
    window: WindowUpdate
    heartbeat: Heartbeat
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., acks: _Optional[_Union[Acks, _Mapping]] = ..., fails: _Optional[_Union[Fails, _Mapping]] = ..., releases: _Optional[_Union[Releases, _Mapping]] = ..., window: _Optional[_Union[WindowUpdate, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("worker_id", "hostname", "labels", "queues", "jobtypes", "window", "max_message_bytes", "holding")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    JOBTYPES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    HOLDING_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    hostname: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    queues: _containers.RepeatedScalarFieldContainer[str]
    jobtypes: _containers.RepeatedScalarFieldContainer[str]
    window: int
    max_message_bytes: int
    holding: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, worker_id: _Optional[str] = ..., hostname: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., queues: _Optional[_Iterable[str]] = ..., jobtypes: _Optional[_Iterable[str]] = ..., window: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., holding: _Optional[_Iterable[str]] = ...) -> None: ...

class Acks(_message.Message):
    __slots__ = ("jids",)
    JIDS_FIELD_NUMBER: _ClassVar[int]
    jids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, jids: _Optional[_Iterable[str]] = ...) -> None: ...

class Fails(_message.Message):
    __slots__ = ("failures",)
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    failures: _containers.RepeatedCompositeFieldContainer[JobFailure]
    def __init__(self, failures: _Optional[_Iterable[_Union[JobFailure, _Mapping]]] = ...) -> None: ...

class JobFailure(_message.Message):
    __slots__ = ("jid", "errtype", "message", "backtrace")
    JID_FIELD_NUMBER: _ClassVar[int]
    ERRTYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    BACKTRACE_FIELD_NUMBER: _ClassVar[int]
    jid: str
    errtype: str
    message: str
    backtrace: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, jid: _Optional[str] = ..., errtype: _Optional[str] = ..., message: _Optional[str] = ..., backtrace: _Optional[_Iterable[str]] = ...) -> None: ...

class Releases(_message.Message):
    __slots__ = ("jids",)
    JIDS_FIELD_NUMBER: _ClassVar[int]
    jids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, jids: _Optional[_Iterable[str]] = ...) -> None: ...

class WindowUpdate(_message.Message):
    __slots__ = ("window",)
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    window: int
    def __init__(self, window: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("ping_id", "pong_id")
    PING_ID_FIELD_NUMBER: _ClassVar[int]
    PONG_ID_FIELD_NUMBER: _ClassVar[int]
    ping_id: int
    pong_id: int
    def __init__(self, ping_id: _Optional[int] = ..., pong_id: _Optional[int] = ...) -> None: ...

class GatewayMessage(_message.Message):
    __slots__ = ("welcome", "jobs", "drain", "heartbeat", "rejected", "settled")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    SETTLED_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    jobs: JobBatch
    drain: Drain
    heartbeat: Heartbeat
    rejected: ResultRejected
    settled: Settled
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., jobs: _Optional[_Union[JobBatch, _Mapping]] = ..., drain: _Optional[_Union[Drain, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., rejected: _Optional[_Union[ResultRejected, _Mapping]] = ..., settled: _Optional[_Union[Settled, _Mapping]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("session_id", "heartbeat_interval_ms", "heartbeat_timeout_ms", "window", "max_window", "max_message_bytes")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    MAX_WINDOW_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    heartbeat_interval_ms: int
    heartbeat_timeout_ms: int
    window: int
    max_window: int
    max_message_bytes: int
    def __init__(self, session_id: _Optional[str] = ..., heartbeat_interval_ms: _Optional[int] = ..., heartbeat_timeout_ms: _Optional[int] = ..., window: _Optional[int] = ..., max_window: _Optional[int] = ..., max_message_bytes: _Optional[int] = ...) -> None: ...

class JobBatch(_message.Message):
    __slots__ = ("deliveries",)
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    def __init__(self, deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ("job", "reservation_deadline_unix_ms", "attempt")
    JOB_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_DEADLINE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    job: Job
    reservation_deadline_unix_ms: int
    attempt: int
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., reservation_deadline_unix_ms: _Optional[int] = ..., attempt: _Optional[int] = ...) -> None: ...

class Drain(_message.Message):
    __slots__ = ("deadline_unix_ms", "reason")
    DEADLINE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    deadline_unix_ms: int
    reason: str
    def __init__(self, deadline_unix_ms: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Settled(_message.Message):
    __slots__ = ("jids",)
    JIDS_FIELD_NUMBER: _ClassVar[int]
    jids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, jids: _Optional[_Iterable[str]] = ...) -> None: ...

class ResultRejected(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[RejectedResult]
    def __init__(self, results: _Optional[_Iterable[_Union[RejectedResult, _Mapping]]] = ...) -> None: ...

class RejectedResult(_message.Message):
    __slots__ = ("jid", "reason")
    JID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    jid: str
    reason: str
    def __init__(self, jid: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ListWorkersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInfo]
    def __init__(self, workers: _Optional[_Iterable[_Union[WorkerInfo, _Mapping]]] = ...) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("session_id", "worker_id", "hostname", "labels", "queues", "jobtypes", "window", "in_flight", "jobs_done", "jobs_failed", "jobs_per_second", "heartbeat_rtt_us", "connected_unix_ms", "draining")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    JOBTYPES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    JOBS_DONE_FIELD_NUMBER: _ClassVar[int]
    JOBS_FAILED_FIELD_NUMBER: _ClassVar[int]
    JOBS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_RTT_US_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    worker_id: str
    hostname: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    queues: _containers.RepeatedScalarFieldContainer[str]
    jobtypes: _containers.RepeatedScalarFieldContainer[str]
    window: int
    in_flight: int
    jobs_done: int
    jobs_failed: int
    jobs_per_second: float
    heartbeat_rtt_us: int
    connected_unix_ms: int
    draining: bool
    def __init__(self, session_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., hostname: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., queues: _Optional[_Iterable[str]] = ..., jobtypes: _Optional[_Iterable[str]] = ..., window: _Optional[int] = ..., in_flight: _Optional[int] = ..., jobs_done: _Optional[int] = ..., jobs_failed: _Optional[int] = ..., jobs_per_second: _Optional[float] = ..., heartbeat_rtt_us: _Optional[int] = ..., connected_unix_ms: _Optional[int] = ..., draining: bool = ...) -> None: ...
