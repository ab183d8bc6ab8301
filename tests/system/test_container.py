"""The image and the compose stack, built and run for real (buildah, chroot isolation).

No registry image can be pulled here, so the base is built from Debian packages with
debootstrap and cached as localhost/backup-monitor-base; the Dockerfile itself is
standard and takes it through --build-arg BASE. Run alone with `make test-container`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import fetch, parse_samples, require_tool, value, wait_for
from tests.helpers import ROOT, make_db
from tests.peers import free_port

COMPOSE = ROOT / "deploy" / "compose" / "compose.yml"
BASE = "localhost/backup-monitor-base:bookworm"
IMAGE = "localhost/backup-monitor:test"
STORAGE = ["--storage-driver", "vfs"]

pytestmark = pytest.mark.container


def run(*args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    assert result.returncode == 0, (
        f"{' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def test_compose_file_is_valid_and_mounts_exist() -> None:
    checker = shutil.which("check-jsonschema") or str(
        Path(os.sys.executable).parent / "check-jsonschema"
    )
    run(checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    compose = yaml.safe_load(COMPOSE.read_text())
    assert set(compose["services"]) == {"backup-monitor", "prometheus", "alertmanager", "grafana"}
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")) and not source.startswith("/opt/roc"):
                assert (COMPOSE.parent / source).exists(), f"{source} is mounted but missing"
    assert (
        "/opt/roc/quota-proxy/backups:/backups:ro"
        in compose["services"]["backup-monitor"]["volumes"]
    )


def debian_mirror() -> str:
    """The mirror this machine's apt uses."""
    for path in Path("/etc/apt").glob("sources.list*/*.sources"):
        found = re.search(r"^URIs:\s*(\S+)", path.read_text(), re.MULTILINE)
        if found:
            return found.group(1)
    sources = Path("/etc/apt/sources.list")
    if sources.exists():
        found = re.search(r"^deb\s+(\S+)\s+bookworm", sources.read_text(), re.MULTILINE)
        if found:
            return found.group(1)
    return "http://deb.debian.org/debian"


def image_exists(buildah: str, name: str) -> bool:
    result = subprocess.run(
        [buildah, *STORAGE, "images", "--quiet", name], capture_output=True, text=True, check=False
    )
    return result.returncode == 0 and bool(result.stdout.strip())


def build_base(buildah: str) -> None:
    """A python3 base from Debian packages, trusting the machine's certificate authorities."""
    if image_exists(buildah, BASE):
        return
    debootstrap = require_tool("debootstrap", "debootstrap")
    podman = require_tool("podman", "podman")
    with tempfile.TemporaryDirectory(prefix="bm-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(
            debootstrap,
            "--variant=minbase",
            "--include=python3,python3-venv,python3-pip,passwd",
            "bookworm",
            str(rootfs),
            debian_mirror(),
            timeout=900,
        )
        tarball = Path(tmp) / "rootfs.tar"
        run("tar", "-C", str(rootfs), "-cf", str(tarball), ".")
        run(podman, *STORAGE, "import", str(tarball), "localhost/backup-monitor-base-raw")
        context = Path(tmp) / "context"
        context.mkdir()
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", context / "ca-certificates.crt")
        (context / "pip.conf").write_text("[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n")
        (context / "Containerfile").write_text(
            "FROM localhost/backup-monitor-base-raw\n"
            "COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\n"
            "COPY pip.conf /etc/pip.conf\n"
        )
        run(buildah, *STORAGE, "bud", "--isolation", "chroot", "-t", BASE, str(context))


def test_image_builds_and_runs(tmp_path: Path) -> None:
    buildah = require_tool("buildah", "buildah")
    if os.geteuid() != 0:
        pytest.skip("buildah with the vfs driver and chroot isolation needs root here")
    build_base(buildah)
    started = time.monotonic()
    run(
        buildah,
        *STORAGE,
        "bud",
        "--isolation",
        "chroot",
        "--build-arg",
        f"BASE={BASE}",
        "--layers",
        "-t",
        IMAGE,
        str(ROOT),
        timeout=900,
    )
    build_seconds = time.monotonic() - started
    inspect = run(
        buildah,
        *STORAGE,
        "inspect",
        "--type",
        "image",
        "--format",
        "{{.OCIv1.Config.User}}|{{.OCIv1.Config.Entrypoint}}|{{.OCIv1.Config.Cmd}}",
        IMAGE,
    ).stdout
    user, entrypoint, cmd = inspect.strip().split("|")
    assert user == "10001:10001"
    assert entrypoint == "[backup-monitor]"
    assert cmd == "[serve --config /etc/backup-monitor/config.yml]"

    backups = tmp_path / "backups"
    backups.mkdir()
    for day in range(3):
        db = make_db(backups / f"backup-2026-05-2{day}-02-00-00.db")
        os.utime(db, (time.time() - (3 - day) * 3600,) * 2)
    backups.chmod(0o755)
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(
        yaml.safe_dump(
            {
                **yaml.safe_load((ROOT / "deploy" / "compose" / "backup-monitor.yml").read_text()),
                "listen": f"127.0.0.1:{port}",
            }
        )
    )
    config.chmod(0o644)
    tmp_path.chmod(0o755)
    container = run(buildah, *STORAGE, "from", IMAGE).stdout.strip()
    mounts = ["-v", f"{backups}:/backups:ro", "-v", f"{config}:/etc/backup-monitor/config.yml:ro"]
    # The image's own entrypoint and command, as its config says.
    in_container = [buildah, *STORAGE, "run", "--isolation", "chroot"]
    proc = subprocess.Popen(
        [
            *in_container,
            *mounts,
            container,
            "--",
            "backup-monitor",
            "serve",
            "--config",
            "/etc/backup-monitor/config.yml",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}/metrics"

        def up() -> bool:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                return value(parse_samples(fetch(url)), "backup_count", target="quota-proxy") == 3
            except OSError:
                return False

        wait_for(up, timeout=60)
        wait_for(lambda: 'backup_verify_ok{target="quota-proxy"} 1.0' in fetch(url), timeout=60)
        uid = run(*in_container, container, "--", "id", "-u").stdout
        assert uid.strip() == "10001"
        # The wheel ships the rules and the dashboard the CLI renders.
        command = [*in_container, container, "--", "backup-monitor"]
        rendered = run(*command, "dashboard", "--namespace", "quota_proxy_backup").stdout
        assert "quota_proxy_backup_age_seconds" in rendered
        assert "alert: BackupTooOld" in run(*command, "rules").stdout
        run(
            *in_container,
            container,
            "--",
            "backup-monitor",
            "health",
            "--url",
            f"http://127.0.0.1:{port}",
        )
    finally:
        proc.terminate()
        proc.wait(20)
        subprocess.run([buildah, *STORAGE, "rm", container], capture_output=True, check=False)
    size = run(buildah, *STORAGE, "images", "--format", "{{.Size}}", IMAGE).stdout.strip()
    # vfs copies whole layers: drop the dangling ones of earlier builds (the cache stays).
    subprocess.run([buildah, *STORAGE, "rmi", "--prune"], capture_output=True, check=False)
    print(f"image {IMAGE}: {size}, built in {build_seconds:.0f}s")
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    (ROOT / "test-artifacts" / "image-size.txt").write_text(f"{size}\n")
