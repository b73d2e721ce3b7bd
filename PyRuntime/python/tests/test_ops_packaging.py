"""The service unit and the container image stay in step with the scripts they wrap."""
import os
import re
import shlex
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def test_the_service_unit_and_its_gpu_drop_in_verify_and_the_installer_plans_without_changing_anything():
    result = subprocess.run([os.path.join(ROOT, "ops", "install-service"), "--gpu", "--dry-run"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the unit verifies" in result.stdout
    assert "+ systemctl enable --now timbre.service" in result.stdout
    unit = open(os.path.join(ROOT, "ops", "systemd", "timbre.service")).read()
    # The hardening the service relies on: one writable place, no home directories, no privileges.
    for line in ("ProtectSystem=strict", "ReadWritePaths=/var/lib/timbre", "ProtectHome=yes", "NoNewPrivileges=yes", "User=timbre", "Type=notify"):
        assert line in unit.splitlines(), line


def test_the_dockerfiles_gpu_step_is_a_valid_ops_install_gpu_call(tmp_path):
    dockerfile = open(os.path.join(ROOT, "Dockerfile")).read()
    call = re.search(r"RUN (/opt/timbre-src/ops/install-gpu .*?)\s*\\\n\s*&&", dockerfile, re.S)
    assert call, "the gpu target runs ops/install-gpu"
    args = shlex.split(call.group(1).replace("\\\n", " ").replace('"$ENGINES"', "qwen3").replace('"$QWEN_MODEL"', "Qwen/Qwen3-TTS-12Hz-1.7B-Base"))[1:]
    # The same options, with this checkout's script and throw-away paths, as a dry run.
    args = [tmp_path.joinpath(a.lstrip("/").replace("/", "_")).as_posix() if a.startswith("/opt/") else a for a in args]
    result = subprocess.run([os.path.join(ROOT, "ops", "install-gpu"), "--dry-run", "--python", "/usr/bin/python3", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # The settings land where the image's entrypoint reads them, and point at the image's venv.
    assert f"+ write {tmp_path}/opt_timbre-gpu_timbre.env:" in result.stdout
    assert f"Timbre__Python__Executable={tmp_path}/opt_timbre-gpu_venv/bin/python" in result.stdout
    assert "/opt/timbre-gpu/timbre.env" in dockerfile.split("FROM cpu AS gpu")[1].split("ENTRYPOINT")[-1]
    # Every script the image copies exists.
    for script in re.findall(r"COPY (ops/\S+)", dockerfile):
        assert os.path.exists(os.path.join(ROOT, script)), script
