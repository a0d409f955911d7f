"""The distributed profile on one machine: ``python -m lake_pipelines.cluster up|down``.

`up` starts, each as its own OS process on a free loopback port: Redis (the Celery broker and
result backend), a PostgreSQL cluster (the Dagster instance and the Iceberg catalog), moto's S3
server (the lake), `LAKE_CELERY_WORKERS` Celery workers (`dagster-celery worker start`, one
step at a time each), the Dagster daemon (run queue, sensors, schedules, backfills, run
monitoring and retries) and the web UI. Everything lives under the run directory (default
``.cluster``): data, logs, ``pids/`` and ``cluster.env``, the settings a client needs
(``set -a; . .cluster/cluster.env``). `down` stops exactly the processes named in ``pids/``.
`up` on a run directory whose processes still run refuses; otherwise it starts afresh.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from lake_pipelines.config import DeploySettings
from lake_pipelines.errors import ConfigError
from lake_pipelines.preflight import check_all

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
S3_KEY, S3_SECRET, BUCKET = "lake-cluster", "lake-cluster-secret", "lake"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _started_at(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot); None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, group: bool) -> bool:
    """Whether `pid` (with `group`: any process of its group) still runs; a child of this
    process that exited is reaped first, so that it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    if not group:
        return _started_at(pid) is not None
    try:
        os.killpg(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _wait(
    what: str,
    ready: Callable[[], bool],
    timeout: float,
    log: Path | None = None,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        died = proc is not None and proc.poll() is not None
        if died or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            why = "exited" if died else f"did not start in {timeout:.0f} s"
            raise RuntimeError(f"cluster: {what} {why}; end of {log}:\n{tail}")
        time.sleep(0.3)


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _says_ready(log: Path) -> bool:
    return b" ready." in log.read_bytes()


def _http_ok(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
        return True
    except OSError:
        return False


def worker_config(settings: DeploySettings) -> str:
    """The YAML `dagster-celery worker start -y` reads: the executor's own Celery config."""
    return json.dumps({"execution": {"config": settings.celery_config()}}, indent=2)


class Cluster:
    """The processes of one local cluster, recorded under `run_dir`."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir.resolve()
        self.pids = self.run_dir / "pids"
        self.logs = self.run_dir / "logs"
        self.home = self.run_dir / "home"

    def env(self) -> dict[str, str]:
        """The settings of the running cluster (from ``cluster.env``)."""
        lines = (self.run_dir / "cluster.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def running(self) -> list[str]:
        return [p.stem for p in sorted(self.pids.glob("*.pid")) if self._alive(p)]

    def _alive(self, pidfile: Path) -> bool:
        pid, started = pidfile.read_text().split()
        return _started_at(int(pid)) == started

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        (self.pids / f"{name}.pid").write_text(f"{proc.pid} {_started_at(proc.pid)}\n")
        return proc

    # -- up ----------------------------------------------------------------------------------

    def up(self, ui_port: int = 0) -> dict[str, str]:
        if self.pids.exists() and self.running():
            raise RuntimeError(f"cluster: already running in {self.run_dir} (make cluster-down)")
        shutil.rmtree(self.run_dir, ignore_errors=True)
        for d in (self.pids, self.logs, self.home, self.run_dir / "redis"):
            d.mkdir(parents=True)
        ports = {"redis": free_port(), "pg": free_port(), "s3": free_port()}
        ports["ui"] = ui_port or free_port()
        env = self._settings(ports)
        self._write_env(env)
        base = {**os.environ, **env}
        settings = DeploySettings.from_env(base)
        self._redis(ports["redis"], base)
        self._postgres(ports["pg"])
        self._s3(ports["s3"], base)
        try:
            for line in check_all(base):
                print(f"cluster: reachable: {line}")
        except ConfigError as exc:
            raise RuntimeError(f"cluster: {exc}") from None
        shutil.copy(REPO / "dagster.celery.yaml", self.home / "dagster.yaml")
        worker_yaml = self.run_dir / "celery.yaml"
        worker_yaml.write_text(worker_config(settings))
        workers = {}
        for k in range(1, settings.workers + 1):
            workers[k] = self._spawn(
                f"worker-{k}",
                [
                    str(BIN / "dagster-celery"),
                    *("worker", "start", "-A", "dagster_celery.app"),
                    *("-y", str(worker_yaml), "-n", f"lake-w{k}", "--", "-c", "1"),
                ],
                base,
            )
        self._spawn("daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], base)
        ui = f"http://127.0.0.1:{ports['ui']}"
        web = self._spawn(
            "webserver",
            [
                str(BIN / "dagster-webserver"),
                *("-w", "workspace.yaml", "-h", "127.0.0.1"),
                *("-p", str(ports["ui"])),
            ],
            base,
        )
        web_log = self.logs / "webserver.log"
        _wait("web UI", lambda: _http_ok(f"{ui}/server_info"), 180, web_log, web)
        for k, proc in workers.items():
            log = self.logs / f"worker-{k}.log"
            _wait(f"worker {k}", functools.partial(_says_ready, log), 180, log, proc)
        return env

    def _settings(self, ports: dict[str, int]) -> dict[str, str]:
        redis = f"redis://127.0.0.1:{ports['redis']}"
        return {
            "DAGSTER_HOME": str(self.home),
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(ports["pg"]),
            "DAGSTER_PG_DB": "dagster",
            "DAGSTER_PG_USERNAME": "lake",
            "DAGSTER_PG_PASSWORD": "lake",  # the local cluster trusts loopback; unused
            "LAKE_EXECUTOR": "celery",
            "LAKE_CELERY_BROKER_URL": f"{redis}/0",
            "LAKE_CELERY_BACKEND_URL": f"{redis}/1",
            "LAKE_CATALOG_URI": f"postgresql+psycopg2://lake@127.0.0.1:{ports['pg']}/iceberg",
            "LAKE_STORE_URL": f"s3://{BUCKET}/lake",
            "LAKE_S3_ENDPOINT_URL": f"http://127.0.0.1:{ports['s3']}",
            "LAKE_S3_REGION": "us-east-1",
            "LAKE_S3_ALLOW_HTTP": "true",
            "LAKE_S3_ADDRESSING_STYLE": "path",
            "AWS_ACCESS_KEY_ID": S3_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "LAKE_UI_URL": f"http://127.0.0.1:{ports['ui']}",
        }

    def _write_env(self, env: dict[str, str]) -> None:
        text = "".join(f"{k}={v}\n" for k, v in env.items())
        (self.run_dir / "cluster.env").write_text(text)

    def _redis(self, port: int, env: dict[str, str]) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("cluster: redis-server is missing: run .ci/install-redis")
        cmd = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "no", "--dir", str(self.run_dir / "redis")]
        self._spawn("redis", cmd, env)
        _wait("redis", lambda: _answers(port), 30, self.logs / "redis.log")

    def _postgres(self, port: int) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise RuntimeError("cluster: PostgreSQL is missing: run .ci/install-postgresql")
        bindir, data = found[-1].parent, self.run_dir / "pg"
        as_user = []
        if os.geteuid() == 0:
            # initdb refuses root: the server runs as `postgres`, its data in a directory of
            # its own (the run directory's parents may be closed to that user)
            data = Path(tempfile.mkdtemp(prefix="lake-cluster-pg-"))
            pw = pwd.getpwnam("postgres")
            os.chown(data, pw.pw_uid, pw.pw_gid)
            as_user = ["runuser", "-u", "postgres", "--"]
        else:
            data.mkdir()
        (self.run_dir / "pg.path").write_text(str(data))

        def run(*cmd: str) -> None:
            done = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)
            if done.returncode:
                raise RuntimeError(f"cluster: {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")

        run(str(bindir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "lake")
        options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=200"
        log = str(data / "log")
        run(str(bindir / "pg_ctl"), "-D", str(data / "db"), "-o", options, "-l", log, "-w", "start")
        pid = int((data / "db" / "postmaster.pid").read_text().split()[0])
        (self.pids / "postgres.pid").write_text(f"{pid} {_started_at(pid)}\n")
        for db in ("dagster", "iceberg"):
            run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "lake", db)

    def _s3(self, port: int, env: dict[str, str]) -> None:
        import boto3

        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        self._spawn("s3", cmd, env)
        endpoint = f"http://127.0.0.1:{port}"
        _wait("S3 server", lambda: _http_ok(f"{endpoint}/moto-api/"), 60, self.logs / "s3.log")
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=BUCKET)

    # -- down --------------------------------------------------------------------------------

    def down(self, grace: float = 20.0) -> list[str]:
        """Stop every process named in ``pids/`` (its whole process group); what was stopped."""
        stopped = []
        for pidfile in sorted(self.pids.glob("*.pid")) if self.pids.exists() else []:
            if self._alive(pidfile):
                pid = int(pidfile.read_text().split()[0])
                self._stop(pid, group=pidfile.stem != "postgres", grace=grace)
                stopped.append(pidfile.stem)
            pidfile.unlink()
        pg = self.run_dir / "pg.path"
        if pg.exists():  # the database's files, once its server has stopped
            shutil.rmtree(pg.read_text(), ignore_errors=True)
            pg.unlink()
        return stopped

    def _stop(self, pid: int, group: bool, grace: float) -> None:
        kill = os.killpg if group else os.kill
        # PostgreSQL's postmaster shuts down fast on SIGINT; the others on SIGTERM.
        try:
            kill(pid, signal.SIGTERM if group else signal.SIGINT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while _alive(pid, group) and time.monotonic() < deadline:
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            kill(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down", "status", "worker-config"))
    parser.add_argument("--run-dir", default=".cluster", type=Path)
    parser.add_argument("--ui-port", default=0, type=int, help="web UI port (default: a free one)")
    args = parser.parse_args(argv)
    cluster = Cluster(args.run_dir)
    if args.action == "worker-config":  # for workers started elsewhere (Kubernetes)
        print(worker_config(DeploySettings.from_env()))
    elif args.action == "up":
        try:
            env = cluster.up(args.ui_port)
        except (RuntimeError, ConfigError) as exc:
            print(exc, file=sys.stderr)
            cluster.down()
            raise SystemExit(1) from None
        where = cluster.run_dir / "cluster.env"
        print(f"cluster: up; web UI {env['LAKE_UI_URL']}; settings in {where}")
    elif args.action == "down":
        print(f"cluster: stopped {', '.join(cluster.down()) or 'nothing'}")
    else:
        print(f"cluster: running {', '.join(cluster.running()) or 'nothing'}")


if __name__ == "__main__":
    main()
