"""CI runs exactly the README's test command."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = next(line for line in ci if line.endswith("&& pytest"))
    readme = (ROOT / "README.md").read_text()
    assert f"\n{command}\n" in readme
    assert "snakemake --cores all" in readme


def readme_snakemake_commands() -> list[str]:
    """Every `snakemake ...` line of the README's code blocks, with placeholders filled in."""
    lines, inside = [], False
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("```"):
            inside = not inside
        elif inside and line.startswith("snakemake "):
            lines.append(line.split("#")[0].strip().replace("gpu=N", "gpu=1"))
    return lines


REAL_DATA_PRESETS = {
    "synthia-gta-cityscapes": "/data/synthia/RAND_CITYSCAPES",
    "synthia-cityscapes": "/data/synthia/RAND_CITYSCAPES",
    "gta-cityscapes": "/data/gta5",
}
"""Each real-data preset and a root it lacks on a machine without the datasets."""


def test_readme_snakemake_commands_plan_from_the_repository_root():
    """As a new user runs them: from the repository root, where config.yaml is merged with --configfile."""
    import os
    import shlex
    import subprocess
    import sys

    commands = readme_snakemake_commands()
    assert "snakemake --cores all --configfile configs/smoke.yaml" in commands
    # the command that regenerates the README's table of the default run over seeds
    assert "snakemake --cores all --configfile configs/seeds.yaml" in commands
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    for command in commands:
        # --forceall: plan every job even where a user already ran the command in this checkout
        result = subprocess.run([*shlex.split(command), "-n", "--forceall"], cwd=ROOT, env=env, capture_output=True,
                                text=True)
        preset = next((name for name in REAL_DATA_PRESETS if f"configs/{name}.yaml" in command), None)
        if preset:  # real data: absent here, so it must say which root is missing
            assert result.returncode != 0 and REAL_DATA_PRESETS[preset] in result.stdout + result.stderr
            continue
        assert result.returncode == 0, f"{command}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        if "protocols/gta.yaml" in command:  # semantic only, and it says so
            out = result.stdout + result.stderr
            assert "mixing.sources is [gta]: GTA5 has no instance labels" in out and "pretrain_instance" not in out
        if command.endswith("configs/smoke.yaml"):
            # smoke's own instance groups replace config.yaml's `all` group instead of adding to it
            out = result.stdout + result.stderr
            assert "group=vehicles" in out and "group=people" in out and "group=all" not in out
