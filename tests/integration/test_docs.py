"""The README is the front door (two commands, the flow, the layout, where to read on, at most 12,000
characters); the reference lives in docs/, cites only files that exist, and documents every setting."""
import os
import re
import subprocess

from blockproof.settings import PROJECT_ROOT, Settings, SignerSettings, configuration_doc

README = (PROJECT_ROOT / "README.md").read_text()
DOCS = {p: p.read_text() for p in [PROJECT_ROOT / "README.md", PROJECT_ROOT / "BENCHMARKS.md",
                                    *sorted((PROJECT_ROOT / "docs").glob("*.md"))]}


def test_readme_shows_the_two_commands_and_stays_a_front_door():
    assert "make demo" in README and "make test" in README
    assert len(README) <= 12_000, f"README.md has {len(README):,} characters"


def test_every_setting_is_documented_and_the_configuration_page_is_generated_from_the_settings():
    page = (PROJECT_ROOT / "docs" / "configuration.md").read_text()
    assert page == configuration_doc(), "run: python -m blockproof.settings > docs/configuration.md"
    for name in SignerSettings.model_fields:
        env = "DATABASE_URL" if name == "database_url" else f"BLOCKPROOF_{name.upper()}"
        assert f"`{env}`" in page, env
    assert set(Settings.model_fields) <= set(SignerSettings.model_fields)


def test_every_file_the_docs_link_to_or_name_exists():
    for path, text in DOCS.items():
        for target in re.findall(r"\]\(([^)#]+)\)", text):
            if not target.startswith(("http://", "https://")):
                assert (path.parent / target).exists(), f"{path.name} links to {target}, which does not exist"
        for name in re.findall(r"`([\w./-]+\.(?:md|py|sol|json|yaml|mjs))`", text):
            if ("/" in name or name.endswith(".md")) and not name.startswith(("/", "var/", "secrets/")):  # URLs, run-time files
                found = ((PROJECT_ROOT / name).exists() or (path.parent / name).exists()
                         or any(PROJECT_ROOT.glob(f"*/{name}")))  # a layout row names files inside its folder
                assert found, f"{path.name} names {name}, which is not in the repository"


def test_every_markdown_file_the_docs_sources_and_tests_name_is_in_the_repository():
    # a design note kept beside the project (not in it) must never be cited: a reader could not open it
    cited = re.compile(r"\b([A-Z][A-Z0-9_-]+\.md)\b")
    present = {p.name for p in PROJECT_ROOT.rglob("*.md") if ".venv" not in p.parts and "node_modules" not in p.parts}
    folders = ("blockproof", "chain", "contracts", "models", "producers", "workers", "web", "bench", "tests")
    sources = [p for folder in folders for p in (PROJECT_ROOT / folder).rglob("*")
               if p.suffix in {".py", ".sol", ".html", ".js", ".md", ".mjs"}]
    texts = DOCS.items() | {p: p.read_text() for p in sources}.items()
    for extra in ("Makefile", "compose.yaml", "compose.dev.yaml", "pyproject.toml", "Dockerfile"):
        if (PROJECT_ROOT / extra).exists():
            texts |= {(PROJECT_ROOT / extra, (PROJECT_ROOT / extra).read_text())}
    for path, text in texts:
        for name in cited.findall(text):
            assert name in present, f"{path} cites {name}, which is not in the repository"
    assert "README.md" in present and "BENCHMARKS.md" in present  # the pattern does find what exists


def test_benchmarks_md_has_one_title_and_sections_named_by_what_they_measure():
    from bench.run_all import ORDER, assemble  # noqa: F401  (the assembled file is what run_all writes)

    text = (PROJECT_ROOT / "BENCHMARKS.md").read_text()
    assert [line for line in text.splitlines() if line.startswith("# ")] == ["# Benchmarks"]
    sections = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert sections == [title for _, _, title in ORDER]


def test_the_readme_unit_tier_command_runs_the_unit_tests_alone_without_a_service():
    command = "`.venv/bin/pytest -m unit`"
    assert command in (PROJECT_ROOT / "README.md").read_text()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "BLOCKPROOF_"))}
    env["BLOCKPROOF_RPC_URL"] = "http://127.0.0.1:9"  # nothing listens there: a unit test that needs a node fails
    result = subprocess.run(command.strip("`").split(), cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    summary = result.stdout.strip().splitlines()[-1]
    passed, deselected = (int(re.search(rf"(\d+) {word}", summary).group(1)) for word in ("passed", "deselected"))
    unit_files = list((PROJECT_ROOT / "tests" / "unit").glob("test_*.py"))
    assert passed >= len(unit_files) and deselected > passed, summary  # the other tiers are left out


def test_every_variable_the_code_or_the_compose_files_name_is_on_the_configuration_page():
    page = (PROJECT_ROOT / "docs" / "configuration.md").read_text()
    sources = [p for folder in ("blockproof", "chain", "models", "producers", "workers", "web", "contracts")
               for p in (PROJECT_ROOT / folder).rglob("*.py")] + list(PROJECT_ROOT.glob("compose*.yaml"))
    named = {m for p in sources for m in re.findall(r"\bBLOCKPROOF_[A-Z0-9_]*[A-Z0-9]\b", p.read_text())}
    missing = sorted(v for v in named if f"`{v}`" not in page)
    assert missing == [], f"named in the code but not on docs/configuration.md: {missing}"
