"""One server interceptor for every nimbus service.

Per call it: takes or makes a request id, authenticates the caller (or
answers UNAUTHENTICATED), checks nimbus.policy's rule for the method (or
answers PERMISSION_DENIED: a reader's write, a member's admin call, an
agent speaking for another host), binds both for logs, maps NimbusError to its
status with rich details (never INTERNAL for input), and writes one access
log line. Server streams are bounded per user (MAX_STREAMS_PER_CALLER) and
a client that stops reading one is cut off (STREAM_WRITE_TIMEOUT). It is a single wrapper, not a chain, because it runs on every call
of the hot paths (agents report every state change through it).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import time
import uuid

import aetcd.exceptions
import grpc
import structlog
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import status_pb2

from nimbus import errors, log, metrics, policy
from nimbus.rpc import auth, tokens

_log = log.get("nimbus.rpc")
# A user's concurrent server streams (WatchServers, WatchInstances) per server:
# a client waiting on each server of a 100-server storm holds 100.
MAX_STREAMS_PER_CALLER = 1000
# Seconds a stream write may wait for a client that does not read.
STREAM_WRITE_TIMEOUT = 30.0
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("nimbus_request_id")


def request_id() -> str:
    """The current call's request id (the client's x-request-id, or ours)."""
    return _request_id.get()


def _authorize(method: str, who: auth.Identity) -> policy.Rule:
    rule = policy.rule_for(method)
    if rule is None:   # fail closed: a method nobody wrote a rule for
        raise errors.PermissionDenied(f"{method} has no access rule")
    if not policy.allows(rule, who.roles):
        raise errors.PermissionDenied(
            f"{method.rsplit('/', 1)[-1]} needs the {rule.role} role")
    return rule


def _check_host(rule: policy.Rule, who: auth.Identity, request, streamed: bool = False) -> None:
    """An agent acts only for its own host (see nimbus.policy). In a client
    stream only the first message names the host (the conductor binds the
    stream to it): later ones may leave it empty."""
    if not who.host or not rule.host_field:
        return
    named = policy.field_value(request, rule.host_field)
    if named != who.host and not (streamed and not named):
        raise errors.PermissionDenied(
            f"host {who.host}'s credential cannot act for host {named[:255] or '(none)'}")


class _Undecodable:
    """What a request that does not parse becomes: the handler's wrapper
    answers INVALID_ARGUMENT instead of grpc's UNKNOWN/INTERNAL."""

    __slots__ = ("type_name", "error")

    def __init__(self, type_name: str, error: Exception):
        self.type_name, self.error = type_name, error

    def refuse(self):
        raise errors.InvalidArgument(
            "request", f"not a valid {self.type_name} message ({type(self.error).__name__})")


def _tolerant(deserializer):
    """A request deserializer that never raises (see _Undecodable)."""
    if deserializer is None:
        return None
    owner = getattr(deserializer, "__self__", None)
    type_name = getattr(owner, "DESCRIPTOR", None)
    type_name = type_name.full_name if type_name is not None else "request"

    def parse(data: bytes):
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 - any parse failure is bad input
            return _Undecodable(type_name, exc)
    return parse


async def _checked(requests, rule: policy.Rule, who: auth.Identity):
    async for request in requests:
        if isinstance(request, _Undecodable):
            request.refuse()
        _check_host(rule, who, request, streamed=True)
        yield request


def _status_trailer(exc: errors.NimbusError) -> tuple:
    status = status_pb2.Status(code=exc.code.value[0], message=exc.message)
    for detail in exc.details():
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return (("grpc-status-details-bin", status.SerializeToString()),)


def _as_nimbus_error(exc: BaseException) -> errors.NimbusError | None:
    if isinstance(exc, errors.NimbusError):
        return exc
    if isinstance(exc, (aetcd.exceptions.ConnectionFailedError,
                        aetcd.exceptions.ConnectionTimeoutError)):
        return errors.Unavailable("the state store (etcd) is unavailable; retry later")
    if isinstance(exc, grpc.aio.AioRpcError) and exc.code() in (
            grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        # etcd or another nimbus service did not answer: the caller may retry.
        return errors.Unavailable(f"a backend is unavailable ({exc.code().name}); retry later")
    return None


# (service, method, code) -> the labelled counter and histogram: labels()
# takes a lock and validates on every call, once per RPC on every server.
_series: dict[tuple[str, str, str], tuple] = {}


def _measure(service: str, method: str, code: str, seconds: float) -> None:
    series = _series.get((service, method, code))
    if series is None:
        name = method.rsplit("/", 1)[-1]
        series = _series[(service, method, code)] = (
            metrics.RPCS.labels(service, name, code), metrics.RPC_SECONDS.labels(service, name))
    series[0].inc()
    series[1].observe(seconds)


def _access_log(service: str, method: str, started: float) -> None:
    """Users' calls are logged at info; the services' own chatter (agents
    report every state change) at debug: it was 5-8% of the conductor's CPU."""
    who = auth.current.get(None)
    emit = _log.debug if who is not None and who.is_service else _log.info
    seconds = time.perf_counter() - started
    _measure(service, method, "OK", seconds)
    emit("rpc", method=method, code="OK", ms=round(seconds * 1000, 2))


class ServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, authenticator: auth.Authenticator, service: str,
                 certificate_agents: bool = False):
        self._auth = authenticator
        self._service = service
        # Client certificates are required and verified: an agent may present
        # one naming its host instead of a host token.
        self._certificate_agents = certificate_agents
        self._streams: collections.Counter[str] = collections.Counter()

    def _open_stream(self, who: auth.Identity) -> str | None:
        """Count a user's open streams (watches); refuse one over the limit.
        The services' own streams (agents, guests) are not users' to bound."""
        if who.is_service or policy.GUEST in who.roles:
            return None
        caller = f"{who.project_id}/{who.user_id}"
        if self._streams[caller] >= MAX_STREAMS_PER_CALLER:
            raise errors.ResourceExhausted(
                f"at most {MAX_STREAMS_PER_CALLER} open streams (watches) per user on this server")
        self._streams[caller] += 1
        return caller

    def _close_stream(self, caller: str) -> None:
        self._streams[caller] -= 1
        if self._streams[caller] <= 0:
            del self._streams[caller]

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or details.method.startswith(policy.PUBLIC_PREFIXES):
            return handler
        method = details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(method, handler.stream_unary),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(method, handler.stream_stream),
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer)

    async def _begin(self, context, method: str) -> policy.Rule:
        metadata = context.invocation_metadata()
        request_id = None
        for key, value in metadata or ():
            if key == "x-request-id":
                request_id = value[:64]
                break
        request_id = request_id or f"req-{uuid.uuid4()}"
        _request_id.set(request_id)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        context.set_trailing_metadata((("x-request-id", request_id),))
        if self._certificate_agents and not auth.has_bearer(metadata):
            # mTLS: grpc verified the peer's certificate against the CA.
            who = auth.from_certificate(context.auth_context())
        else:
            try:
                who = self._auth.authenticate(metadata)
            except tokens.UnknownKey as exc:   # the issuer may have rotated its keys
                await exc.keys.refresh()
                who = self._auth.authenticate(metadata)
        auth.current.set(who)
        return _authorize(method, who)

    async def _fail(self, context, method: str, exc: BaseException, started: float):
        mapped = _as_nimbus_error(exc)
        seconds = time.perf_counter() - started
        elapsed = round(seconds * 1000, 2)
        _measure(self._service, method, mapped.code.name if mapped else "INTERNAL", seconds)
        if mapped is None:
            _log.error("rpc", method=method, code="INTERNAL", ms=elapsed, exc_info=exc)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the service log")
        _log.info("rpc", method=method, code=mapped.code.name, ms=elapsed, error=mapped.message)
        await context.abort(mapped.code, mapped.message, trailing_metadata=_status_trailer(mapped))

    def _wrap_unary(self, method, behaviour):
        async def wrapper(request, context):
            started = time.perf_counter()
            try:
                rule = await self._begin(context, method)
                if isinstance(request, _Undecodable):
                    request.refuse()
                elif not isinstance(request, Message):   # a client stream
                    request = _checked(request, rule, auth.current.get())
                else:
                    _check_host(rule, auth.current.get(), request)
                response = await behaviour(request, context)
            except (grpc.aio.AbortError, GeneratorExit):
                raise
            except Exception as exc:  # noqa: BLE001 - mapped or reported as INTERNAL
                await self._fail(context, method, exc, started)
            _access_log(self._service, method, started)
            return response
        return wrapper

    def _wrap_stream(self, method, behaviour):
        async def wrapper(request, context):
            started = time.perf_counter()
            responses = None
            caller = None
            try:
                rule = await self._begin(context, method)
                who = auth.current.get()
                if isinstance(request, _Undecodable):
                    request.refuse()
                elif not isinstance(request, Message):   # a client stream
                    request = _checked(request, rule, who)
                else:
                    _check_host(rule, who, request)
                caller = self._open_stream(who)
                responses = behaviour(request, context)
                async for response in responses:
                    try:
                        # Blocks only once grpc's send buffer is full: a client
                        # that stopped reading is cut off, not buffered for.
                        async with asyncio.timeout(STREAM_WRITE_TIMEOUT):
                            await context.write(response)
                    except TimeoutError:
                        raise errors.ResourceExhausted(
                            f"the client stopped reading this stream (nothing taken for "
                            f"{STREAM_WRITE_TIMEOUT:g} s with the send buffer full); "
                            "read faster or watch again") from None
            except (grpc.aio.AbortError, GeneratorExit):
                raise
            except Exception as exc:  # noqa: BLE001
                await self._fail(context, method, exc, started)
            finally:
                if responses is not None:
                    await responses.aclose()   # the handler's finally (unsubscribe) runs now
                if caller is not None:
                    self._close_stream(caller)
            _access_log(self._service, method, started)
        return wrapper
