"""The README is the front door: it must show the two commands and document every setting."""
from blockproof.settings import PROJECT_ROOT, Settings

README = (PROJECT_ROOT / "README.md").read_text()


def test_readme_shows_the_two_commands():
    assert "make demo" in README and "make test" in README


def test_every_setting_is_documented_in_the_readme():
    for name in Settings.model_fields:
        env = "DATABASE_URL" if name == "database_url" else f"BLOCKPROOF_{name.upper()}"
        assert f"`{env}`" in README, f"{env} is not documented in README.md"
