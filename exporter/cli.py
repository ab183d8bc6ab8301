"""The ``backup-monitor`` command line."""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from exporter import __version__
from exporter.commands.exitcodes import Exit
from exporter.commands.logs import setup_logging
from exporter.config import Config, ConfigError, load_config, parse_target_spec, render_config

T = TypeVar("T")
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"backup-monitor: {message}", err=True)
    sys.exit(code)


def _load(
    config_path: str | None, targets: tuple[str, ...], require_targets: bool = True, **flags: Any
) -> Config:
    overrides: dict[str, Any] = dict(flags)
    if targets:
        # Targets from the command line replace those of the file and the environment.
        overrides["targets"] = [parse_target_spec(t) for t in targets]
    try:
        config = load_config(config_path, overrides=overrides)
    except ConfigError as exc:
        _fail(f"config error: {exc}", Exit.CONFIG)
    if require_targets and not config.targets:
        _fail(
            "config error: targets: no target configured "
            "(use --target [NAME=]PATH, BACKUP_MONITOR_TARGETS or a config file)",
            Exit.CONFIG,
        )
    return config


def _progress(items: Sequence[T], label: str) -> Iterator[T]:
    """A progress bar on a terminal for long runs; nothing at all otherwise."""
    if len(items) < 2 or not sys.stderr.isatty():
        yield from items
        return
    with click.progressbar(items, label=label, file=sys.stderr) as bar:
        yield from bar


format_option = click.option(
    "--format",
    "output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)


def config_option(what: str) -> Decorator:
    """--config/-c FILE (or BACKUP_MONITOR_CONFIG), said of as ``what``."""
    return click.option(
        "--config",
        "-c",
        "config_path",
        envvar="BACKUP_MONITOR_CONFIG",
        metavar="FILE",
        help=f"{what} [env: BACKUP_MONITOR_CONFIG].",
    )


def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--target",
        "-t",
        "targets",
        multiple=True,
        metavar="[NAME=]PATH",
        help="A backup directory to watch (repeatable); NAME defaults to its base name. "
        "Replaces the targets of the config file.",
    )(func)
    return config_option("YAML configuration file")(func)


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", "-V", prog_name="backup-monitor")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Watch backup directories, publish Prometheus metrics and alert when backups go stale.

    With no command, runs `serve` with the configuration from BACKUP_MONITOR_CONFIG
    and the BACKUP_MONITOR_* environment variables.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(serve)


def _serve(config: Config, reload: Callable[[], Config] | None = None) -> None:
    """Run until SIGTERM/SIGINT; on SIGHUP, ``reload()`` gives the new configuration."""
    from exporter.daemon import Daemon

    setup_logging(config.log_level, config.log_format)
    try:
        daemon = Daemon(config)
    except ConfigError as exc:
        _fail(f"config error: {exc}", Exit.CONFIG)
    except OSError as exc:
        _fail(f"cannot listen on {config.listen}: {exc.strerror or exc}", Exit.FAILING)
    stop = threading.Event()
    hup = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: (hup.set(), stop.set()))
    daemon.start()
    settle_heap()
    click.echo(f"backup-monitor {__version__}: metrics at {daemon.url}", err=True)
    while True:
        while not stop.wait(1):
            pass
        if not hup.is_set():
            break
        hup.clear()
        stop.clear()
        _reload(daemon, reload)
        settle_heap()
    daemon.stop()


def settle_heap() -> None:
    """Put what lives as long as the process (modules, indexes) out of the cyclic GC's reach.

    A full collection walks every tracked object, about 30 ms for the daemon's own 40,000,
    and lands on whichever scrape is unlucky. Objects that die later are still freed by
    reference counting; after a reload what the old configuration held is released first.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _reload(daemon: Any, reload: Callable[[], Config] | None) -> None:
    log = logging.getLogger("exporter.cli")
    if reload is None:
        log.warning("SIGHUP: nothing to reload (no configuration file)")
        return
    try:
        config = reload()
        daemon.reload(config)
    except ConfigError as exc:
        log.error("reload rejected, keeping the running configuration: %s", exc)
        return
    except Exception as exc:  # noqa: BLE001 - whatever the file holds, the daemon goes on
        log.error("reload failed, keeping the running configuration: %s", exc)
        return
    setup_logging(config.log_level, config.log_format)


@main.command()
@config_options
@click.option("--listen", "-l", metavar="HOST:PORT", help="Address to serve on [default: :19117].")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="Log verbosity [default: info].",
)
@click.option("--log-format", type=click.Choice(["text", "json"]), help="Log line format.")
@click.option(
    "--web.config.file",
    "web_config_file",
    metavar="FILE",
    help="TLS and basic auth for the endpoint (Prometheus exporter-toolkit format).",
)
def serve(
    config_path: str | None = None,
    targets: tuple[str, ...] = (),
    listen: str | None = None,
    log_level: str | None = None,
    log_format: str | None = None,
    web_config_file: str | None = None,
) -> None:
    """Run the exporter and monitor in the foreground (the default command)."""
    flags = {
        "listen": listen,
        "log_level": log_level,
        "log_format": log_format,
        "web_config_file": web_config_file,
    }
    config = _load(config_path, targets, **flags)

    def reload() -> Config:
        overrides: dict[str, Any] = dict(flags)
        if targets:
            overrides["targets"] = [parse_target_spec(t) for t in targets]
        return load_config(config_path, overrides=overrides)

    _serve(config, reload)


@main.command()
@config_options
@format_option
@click.option(
    "--textfile",
    metavar="FILE",
    help="Also write the metrics to FILE (atomically) for node_exporter's textfile collector.",
)
def check(
    config_path: str | None, targets: tuple[str, ...], output: str, textfile: str | None
) -> None:
    """Scan every target once, verify each newest backup, and report each check.

    Exit status: 0 all pass, 1 a check fails, 2 bad configuration, 3 a target cannot be read.
    With --format json, prints the same versioned document as /api/v1/targets.
    """
    import time

    from exporter.commands.check import (
        exit_code,
        render_json,
        render_table,
        run_checks,
        write_textfile,
    )

    config = _load(config_path, targets)
    setup_logging("error", config.log_format)
    targets, now = run_checks(config, progress=lambda ts: _progress(ts, "checking"))
    if textfile:
        try:
            write_textfile(textfile, targets, config, time.time)
        except OSError as exc:
            _fail(f"cannot write {textfile}: {exc.strerror or exc}", Exit.FAILING)
    render = render_json if output == "json" else render_table
    click.echo(render(targets, now), nl=False)
    sys.exit(exit_code(targets, now))


@main.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option(
    "--kind",
    type=click.Choice(["auto", "sqlite", "archive", "checksum"]),
    default="auto",
    show_default=True,
    help="What to check (auto: by content and extension).",
)
@click.option("--query", metavar="SQL", help="For SQLite: a query that must return a row.")
@click.option(
    "--quick", is_flag=True, help="For SQLite: PRAGMA quick_check instead of integrity_check."
)
@click.option("--timeout", default="60s", show_default=True, help="Time limit per file.")
@click.option(
    "--identity",
    metavar="FILE",
    help="An age identity file: age-encrypted backups are decrypted and checked inside "
    "(needs the optional pyrage package); without it only their envelope is checked.",
)
@click.option(
    "--max-bytes",
    default="64GiB",
    show_default=True,
    help="Decompressed bytes read at most per file (against decompression bombs).",
)
def verify(
    paths: tuple[str, ...],
    kind: str,
    query: str | None,
    quick: bool,
    timeout: str,
    identity: str | None,
    max_bytes: str,
) -> None:
    """Check that backup files are restorable (SQLite integrity, archive CRCs, checksums).

    Prints a line per file; never modifies a file. Exit status: 0 all ok, 1 a file is
    broken, 3 a file could not be verified (not a regular file, unreadable, no space for
    a temporary copy).
    """
    from exporter.units import parse_duration, parse_size, printable
    from exporter.verify.content import VerifyOptions, verify_file

    try:
        options = VerifyOptions(
            kind=kind,
            sqlite_check="quick_check" if quick else "integrity_check",
            query=query,
            timeout=parse_duration(timeout),
            max_bytes=parse_size(max_bytes),
            identity=identity,
        )
    except ValueError as exc:
        _fail(f"--timeout/--max-bytes: {exc}", Exit.CONFIG)
    failed = errors = 0
    for path in _progress(paths, "verifying"):
        result = verify_file(path, options)
        shown = printable(path)
        if result is None:
            click.echo(
                f"skip  {shown}: no content check applies (not SQLite, an archive or checksummed)"
            )
        elif result.ok:
            click.echo(f"ok    {shown}: {printable(result.reason)} ({result.duration:.2f}s)")
        elif result.error:
            errors += 1
            click.echo(f"ERROR {shown}: {printable(result.reason)}")
        else:
            failed += 1
            click.echo(f"FAIL  {shown}: {printable(result.reason)}")
    sys.exit(Exit.FAILING if failed else Exit.UNREADABLE if errors else Exit.OK)


@main.command(context_settings={"allow_interspersed_args": False})
@click.option("--target", "target", required=True, metavar="NAME", help="The target (with job:).")
@click.option(
    "--url",
    envvar="BACKUP_MONITOR_URL",
    metavar="URL",
    help="The daemon's base URL, user:password@ for basic auth [env: BACKUP_MONITOR_URL; "
    "default: the configured listen address].",
)
@config_option("The daemon's configuration, for its address and the target's token")
@click.option(
    "--token",
    envvar="BACKUP_MONITOR_JOB_TOKEN",
    metavar="TOKEN",
    help="The target's job.token [env: BACKUP_MONITOR_JOB_TOKEN; default: from the config].",
)
@click.option("--timeout", default=10.0, show_default=True, help="Seconds per report.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    target: str,
    url: str | None,
    config_path: str | None,
    token: str | None,
    timeout: float,
    command: tuple[str, ...],
) -> None:
    """Run a backup job and report it: start, exit status, duration, output.

    \b
      backup-monitor run --target quota-proxy -- /opt/backup.sh --full

    The command's output is passed through; the exit status is the command's (128+N
    for signal N). When the daemon cannot be reached the command still runs, and a
    warning goes to stderr: monitoring never breaks the backup.
    """
    from exporter.commands.run import Reporter, run_command

    def warn(message: str) -> None:
        click.echo(f"backup-monitor run: warning: {message}", err=True)

    if url is None or token is None:
        url, token = _job_endpoint(config_path, target, url, token, warn)
    if not url.startswith(("http://", "https://")):
        _fail("--url must be an http:// or https:// URL", Exit.CONFIG)
    reporter = Reporter(url, target, token, timeout, warn)
    sys.exit(run_command(command, reporter, sys.stdout.buffer, sys.stderr.buffer))


def _job_endpoint(
    config_path: str | None,
    target: str,
    url: str | None,
    token: str | None,
    warn: Callable[[str], None],
) -> tuple[str, str | None]:
    """The daemon's URL and the target's token from the configuration; a configuration
    that cannot be read is a warning here, never a reason not to run the job."""
    from exporter.commands.run import local_url

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        warn(f"config error: {exc}")
        return url or local_url(":19117", tls=False), token
    found = next((t for t in config.targets if t.name == target), None)
    if config.targets and (found is None or found.job is None):
        warn(f"target {target!r} has no job: in the configuration; the daemon will refuse it")
    if token is None and found is not None and found.job is not None:
        token = found.job.token
    if url is None:
        url = local_url(config.listen, tls=_serves_tls(config, warn))
    return url, token


def _serves_tls(config: Config, warn: Callable[[str], None]) -> bool:
    if not config.web_config_file:
        return False
    from exporter.web.auth import load_web_config

    try:
        return load_web_config(config.web_config_file).tls_server_config is not None
    except ConfigError as exc:  # only a warning here: the job runs regardless
        warn(str(exc))
        return False


@main.command()
@click.option("--target", "target_name", required=True, metavar="NAME", help="The target.")
@click.option(
    "--backup",
    metavar="PATH",
    help="Restore this file instead of the target's newest backup (and the drill's picks).",
)
@format_option
@config_option("YAML configuration file")
def drill(target_name: str, backup: str | None, output: str, config_path: str | None) -> None:
    """Run one restore drill now: restore, check, compare with the live database.

    Prints what was restored, each phase's time, the row counts per table against the
    live database, and the verdict. The target's `drill:` settings apply (defaults
    without). Exit status: 0 pass, 1 fail, 2 bad configuration, 3 target unreadable.
    """
    import time

    from exporter.commands.drill import render_json, render_table
    from exporter.sources.supervisor import scan_into_index
    from exporter.target import Target
    from exporter.verify.pool import drill_target

    config = _load(config_path, ())
    setup_logging("error", config.log_format)
    found = next((t for t in config.targets if t.name == target_name), None)
    if found is None:
        _fail(f"config error: no target named {target_name!r}", Exit.CONFIG)
    if found.remote:
        _fail(f"config error: target {target_name!r}: drills restore local backups", Exit.CONFIG)
    target = Target(found)
    if backup is None:
        scan_into_index(target, time.time)
        snap = target.index.snapshot()
        if not snap.up:
            _fail(f"target {target_name}: {snap.error}", Exit.UNREADABLE)
    elif not os.path.isfile(backup):
        _fail(f"{backup}: not a file", Exit.UNREADABLE)
    results = drill_target(target, config.state_dir, time.time, backup)
    click.echo((render_json if output == "json" else render_table)(results), nl=False)
    sys.exit(Exit.OK if all(r.ok for r in results) else Exit.FAILING)


@main.group(name="config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command(name="check")
@config_options
def config_check(config_path: str | None, targets: tuple[str, ...]) -> None:
    """Validate the configuration and print the effective result (exit 2 if invalid)."""
    from exporter.alerting.redact import redact_url

    config = _load(config_path, targets, require_targets=False)
    _channels(config)
    click.echo(render_config(config, redact_url), nl=False)


def _channels(config: Config) -> list[Any]:
    """The notification channels, or exit 2 naming the URL apprise cannot use."""
    from exporter.alerting.delivery import build_channels

    try:
        return build_channels(config.notify)
    except ConfigError as exc:
        _fail(f"config error: {exc}", Exit.CONFIG)


@main.group(name="notify")
def notify_group() -> None:
    """Try the notification URLs."""


@notify_group.command(name="test")
@config_options
def notify_test(config_path: str | None, targets: tuple[str, ...]) -> None:
    """Send a test notification through every configured URL (exit 1 if any fails)."""
    from exporter.alerting.messages import TEST, Notification

    config = _load(config_path, targets, require_targets=False)
    setup_logging("error", config.log_format)
    channels = _channels(config)
    if not channels:
        _fail("no notification URL configured (notify.urls or notify.config)", Exit.FAILING)
    message = Notification(
        status=TEST,
        target="-",
        check="-",
        title="[TEST] backup-monitor notification",
        body="This is a test notification from backup-monitor. Alerts will arrive like this.",
    )
    failed = 0
    for channel in channels:
        ok = channel.send(message)
        failed += not ok
        click.echo(f"{'ok  ' if ok else 'FAIL'}  {channel.name}")
    sys.exit(Exit.FAILING if failed else Exit.OK)


@main.command()
@click.option(
    "--dir",
    "directory",
    default="demo-backups",
    show_default=True,
    help="Where to create the demo backups.",
)
@click.option("--listen", "-l", metavar="HOST:PORT", help="Address to serve on [default: :19117].")
def demo(directory: str, listen: str | None) -> None:
    """Create a demo backup directory (SQLite backups, one fresh) and serve it."""
    from exporter.commands.demo import make_demo_backups

    made = make_demo_backups(Path(directory))
    click.echo(f"demo: {len(made)} backups in {Path(directory).resolve()}", err=True)
    _serve(_load(None, (f"demo={directory}",), listen=listen))


def _bundled(render: Callable[[], str], config_path: str | None, namespace: str | None) -> None:
    from exporter.commands.bundle import NotBundled, namespaced

    if namespace is None:
        namespace = _load(config_path, (), require_targets=False).namespace
    try:
        click.echo(namespaced(render(), namespace), nl=False)
    except NotBundled as exc:
        _fail(str(exc), Exit.FAILING)


namespace_option = click.option(
    "--namespace",
    metavar="NAME",
    help="Metric namespace to render for [default: the configuration's, else backup].",
)


@main.command()
@config_options
@namespace_option
def rules(config_path: str | None, targets: tuple[str, ...], namespace: str | None) -> None:
    """Print the bundled Prometheus alerting rules for the configured metric namespace.

    With the default namespace this is alerts/prometheus/backup-monitor.rules.yml as shipped.
    """
    from exporter.commands.bundle import rules_text

    _bundled(rules_text, config_path, namespace)


@main.command()
@config_options
@namespace_option
def dashboard(config_path: str | None, targets: tuple[str, ...], namespace: str | None) -> None:
    """Print the bundled Grafana dashboard (JSON) for the configured metric namespace."""
    from exporter.commands.bundle import dashboard_text

    _bundled(dashboard_text, config_path, namespace)


def _daemon_url_option(default: str, envvar: str) -> Decorator:
    """--url of the running daemon, for the commands that ask it."""
    return click.option(
        "--url",
        default=default,
        show_default=True,
        envvar=envvar,
        help=f"The running daemon [env: {envvar}].",
    )


@main.command()
@_daemon_url_option("http://localhost:19117", "BACKUP_MONITOR_STATUS_URL")
@format_option
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the daemon.")
def status(url: str, output: str, timeout: float) -> None:
    """Show the status of a running daemon (from its /api/v1/targets).

    Exit status: 0 all pass, 1 a check fails, 3 a target cannot be read, 4 the daemon
    cannot be reached.
    """
    import json

    from exporter.commands.status_view import exit_code_for, render_status

    endpoint = url.rstrip("/") + "/api/v1/targets"
    try:
        document = json.loads(_get(endpoint, timeout))
    except (OSError, ValueError) as exc:
        _fail(f"cannot get the status from {endpoint}: {_reason(exc)}", Exit.UNREACHABLE)
    if output == "json":
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(render_status(document, color=sys.stdout.isatty()), nl=False)
    sys.exit(exit_code_for(document))


@main.command()
@_daemon_url_option("http://127.0.0.1:19117", "BACKUP_MONITOR_HEALTH_URL")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait.")
def health(url: str, timeout: float) -> None:
    """Exit 0 if the running daemon is healthy (its /healthz), 1 if not: for HEALTHCHECK."""
    endpoint = url.rstrip("/") + "/healthz"
    try:
        click.echo(_get(endpoint, timeout).decode().strip())
    except OSError as exc:
        _fail(f"unhealthy: {endpoint}: {_reason(exc)}", Exit.FAILING)


def _get(url: str, timeout: float) -> bytes:
    """The body of a GET to the running daemon; OSError (URLError, HTTPError) if none."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own URL
        body: bytes = response.read()
    return body


def _reason(exc: Exception) -> object:
    """What went wrong, in a few words: URLError keeps it in ``reason``."""
    return getattr(exc, "reason", None) or exc
