"""``zmq_async.install()``, ``zmq-async run`` and the ``ZMQ_ASYNC_INSTALL`` start-up hook.

Installing changes process-wide state (``sys.meta_path``, ``sys.modules``), and the green
mappings import gevent or eventlet, so every scenario runs in a fresh interpreter and reports
through its exit status; nothing here installs into the pytest process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

import zmq_async

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("tornado", "gevent", "eventlet", "greenlet", "anyio", "trio", "uvloop")

#: peer module -> (our module, the framework the peer needs, a public name it has)
PEERS = {
    "zmq.asyncio": ("zmq_async.asyncio", None, "Context"),
    "zmq.eventloop.future": ("zmq_async.tornado", "tornado", "Socket"),
    "zmq.eventloop.zmqstream": ("zmq_async.stream", "tornado", "ZMQStream"),
    "zmq.green": ("zmq_async.green", "gevent", "Poller"),
    "eventlet.green.zmq": ("zmq_async.green.eventlet", "eventlet", "Socket"),
}

#: Both spellings of each peer's import, binding ``m``.
SPELLINGS = [
    ("import zmq.asyncio as m", "zmq.asyncio"),
    ("from zmq import asyncio as m", "zmq.asyncio"),
    ("import zmq.eventloop.future as m", "zmq.eventloop.future"),
    ("from zmq.eventloop import future as m", "zmq.eventloop.future"),
    ("import zmq.eventloop.zmqstream as m", "zmq.eventloop.zmqstream"),
    ("from zmq.eventloop import zmqstream as m", "zmq.eventloop.zmqstream"),
    ("import zmq.green as m", "zmq.green"),
    ("from zmq import green as m", "zmq.green"),
    ("import eventlet.green.zmq as m", "eventlet.green.zmq"),
    ("from eventlet.green import zmq as m", "eventlet.green.zmq"),
]

PRELUDE = """\
import importlib, os, sys, warnings
warnings.simplefilter("ignore", DeprecationWarning)  # eventlet's notice on import
import zmq_async
FRAMEWORKS = {frameworks!r}
def frameworks():
    return sorted({{m.split(".")[0] for m in sys.modules}} & set(FRAMEWORKS))
"""


def _python(
    code: str,
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    executable: str = sys.executable,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code args`` (or ``python args`` if code is empty) in a fresh process."""
    command = [executable, *(["-c", code] if code else []), *args]
    full_env = {k: v for k, v in os.environ.items() if k != "ZMQ_ASYNC_INSTALL"}
    full_env.update(env or {})
    return subprocess.run(
        command, capture_output=True, text=True, timeout=50, env=full_env, cwd=cwd
    )


def _check(code: str) -> str:
    """Run a scenario after PRELUDE; it must exit 0 and print OK last. Returns its stdout."""
    source = PRELUDE.format(frameworks=FRAMEWORKS) + textwrap.dedent(code) + "\nprint('OK')\n"
    proc = _python(source)
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("OK"), proc.stderr
    return proc.stdout


# -- install() -----------------------------------------------------------------------------------


def test_exported_from_the_package():
    assert {"install", "installed", "uninstall"} <= set(zmq_async.__all__)
    assert not zmq_async.installed()  # and never in this process


@pytest.mark.parametrize(("statement", "peer"), SPELLINGS)
def test_each_peer_import_gives_our_module(statement, peer):
    ours, framework, _name = PEERS[peer]
    _check(f"""
        zmq_async.install()
        assert zmq_async.installed()
        {statement}
        assert m is sys.modules[{ours!r}], m
        assert sys.modules[{peer!r}] is m
        parent, _, child = {peer!r}.rpartition(".")
        assert getattr(sys.modules[parent], child) is m
        assert m.__name__ == {ours!r}  # our module keeps its own identity
        # only the framework the peer's own package brings along
        assert set(frameworks()) <= {{{framework!r}, "greenlet", None}}, frameworks()
    """)


def test_install_imports_no_framework_and_peers_lazily():
    _check("""
        zmq_async.install()
        zmq_async.install()  # harmless
        assert sum(type(f).__name__ == "_Finder" for f in sys.meta_path) == 1
        assert frameworks() == [], frameworks()
        assert not any(m.startswith("zmq_async.") and m != "zmq_async._install"
                       for m in sys.modules), sorted(sys.modules)
        import zmq.asyncio
        assert zmq.asyncio is sys.modules["zmq_async.asyncio"]
        assert frameworks() == [], frameworks()
        import zmq.green  # ours imports gevent only when a green name is used
        assert zmq.green is sys.modules["zmq_async.green"]
        assert frameworks() == [], frameworks()
    """)


def test_a_peer_whose_framework_is_missing_stays_pyzmqs():
    _check("""
        sys.modules["gevent"] = None  # what an environment without gevent looks like
        zmq_async.install()
        try:
            import zmq.green
        except ImportError as e:  # pyzmq's own error, as without install
            assert "gevent" in str(e), e
        else:
            raise AssertionError(f"imported {zmq.green!r}")
        assert "zmq_async.green" not in sys.modules
    """)


def test_modules_we_do_not_replace_stay_pyzmqs():
    _check("""
        zmq_async.install()
        import zmq.green
        import zmq.green.core  # pyzmq's green submodules are still found where pyzmq has them
        assert zmq.green is sys.modules["zmq_async.green"]
        assert zmq.green.core.__file__.startswith(os.path.dirname(sys.modules["zmq"].__file__))
        import zmq.eventloop.ioloop, tornado.ioloop  # Tornado's IOLoop, re-exported
        assert zmq.eventloop.ioloop.IOLoop is zmq.eventloop.IOLoop is tornado.ioloop.IOLoop
    """)


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_install_after_the_peer_was_imported(peer):
    ours, _framework, name = PEERS[peer]
    _check(f"""
        parent_name, _, child = {peer!r}.rpartition(".")
        peer = importlib.import_module({peer!r})
        parent = sys.modules[parent_name]
        before = getattr(peer, {name!r})
        names_before = dict(vars(peer))
        zmq_async.install()
        ours = sys.modules[{ours!r}]
        assert sys.modules[{peer!r}] is ours and getattr(parent, child) is ours
        assert getattr(peer, {name!r}) is getattr(ours, {name!r}) is not before
        from {peer} import {name} as again
        assert again is getattr(ours, {name!r})
        assert importlib.import_module({peer!r}) is ours

        zmq_async.uninstall()
        assert not zmq_async.installed()
        assert sys.modules[{peer!r}] is peer and getattr(parent, child) is peer
        assert dict(vars(peer)) == names_before, set(vars(peer)) ^ set(names_before)
        assert getattr(peer, {name!r}) is before
    """)


@pytest.mark.parametrize("statement", ["import zmq_anyio as m", "from zmq_anyio import Socket"])
def test_zmq_anyio_gives_ours(statement):
    """zmq-anyio is a top-level package: no parent to bind; ``Socket`` and ``Poller`` are ours."""
    _check(f"""
        zmq_async.install()
        {statement}
        ours = sys.modules["zmq_async.zmq_anyio"]
        assert sys.modules["zmq_anyio"] is ours
        from zmq_anyio import Poller, Socket
        assert (Socket, Poller) == (ours.Socket, ours.Poller)
        assert set(frameworks()) <= {{"anyio"}}, frameworks()
        zmq_async.uninstall()
        assert "zmq_anyio" not in sys.modules
        import zmq_anyio  # zmq-anyio's own again
        assert zmq_anyio.__name__ == "zmq_anyio" and zmq_anyio.Socket is not ours.Socket
    """)


def test_zmq_anyio_imported_before_install():
    _check("""
        import zmq_anyio
        before = zmq_anyio.Socket
        zmq_async.install()
        ours = sys.modules["zmq_async.zmq_anyio"]
        assert sys.modules["zmq_anyio"] is ours and zmq_anyio.Socket is ours.Socket
        zmq_async.uninstall()
        assert sys.modules["zmq_anyio"] is zmq_anyio and zmq_anyio.Socket is before
    """)


def test_zmq_anyio_stays_theirs_without_anyio():
    _check("""
        sys.modules["anyio"] = None
        zmq_async.install()
        try:
            import zmq_anyio
        except ImportError:
            pass  # zmq-anyio's own import of anyio fails, as without install
        else:
            raise AssertionError(f"imported {zmq_anyio!r}")
        assert "zmq_async.zmq_anyio" not in sys.modules
    """)


def test_programs_written_for_pyzmq_before_17_run_too():
    """``zmq.asyncio.ZMQEventLoop()`` and ``zmq.asyncio.install()``, deprecated, still in use."""
    _check("""
        zmq_async.install()
        import asyncio, zmq, zmq.asyncio
        zmq.asyncio.install()
        loop = zmq.asyncio.ZMQEventLoop()
        asyncio.set_event_loop(loop)
        ctx = zmq.asyncio.Context()
        pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
        push.connect(f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}")
        push.send(b"old")
        assert loop.run_until_complete(asyncio.wait_for(pull.recv(), 20)) == b"old"
        pull.close(); push.close(); ctx.term(); loop.close()
    """)


def test_objects_built_before_install_stay_pyzmqs():
    _check("""
        import zmq.asyncio
        old = zmq.asyncio.Context()
        zmq_async.install()
        new = zmq.asyncio.Context()
        assert type(old).__module__ == "zmq.asyncio", type(old)
        assert isinstance(new, sys.modules["zmq_async.asyncio"].Context)
        assert type(old.socket(zmq.PULL)).__module__ == "zmq.asyncio"
        assert isinstance(zmq.asyncio.Context.instance(), sys.modules["zmq_async.asyncio"].Context)
        old.term(); new.term()
    """)


def test_uninstall_restores_everything():
    _check("""
        import zmq, zmq.eventloop
        meta_path = list(sys.meta_path)
        zmq_names, loop_names = dict(vars(zmq)), dict(vars(zmq.eventloop))
        zmq_async.install()
        import zmq.asyncio, zmq.green, zmq.eventloop.zmqstream, zmq.eventloop.future
        import eventlet.green.zmq
        import zmq.green.core  # pyzmq's, bound on our zmq_async.green by the import system
        assert zmq.asyncio is sys.modules["zmq_async.asyncio"]
        eventlet_green = dict(vars(sys.modules["eventlet.green"]))
        zmq_async.uninstall()
        zmq_async.uninstall()  # harmless
        assert not zmq_async.installed()
        assert sys.meta_path == meta_path
        assert dict(vars(zmq)) == zmq_names, set(vars(zmq)) ^ set(zmq_names)
        assert dict(vars(zmq.eventloop)) == loop_names
        assert "zmq" not in vars(sys.modules["eventlet.green"])
        assert "core" not in vars(sys.modules["zmq_async.green"])
        assert "zmq.green.core" not in sys.modules
        peers = ["zmq.asyncio", "zmq.green", "zmq.eventloop.zmqstream", "zmq.eventloop.future",
                 "eventlet.green.zmq"]
        assert not any(p in sys.modules for p in peers), [p for p in peers if p in sys.modules]
        import zmq.asyncio  # pyzmq's again
        assert zmq.asyncio.__name__ == "zmq.asyncio"
        zmq_async.install()  # and once more
        import zmq.eventloop.zmqstream
        assert zmq.eventloop.zmqstream.__name__ == "zmq_async.stream"
        assert zmq.asyncio.Context is sys.modules["zmq_async.asyncio"].Context
    """)


#: One authenticator's PLAIN and CURVE handshakes (and a refused one), after ``install()``.
AUTH_SCENARIO = """
import asyncio, zmq, zmq.asyncio

async def handshake(ctx, server_opts, client_opts, wait=20):
    # the reply to one request, or None if the server got none within `wait`
    server, client = ctx.socket(zmq.REP), ctx.socket(zmq.REQ)
    for sock, opts in ((server, server_opts), (client, client_opts)):
        for opt, value in opts.items():
            sock.setsockopt(opt, value)
    port = server.bind_to_random_port("tcp://127.0.0.1")
    client.connect(f"tcp://127.0.0.1:{port}")
    try:
        await client.send(b"ping")
        msg = await asyncio.wait_for(server.recv(), wait)
        await server.send(msg)
        return await asyncio.wait_for(client.recv(), 20)
    except asyncio.TimeoutError:
        return None
    finally:
        server.close(linger=0); client.close(linger=0)

async def main():
    ctx = zmq.asyncio.Context()
    assert type(ctx).__module__.startswith("zmq_async."), type(ctx)
    auth = Authenticator(ctx)
    auth.start()
    # its ZAP socket is a plain zmq.Socket, watched by zmq.asyncio.Poller: ours
    poller = auth._AsyncioAuthenticator__poller
    assert type(poller).__module__.startswith("zmq_async."), poller
    auth.configure_plain(domain="*", passwords={"admin": "secret"})
    plain = {zmq.PLAIN_SERVER: 1}
    assert await handshake(ctx, plain, {zmq.PLAIN_USERNAME: b"admin",
                                        zmq.PLAIN_PASSWORD: b"secret"}) == b"ping"
    # a wrong password is refused by the ZAP handler: nothing arrives
    assert await handshake(ctx, plain, {zmq.PLAIN_USERNAME: b"admin",
                                        zmq.PLAIN_PASSWORD: b"wrong"}, wait=1) is None
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    auth.configure_curve(domain="*", location=zmq.auth.CURVE_ALLOW_ANY)
    assert await handshake(
        ctx,
        {zmq.CURVE_SERVER: 1, zmq.CURVE_SECRETKEY: server_secret},
        {zmq.CURVE_SERVERKEY: server_public, zmq.CURVE_PUBLICKEY: client_public,
         zmq.CURVE_SECRETKEY: client_secret},
    ) == b"ping"
    auth.stop()
    ctx.term()

asyncio.run(main())
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("module", "authenticator"),
    [("zmq.auth.asyncio", "AsyncioAuthenticator"), ("zmq.auth.ioloop", "IOLoopAuthenticator")],
)
def test_pyzmqs_authenticators_run_on_our_sockets(module, authenticator):
    """zmq.auth imports zmq.asyncio: after install its ZAP handler polls with our Poller."""
    imports = f"zmq_async.install()\nfrom {module} import {authenticator} as Authenticator\n"
    _check(imports + AUTH_SCENARIO)


# -- zmq-async run -------------------------------------------------------------------------------

PROGRAM = """\
import os, sys, zmq.asyncio
print("argv", sys.argv[1:])
print("argv0", os.path.basename(sys.argv[0]))
print("name", __name__, "path0", sys.path[0])
print("module", zmq.asyncio.__name__, os.environ.get("ZMQ_ASYNC_INSTALL"))
if sys.argv[1:2] == ["exit"]:
    sys.exit(7)
if sys.argv[1:2] == ["raise"]:
    raise ValueError("boom from the program")
"""


@pytest.fixture
def program(tmp_path: Path) -> Path:
    """A directory to run from, with ``bin/prog.py`` and ``pkg/mod.py`` (the same program)."""
    for path in (tmp_path / "bin" / "prog.py", tmp_path / "pkg" / "mod.py"):
        path.parent.mkdir()
        path.write_text(PROGRAM)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    return tmp_path.resolve()


#: ``python -m zmq_async`` starts with the working directory first on sys.path, the console
#: script with its own directory: run must replace either with what python would put there.
LAUNCHERS = {
    "python -m zmq_async": [sys.executable, "-m", "zmq_async"],
    "zmq-async": [str(Path(sys.executable).with_name("zmq-async"))],
}


def _zmq_async_run(
    *args: str, cwd: Path, launcher: str = "python -m zmq_async"
) -> subprocess.CompletedProcess[str]:
    command = LAUNCHERS[launcher]
    return _python("", *command[1:], "run", *args, cwd=cwd, executable=command[0])


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
@pytest.mark.parametrize(
    ("target", "argv0", "path0"),
    [(["bin/prog.py"], "prog.py", "bin"), (["-m", "pkg.mod"], "mod.py", "")],
)
def test_run_runs_the_program_as_python_would(program, launcher, target, argv0, path0):
    plain = _python("", *target, "a", "--b", cwd=program)
    ours = _zmq_async_run(*target, "a", "--b", cwd=program, launcher=launcher)
    assert plain.returncode == ours.returncode == 0, ours.stderr
    expected = [
        "argv ['a', '--b']",
        f"argv0 {argv0}",
        f"name __main__ path0 {program / path0 if path0 else program}",
        "module zmq.asyncio None",
    ]
    assert plain.stdout.splitlines() == expected
    assert ours.stdout.splitlines() == [*expected[:3], "module zmq_async.asyncio 1"]


@pytest.mark.parametrize("target", [["bin/prog.py"], ["-m", "pkg.mod"]])
def test_run_keeps_exit_status_and_traceback(program, target):
    exited = _zmq_async_run(*target, "exit", cwd=program)
    assert exited.returncode == 7, exited.stderr
    raised = _zmq_async_run(*target, "raise", cwd=program)
    assert raised.returncode == 1
    assert raised.stderr.rstrip().endswith("ValueError: boom from the program"), raised.stderr


def test_run_reports_a_missing_program(tmp_path):
    script = _zmq_async_run("missing.py", cwd=tmp_path)
    assert script.returncode == 2 and "can't open file" in script.stderr
    module = _zmq_async_run("-m", "no_such_module_here", cwd=tmp_path)
    assert module.returncode == 1 and "No module named no_such_module_here" in module.stderr
    for args, error in (
        ((), "a script or -m MODULE"),
        (("-m",), "-m needs"),
        (("-x",), "unknown option -x"),
    ):
        bad = _zmq_async_run(*args, cwd=tmp_path)
        assert bad.returncode == 2 and "zmq-async run: error: " + error in bad.stderr, args
    helped = _zmq_async_run("--help", cwd=tmp_path)
    assert helped.returncode == 0 and "ZMQ_ASYNC_INSTALL=1" in helped.stdout


def test_run_is_listed_in_the_help():
    out = _python("", "-m", "zmq_async", "--help")
    assert out.returncode == 0 and "run " in out.stdout and "bench " in out.stdout


# -- the ZMQ_ASYNC_INSTALL start-up hook ---------------------------------------------------------

HOOK = "zmq_async_install.pth"


def test_the_hook_is_installed_in_site_packages():
    installed = Path(sysconfig.get_paths()["purelib"]) / HOOK
    assert installed.is_file(), f"{installed} missing: reinstall (pip install -e .)"
    assert installed.read_text() == (ROOT / HOOK).read_text()


def test_the_hook_installs_in_a_child_process_only_when_asked(tmp_path):
    code = "import sys, zmq.asyncio; print(zmq.asyncio.__name__, 'zmq_async' in sys.modules)"
    on = _python(code, env={"ZMQ_ASYNC_INSTALL": "1"})
    assert on.stdout.split() == ["zmq_async.asyncio", "True"], on.stderr
    # unset, empty or 0, zmq_async is not even imported: the hook costs a dict lookup
    for env in ({}, {"ZMQ_ASYNC_INSTALL": ""}, {"ZMQ_ASYNC_INSTALL": "0"}):
        off = _python(code, env=env)
        assert off.stdout.split() == ["zmq.asyncio", "False"], off.stderr
        assert not off.stderr
    bad = _python(code, env={"ZMQ_ASYNC_INSTALL": "yes"})
    assert bad.stdout.split() == ["zmq.asyncio", "True"]
    assert bad.stderr == "zmq_async: ignoring ZMQ_ASYNC_INSTALL='yes' (expected 1 or 0)\n"


GREEN_PROGRAMS = {
    "gevent": "from gevent import monkey; monkey.patch_all()\n"
    "import gevent\n"
    "import zmq.green as zmq\n"
    "spawn = gevent.spawn\n",
    "eventlet": "import eventlet; eventlet.monkey_patch()\n"
    "from eventlet.green import zmq\n"
    "spawn = eventlet.spawn\n",
}


@pytest.mark.parametrize("flavour", sorted(GREEN_PROGRAMS))
def test_the_hook_serves_a_monkeypatched_green_program(flavour):
    """As locust runs: installed at start-up, then patched, then pyzmq's green module used."""
    code = GREEN_PROGRAMS[flavour] + textwrap.dedent("""
        import sys
        print(zmq.__name__)
        ctx = zmq.Context()
        pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
        push.connect(f"tcp://127.0.0.1:{pull.bind_to_random_port('tcp://127.0.0.1')}")
        receiver = spawn(lambda: [pull.recv() for _ in range(3)])
        for i in range(3):
            push.send(b"%d" % i)
        print(receiver.wait() if hasattr(receiver, "wait") else receiver.get(timeout=20))
        pull.close(); push.close(); ctx.term()
    """)
    out = _python(code, "-W", "ignore::DeprecationWarning", env={"ZMQ_ASYNC_INSTALL": "1"})
    ours = "zmq_async.green" if flavour == "gevent" else "zmq_async.green.eventlet"
    assert out.stdout.split() == [ours, "[b'0',", "b'1',", "b'2']"], out.stderr
    assert "MonkeyPatchWarning" not in out.stderr, out.stderr  # gevent's, on a late patch


def test_run_installs_in_child_processes_too(tmp_path):
    (tmp_path / "parent.py").write_text(
        "import subprocess, sys\n"
        "code = 'import zmq.asyncio; print(zmq.asyncio.__name__)'\n"
        "print(subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,\n"
        "                     timeout=30).stdout.strip())\n"
    )
    out = _zmq_async_run("parent.py", cwd=tmp_path)
    assert out.stdout.split() == ["zmq_async.asyncio"], out.stderr
