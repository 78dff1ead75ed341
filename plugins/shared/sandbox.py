"""Run one model-chosen function call in an isolated child process.

Model output is untrusted data. A call runs only when its name is a function registered in a
tool set (:mod:`harness_plugins.shared.toolsets`, an allow-list); the name is looked up there and
never imported or evaluated. Arguments are JSON data: checked for size and depth, validated
against the function's JSON-Schema parameters, then sent to the child as JSON on stdin
(``json.dumps`` in, ``json.loads`` out; never ``eval`` or ``pickle``).

The child is a fresh ``python -I -S -B`` running this very file as a script (standard library
only below the ``child side`` line). Before it reads any argument it applies, in order:

1. resource limits (``RLIMIT_AS`` memory, ``RLIMIT_CPU``, ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``,
   ``RLIMIT_NPROC``, no core files);
2. a new, empty network namespace (``unshare(CLONE_NEWNET)`` through libc; needs root or
   ``CAP_SYS_ADMIN``; when refused the layer is simply missing and recorded so);
3. the tool set module is loaded (trusted code, imported while the standard library is still
   readable), then privileges are dropped to ``nobody`` when running as root;
4. ``socket`` is disabled in-process and an audit hook refuses process creation, sockets,
   ``ctypes``, ``compile``/``exec``, file changes and opening files outside the scratch folder.

The parent gives the child an empty environment, a fresh scratch folder as its working
directory (removed afterwards), its own process group (killed whole at the wall-clock timeout)
and files, not pipes, for stdin/stdout/stderr, so ``RLIMIT_FSIZE`` bounds everything it writes.
The limits are applied by the child itself rather than in ``preexec_fn``, which Python documents
as unsafe in a threaded parent (the runner scores samples on threads). Every result records the
layers that applied (``ExecResult.isolation``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any

KINDS = ("ok", "unknown_function", "bad_arguments", "error", "timeout", "killed", "bad_result")
MAX_ARGUMENT_BYTES = 1_000_000  # serialised arguments larger than this are refused
MAX_DEPTH = 32  # nesting of lists/objects in arguments
MAX_RESULT_BYTES = 64 * 1024  # a serialised result larger than this is a bad_result
MAX_STDERR_CHARS = 2000
FILE_SIZE_LIMIT = 2 * 1024 * 1024  # RLIMIT_FSIZE: stdout, stderr and scratch files
OPEN_FILES_LIMIT = 64
PROCESS_LIMIT = 64
NOBODY = 65534
CLONE_NEWNET = 0x40000000


# --- parent side ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecResult:
    """How one call ended. ``ok`` means it ran and returned a JSON-ready value in time.

    ``kind`` is one of :data:`KINDS`; ``isolation`` lists the layers that applied in the child
    (``rlimits``, ``netns``, ``nobody``, ``no_socket``, ``audit``), empty when nothing ran.
    """

    ok: bool
    kind: str
    result: Any = None
    error: str | None = None
    duration_s: float = 0.0
    isolation: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"isolation": list(self.isolation)}


def _refused(kind: str, error: str) -> ExecResult:
    return ExecResult(ok=False, kind=kind, error=error)


def data_problem(value: Any) -> str | None:
    """Why ``value`` is not small, plain JSON data (None when it is). Iterative, so a list
    nested a million deep is measured without recursion."""
    size, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        if isinstance(item, str):
            size += len(item) + 2
        elif isinstance(item, bool) or item is None:
            size += 5
        elif isinstance(item, int):
            if item.bit_length() > 4000:
                return "integer too large"
            size += 20
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                return "not a finite number"
            size += 24
        elif isinstance(item, list | tuple):
            size += 2 + len(item)
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, dict):
            size += 2 + len(item)
            for key, v in item.items():
                if not isinstance(key, str):
                    return "object keys must be strings"
                size += len(key) + 3
                stack.append((v, depth + 1))
        else:
            return f"not JSON data ({type(item).__name__})"
        if size > MAX_ARGUMENT_BYTES:
            return f"larger than {MAX_ARGUMENT_BYTES} bytes"
    return None


def check_arguments(parameters: dict[str, Any] | None, arguments: Any) -> list[str]:
    """Problems of ``arguments`` against a JSON-Schema ``parameters`` object, as codes:
    ``not_an_object``, ``unknown_argument: x``, ``missing_argument: x``, ``wrong_type: x
    (expected integer)``, ``invalid_value: x (...)``. Empty when they conform.

    Types are strict: a bool is not a number and a float is never an integer (JSON Schema
    would accept ``1.0`` as an integer; a Python tool would then get a float)."""
    if not isinstance(arguments, dict):
        return ["not_an_object: arguments must be a JSON object"]
    schema = parameters or {}
    properties = schema.get("properties") or {}
    required = schema.get("required") or []
    problems = [f"unknown_argument: {k}" for k in arguments if k not in properties]
    problems += [f"missing_argument: {k}" for k in required if k not in arguments]
    validator = _validator({"type": "object", "properties": properties})
    for error in validator.iter_errors(arguments):
        name = str(error.absolute_path[0]) if error.absolute_path else "(arguments)"
        if error.validator == "type":
            expected = error.validator_value
            problems.append(f"wrong_type: {name} (expected {_type_name(expected)})")
        else:
            problems.append(f"invalid_value: {name} ({error.message[:200]})")
    return list(dict.fromkeys(problems))


def _type_name(expected: Any) -> str:
    return " or ".join(expected) if isinstance(expected, list) else str(expected)


def _validator(schema: dict[str, Any]) -> Any:
    from jsonschema import Draft202012Validator
    from jsonschema import validators

    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, v: isinstance(v, int) and not isinstance(v, bool)
    )
    strict = validators.extend(Draft202012Validator, type_checker=checker)
    return strict(schema)


def run_call(
    toolset: str,
    name: str,
    arguments: Any,
    timeout_s: float = 5,
    memory_mb: int = 256,
) -> ExecResult:
    """Run ``name(**arguments)`` from the registered tool set ``toolset`` in a sandboxed child.

    Never raises for anything the model chose (an unknown tool set is a configuration error and
    raises ``KeyError``). Returns an :class:`ExecResult`."""
    import time

    from harness_plugins.shared.toolsets import get_toolset

    tools = get_toolset(toolset)
    spec = tools.spec(name) if isinstance(name, str) else None
    if spec is None:
        return _refused("unknown_function", f"{str(name)[:80]!r} is not a function of {toolset!r}")
    problem = data_problem(arguments)
    if problem:
        return _refused("bad_arguments", f"arguments refused: {problem}")
    problems = check_arguments(spec.get("parameters"), arguments)
    if problems:
        return _refused("bad_arguments", "; ".join(problems))
    payload = json.dumps(arguments, allow_nan=False).encode("utf-8")
    started = time.perf_counter()
    kind, result, error, layers = _spawn(str(tools.path), name, payload, timeout_s, memory_mb)
    return ExecResult(
        ok=kind == "ok",
        kind=kind,
        result=result,
        error=error,
        duration_s=round(time.perf_counter() - started, 4),
        isolation=tuple(layers),
    )


def _spawn(
    module_path: str, name: str, payload: bytes, timeout_s: float, memory_mb: int
) -> tuple[str, Any, str | None, list[str]]:
    """Start the child, wait at most ``timeout_s`` (then kill its process group), read back."""
    import math
    import shutil
    import signal
    import subprocess
    import tempfile

    io_dir = tempfile.mkdtemp(prefix="harness-sandbox-io-")
    scratch = tempfile.mkdtemp(prefix="harness-sandbox-cwd-")
    try:
        if os.geteuid() == 0:
            os.chown(scratch, NOBODY, NOBODY)
        paths = {k: os.path.join(io_dir, k) for k in ("stdin", "stdout", "stderr")}
        with open(paths["stdin"], "wb") as handle:
            handle.write(payload)
        cpu = max(1, math.ceil(timeout_s))
        argv = [module_path, name, str(cpu), str(memory_mb), scratch]
        command = [sys.executable, "-I", "-S", "-B", "-X", "utf8", os.path.abspath(__file__)]
        with (
            open(paths["stdin"], "rb") as stdin,
            open(paths["stdout"], "wb") as stdout,
            open(paths["stderr"], "wb") as stderr,
        ):
            proc = subprocess.Popen(
                command + argv,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                cwd=scratch,
                env={},
                close_fds=True,
                process_group=0,
            )
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
                return "timeout", None, f"no result within {timeout_s:g} s (killed)", []
        return _read_back(proc.returncode, paths)
    finally:
        shutil.rmtree(io_dir, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _read_back(returncode: int, paths: dict[str, str]) -> tuple[str, Any, str | None, list[str]]:
    """Turn the child's one JSON line (or its death) into (kind, result, error, layers)."""
    with open(paths["stdout"], "rb") as handle:
        raw = handle.read(MAX_RESULT_BYTES * 2 + 4096)
    with open(paths["stderr"], "rb") as handle:
        stderr = handle.read(MAX_STDERR_CHARS).decode("utf-8", "replace")
    lines = raw.decode("utf-8", "replace").strip().splitlines()
    try:
        message = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        message = None
    if isinstance(message, dict) and message.get("kind") in KINDS:
        layers = [str(x) for x in message.get("isolation") or []]
        return message["kind"], message.get("result"), message.get("error"), layers
    if returncode < 0:
        return "killed", None, f"killed by signal {-returncode}; stderr: {stderr[-500:]}", []
    return "error", None, f"exit status {returncode} without a result; stderr: {stderr[-500:]}", []


# --- child side: standard library only; runs as ``python -I -S -B sandbox.py ...`` ------------


def _apply_limits(cpu_s: int, memory_mb: int) -> None:
    import resource

    memory = memory_mb * 1024 * 1024
    for limit, value in (
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_CPU, cpu_s),
        (resource.RLIMIT_FSIZE, FILE_SIZE_LIMIT),
        (resource.RLIMIT_NOFILE, OPEN_FILES_LIMIT),
        (resource.RLIMIT_NPROC, PROCESS_LIMIT),
        (resource.RLIMIT_CORE, 0),
    ):
        _soft, hard = resource.getrlimit(limit)
        hard_new = value if hard == resource.RLIM_INFINITY else min(value + 1, hard)
        resource.setrlimit(limit, (min(value, hard_new), hard_new))


def _unshare_network() -> bool:
    """Move into a new network namespace: only a loopback that is down, no route anywhere."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.unshare(CLONE_NEWNET) == 0


def _drop_privileges() -> bool:
    if os.geteuid() != 0:
        return False
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    return True


def _disable_sockets() -> None:
    import socket

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise PermissionError("sandbox: network access is disabled")

    for attr in ("socket", "create_connection", "create_server", "socketpair", "getaddrinfo"):
        setattr(socket, attr, refuse)


BLOCKED_EVENTS = frozenset(
    {
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "os.kill",
        "os.killpg",
        "subprocess.Popen",
        "socket.__new__",
        "socket.connect",
        "socket.bind",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.sendto",
        "ctypes.dlopen",
        "ctypes.dlsym",
        "ctypes.call_function",
        "compile",
        "exec",
        "os.remove",
        "os.rename",
        "os.rmdir",
        "os.chmod",
        "os.chown",
        "os.link",
        "os.symlink",
        "os.truncate",
        "os.putenv",
        "os.unsetenv",
        "shutil.rmtree",
        "sys.addaudithook",
    }
)


def _install_audit_hook(scratch: str) -> None:
    """Refuse dangerous operations for the rest of the child's life (hooks cannot be removed)."""
    root = os.path.realpath(scratch) + os.sep

    def hook(event: str, args: tuple) -> None:
        if event in BLOCKED_EVENTS:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path = args[0]
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            if not isinstance(path, str) or not os.path.realpath(path).startswith(root):
                raise PermissionError("sandbox: files outside the scratch folder are off limits")

    sys.addaudithook(hook)


def _load_function(module_path: str, name: str) -> Any:
    """The registered function, checked again against the module's own ``TOOLS`` list."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("harness_toolset", module_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load tool set module {module_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    allowed = {t["name"] for t in getattr(module, "TOOLS", [])}
    function = getattr(module, name, None) if name in allowed else None
    if name.startswith("_") or not callable(function):
        raise LookupError(f"{name!r} is not a registered function of {module_path}")
    return function


def _emit(out_fd: int, message: dict[str, Any]) -> None:
    data = (json.dumps(message) + "\n").encode("utf-8")
    while data:
        data = data[os.write(out_fd, data) :]


def _call(function: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call and serialise; every failure becomes a kind, never an exception."""
    try:
        value = function(**arguments)
    except MemoryError:
        return {"kind": "killed", "error": "memory limit reached (MemoryError)"}
    except BaseException as exc:  # the function's own failure is data for the checks
        return {"kind": "error", "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return {"kind": "bad_result", "error": f"result is not JSON data: {str(exc)[:200]}"}
    except MemoryError:
        return {"kind": "killed", "error": "memory limit reached while serialising"}
    if len(text) > MAX_RESULT_BYTES:
        return {"kind": "bad_result", "error": f"result larger than {MAX_RESULT_BYTES} bytes"}
    return {"kind": "ok", "result": value}


def child_main(argv: list[str]) -> None:
    module_path, name, cpu_s, memory_mb, scratch = argv
    layers = []
    _apply_limits(int(cpu_s), int(memory_mb))
    layers.append("rlimits")
    if os.geteuid() == 0 and _unshare_network():
        layers.append("netns")
    out_fd = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # whatever the tool prints goes nowhere; only _emit writes the result
    try:
        function = _load_function(module_path, name)
    except Exception as exc:
        _emit(
            out_fd, {"kind": "error", "error": f"sandbox setup failed: {exc}", "isolation": layers}
        )
        return
    raw = sys.stdin.buffer.read(MAX_ARGUMENT_BYTES + 1)
    _disable_sockets()  # imports socket first: after the drop the stdlib may be unreadable
    layers.append("no_socket")
    if _drop_privileges():
        layers.append("nobody")
    _install_audit_hook(scratch)
    layers.append("audit")
    if len(raw) > MAX_ARGUMENT_BYTES:
        message = {"kind": "bad_arguments", "error": "arguments too large"}
    else:
        arguments = json.loads(raw)
        if isinstance(arguments, dict):
            message = _call(function, arguments)
        else:
            message = {"kind": "bad_arguments", "error": "arguments must be an object"}
    _emit(out_fd, message | {"isolation": layers})


if __name__ == "__main__":
    child_main(sys.argv[1:])
