"""CI runs exactly the README's test command."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = next(line for line in ci if line.endswith("&& pytest"))
    readme = (ROOT / "README.md").read_text()
    assert f"\n{command}\n" in readme
    assert "snakemake --cores all" in readme
