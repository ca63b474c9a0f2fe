"""``kgrec browse``: the app's answers, and the page driven in headless Chromium (Debian's
package) against the session's Neo4j: log in, run a shipped recipe, count the nodes cytoscape.js
draws, click a node to expand it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.neo4j_writer import write_graph
from ingest.sources.synthetic import SyntheticConfig, generate_shop
from kg.browse.app import EXPAND_LIMIT, EXPAND_QUERY, STATIC_DIR, create_app, websocket_origin
from kg.cypher import recipe
from kg.neo4j.settings import Neo4jSettings
from tests.conftest import IN_CI, clear_database

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TIMEOUT_MS = 90_000  # generous: the machine is shared with Neo4j and other test runs
SETTINGS = Neo4jSettings(uri="bolt://127.0.0.1:7999", password="pw-of-test")


def _needs(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} (scripts/setup.sh installs it)", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="module")
def client() -> Any:
    from starlette.testclient import TestClient

    if not (STATIC_DIR / "app.js").exists():
        _needs("the page is not built")
    with TestClient(create_app(SETTINGS, "the-token"), base_url="http://127.0.0.1:7475") as c:
        yield c


# ------------------------------------------------------------------------------ the app
def test_config_lists_recipes_and_never_the_password(client: Any) -> None:
    answer = client.get("/api/config")
    assert answer.status_code == 200
    config = answer.json()
    assert config["uri"] == SETTINGS.uri and config["user"] == "neo4j" and config["auth"]
    assert "pw-of-test" not in answer.text
    names = [r["name"] for r in config["recipes"]]
    assert "who_bought_also" in names and "product_neighbourhood" in names
    who = config["recipes"][names.index("who_bought_also")]
    assert who["parameters"] == [
        {"name": "product", "type": "string", "description": "a product id", "default": None},
        {"name": "k", "type": "integer", "description": "most rows", "default": 10},
    ]
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self' ws://127.0.0.1:7999" in policy
    assert "'unsafe-inline'" not in policy and "blob:" not in policy  # one hashed <style> only


def test_password_only_with_the_token_and_only_on_loopback(client: Any) -> None:
    assert client.post("/api/login", json={"token": "wrong"}).status_code == 403
    assert client.post("/api/login", content=b"not json").status_code == 403
    ok = client.post("/api/login", json={"token": "the-token"})
    assert ok.status_code == 200 and ok.json() == {"password": "pw-of-test"}
    assert client.get("/api/config", headers={"host": "evil.example:7475"}).status_code == 400
    page = client.get("/")
    assert page.status_code == 200 and 'src="static/app.js"' in page.text


def test_websocket_origins() -> None:
    assert websocket_origin("bolt://127.0.0.1:7687") == "ws://127.0.0.1:7687"
    assert websocket_origin("neo4j+s://db.example") == "wss://db.example:7687"


# ----------------------------------------------------------------------------- the page
@pytest.fixture(scope="module")
def shop_graph(neo4j_driver: Any) -> Any:
    clear_database(neo4j_driver)
    write_graph(
        neo4j_driver,
        generate_shop(SyntheticConfig.preset("tiny", seed=0), show_progress=False),
        show_progress=False,
    )
    return neo4j_driver


@pytest.fixture
def browse_url(neo4j_server: Neo4jSettings) -> Iterator[str]:
    """``kgrec browse --web-port 0`` running against the session's Neo4j; its printed URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
    env.update(NEO4J_URI=neo4j_server.uri, NEO4J_USERNAME="neo4j",
               NEO4J_PASSWORD=neo4j_server.password or "")  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "kg", "browse", "--web-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed once the port is bound
        assert first.startswith("kgrec browse: http://127.0.0.1:"), first + proc.stderr.read()
        yield first.split()[-1]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def _graph_nodes(driver: Any, query: str, **params: Any) -> set[str]:
    records, _, _ = driver.execute_query(query, **params)
    found: set[str] = set()
    for record in records:
        for value in record.values():
            nodes = getattr(value, "nodes", None)  # a path
            if nodes is not None:
                found |= {n.element_id for n in nodes}
            elif hasattr(value, "labels"):
                found.add(value.element_id)
    return found


@pytest.mark.neo4j
def test_page_logs_in_runs_a_recipe_and_expands_a_node(
    shop_graph: Any, browse_url: str, neo4j_server: Neo4jSettings, tmp_path: Path
) -> None:
    if not Path(CHROMIUM).exists():
        _needs(f"{CHROMIUM} is missing (Debian package chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _needs("playwright is not installed")
    expected = _graph_nodes(shop_graph, recipe("product_neighbourhood"), product="p1", k=10)
    assert len(expected) > 3

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh profile
            executable_path=CHROMIUM,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            # Script errors and what the Content-Security-Policy refused (reported as console
            # errors) fail the test.
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(browse_url)
            page.wait_for_selector("body[data-phase=ready]", state="attached")
            assert "#token" not in page.url  # taken out of the address bar

            page.select_option("#recipe", "product_neighbourhood")
            assert page.input_value("#recipe-params input[name=k]") == "10"  # the default
            page.fill("#recipe-params input[name=product]", "p1")
            page.click("#run")
            page.wait_for_selector("body[data-runs='1']", state="attached")
            assert page.get_attribute("body", "data-error") is None
            assert page.get_attribute("#graph", "data-nodes") == str(len(expected))
            assert page.evaluate("window.kgrecBrowse.counts().nodes") == len(expected)
            page.wait_for_selector("#graph[data-layout=done]", state="attached")
            page.screenshot(path=str(tmp_path / "recipe.png"))

            # Click a user: its other products join the graph.
            nodes = page.evaluate("window.kgrecBrowse.nodes()")
            user = next(n for n in nodes if n["labels"] == ["User"])
            at = page.evaluate("id => window.kgrecBrowse.clientPosition(id)", user["id"])
            page.mouse.click(at["x"], at["y"])
            page.wait_for_selector("body[data-expansions='1']", state="attached")
            grown = expected | _graph_nodes(
                shop_graph, EXPAND_QUERY, id=user["id"], limit=EXPAND_LIMIT
            )
            assert len(grown) > len(expected)
            assert page.get_attribute("#graph", "data-nodes") == str(len(grown))
            assert page.evaluate("window.kgrecBrowse.counts().nodes") == len(grown)
            assert page.inner_text("#details").startswith("(:User) id: " + user["key"])
            if os.environ.get("KGREC_BROWSE_SCREENSHOT"):
                page.wait_for_selector("#graph[data-layout=done]", state="attached")
                shutil.copy(tmp_path / "recipe.png", os.environ["KGREC_BROWSE_SCREENSHOT"])
                page.screenshot(path=os.environ["KGREC_BROWSE_SCREENSHOT"] + ".expanded.png")

            # Without the token the password is pasted.
            page.goto(browse_url.split("#")[0])
            page.evaluate("sessionStorage.clear()")
            page.reload()
            page.wait_for_selector("body[data-phase=login]", state="attached")
            page.fill("#password", neo4j_server.password or "")
            page.click("#login button")
            page.wait_for_selector("body[data-phase=ready]", state="attached")
            assert errors == []
        finally:
            context.close()
