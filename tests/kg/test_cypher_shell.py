"""``kgrec cypher``: Neo4j's cypher-shell, built by Maven, run against the session's Neo4j."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from ingest.neo4j_writer import write_graph
from ingest.sources.synthetic import SyntheticConfig, generate_shop
from kg.cypher import load_recipe, recipe
from kg.neo4j.cypher_shell import cypher_literal, cypher_shell_command, parameter_map
from kg.neo4j.settings import Neo4jSettings
from tests.conftest import clear_database
from tests.kg.cli_helpers import kgrec

RECIPE_FILE = Path(__file__).resolve().parents[2] / "kg" / "cypher" / "who_bought_also.cypher"


# ------------------------------------------------------------------------- no database
def test_cypher_literals_and_parameter_maps() -> None:
    assert cypher_literal('say "hi"\n\\') == '"say \\"hi\\"\\n\\\\"'
    assert cypher_literal(None) == "null" and cypher_literal(True) == "true"
    assert cypher_literal([1, 2.5, "x"]) == '[1, 2.5, "x"]'
    assert parameter_map({"product": "p1", "k": 10}) == '{`product`: "p1", `k`: 10}'
    with pytest.raises(TypeError):
        cypher_literal(object())


def test_password_travels_in_the_environment_only(tmp_path: Path) -> None:
    settings = Neo4jSettings(uri="bolt://127.0.0.1:7999", password="s3cret-pw", database="db1")
    command = cypher_shell_command(
        settings,
        statement="RETURN 1",
        params={"k": 3},
        output_format="plain",
        environ={"PATH": "/usr/bin", "NEO4J_PASSWORD": "other", "NEO4J_URI": "bolt://x"},
    )
    assert not any("s3cret-pw" in arg for arg in command.argv)
    assert command.env["NEO4J_PASSWORD"] == "s3cret-pw"
    assert command.env["NEO4J_USERNAME"] == "neo4j" and "NEO4J_URI" not in command.env
    argv = command.argv
    assert argv[argv.index("--address") + 1] == "bolt://127.0.0.1:7999"
    assert argv[argv.index("--database") + 1] == "db1"
    assert argv[argv.index("--param") + 1] == "{`k`: 3}" and argv[-1] == "RETURN 1"
    with pytest.raises(ValueError, match="not both"):
        cypher_shell_command(settings, statement="RETURN 1", file=RECIPE_FILE)
    with pytest.raises(ValueError, match="bad parameter name"):
        cypher_shell_command(settings, params={"a b": 1})


def test_recipe_parameters_are_typed_by_the_header() -> None:
    r = load_recipe("who_bought_also")
    assert r.bind({"product": "42"}) == {"product": "42", "k": 10}  # ids stay strings
    assert r.bind({"product": "p1", "k": "3"}) == {"product": "p1", "k": 3}
    with pytest.raises(ValueError, match=r"\$k must be an integer"):
        r.bind({"product": "p1", "k": "many"})
    with pytest.raises(ValueError, match="needs product="):
        r.bind({})
    with pytest.raises(ValueError, match=r"no parameter \$user"):
        r.bind({"product": "p1", "user": "u1"})


def test_bad_arguments_are_one_line_errors() -> None:
    for args, expected in [
        (("-f", "no_such_recipe"), "no such file, nor a shipped recipe"),
        (("-f", "who_bought_also"), "recipe who_bought_also needs product="),
        (("-f", "who_bought_also", "-P", "product=p1", "-P", "k=x"), "$k must be an integer"),
        (("-c", "RETURN 1", "-P", "novalue"), "-P takes name=value"),
    ]:
        proc = kgrec("cypher", *args)
        assert proc.returncode == 1, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], lines


def test_recipes_are_listed() -> None:
    proc = kgrec("cypher", "--recipes")
    assert proc.returncode == 0, proc.stderr
    assert "kgrec cypher -f who_bought_also -P product=<string> [k=10]" in proc.stdout


# ------------------------------------------------------------------------------- Neo4j
@pytest.fixture(scope="module")
def shop_graph(neo4j_driver: Any) -> Any:
    """The session's Neo4j holding the synthetic tiny shop."""
    clear_database(neo4j_driver)
    shop = generate_shop(SyntheticConfig.preset("tiny", seed=0), show_progress=False)
    write_graph(neo4j_driver, shop, show_progress=False)
    return neo4j_driver


def _env(settings: Neo4jSettings) -> dict[str, str]:
    return {"NEO4J_URI": settings.uri, "NEO4J_USERNAME": "neo4j",
            "NEO4J_PASSWORD": settings.password or ""}  # fmt: skip


def _rows(stdout: str) -> list[list[str]]:
    return list(csv.reader(stdout.strip().splitlines(), skipinitialspace=True))


@pytest.mark.neo4j
def test_a_recipe_runs_through_cypher_shell(shop_graph: Any, neo4j_server: Neo4jSettings) -> None:
    proc = kgrec("cypher", "-f", str(RECIPE_FILE), "-P", "product=p1", "-P", "k=5",
                 "--format", "plain", env=_env(neo4j_server))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    header, *rows = _rows(proc.stdout)
    assert header == ["product_id", "title", "users"]
    records, _, _ = shop_graph.execute_query(recipe("who_bought_also"), product="p1", k=5)
    assert len(records) == 5
    assert [(r[0], int(r[-1])) for r in rows] == [(r["product_id"], r["users"]) for r in records]

    by_name = kgrec("cypher", "-f", "who_bought_also", "-P", "product=p1", "-P", "k=5",
                    "--format", "plain", env=_env(neo4j_server))  # fmt: skip
    assert by_name.returncode == 0 and by_name.stdout == proc.stdout


@pytest.mark.neo4j
def test_one_statement_and_its_errors(shop_graph: Any, neo4j_server: Neo4jSettings) -> None:
    env = _env(neo4j_server)
    proc = kgrec("cypher", "-c", "MATCH (n) RETURN count(n) AS nodes", "--format", "plain", env=env)
    assert proc.returncode == 0, proc.stderr
    records, _, _ = shop_graph.execute_query("MATCH (n) RETURN count(n) AS n")
    assert _rows(proc.stdout) == [["nodes"], [str(records[0]["n"])]]

    limited = kgrec("cypher", "-c", "MATCH (p:Product) RETURN p.id AS id ORDER BY id LIMIT $k",
                    "-P", "k=2", "--format", "plain", env=env)  # fmt: skip
    assert limited.returncode == 0, limited.stderr
    assert _rows(limited.stdout) == [["id"], ["p0"], ["p1"]]

    bad = kgrec("cypher", "-c", "MATCH (n RETURN n", env=env)
    assert bad.returncode != 0 and "Invalid input" in bad.stderr
    wrong = kgrec("cypher", "-c", "RETURN 1", env={**env, "NEO4J_PASSWORD": "wrong"})
    assert wrong.returncode != 0 and "unauthorized" in wrong.stderr.lower()
