"""The control plane's console in headless Chromium (Playwright): sign in with an API key, create a
deployment from an uploaded folder and from an image, read revisions and their logs, roll back,
see listeners and their heartbeats, delete; and a screenshot of the deployment list."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.controlplane import ControlPlane, Listener, control_plane, running_listener

PROJECT = Path(__file__).parent / "project"
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The console's badge colours (console.css): a READY or DEPLOYED badge, a failed one.
GREEN_BADGE = (0xD7, 0xF5, 0xDD)
RED_BADGE = (0xFD, 0xE0, 0xE0)


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with control_plane(tmp_path_factory.mktemp("cp")) as started:
        yield started


@pytest.fixture(scope="module")
def listener(plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listener]:
    registered = plane.create_listener("console-host")
    data_dir = tmp_path_factory.mktemp("listener") / "data"
    with running_listener(plane, registered["id"], data_dir) as started:
        yield started


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing: run scripts/install-test-services")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    opened.on("dialog", lambda dialog: dialog.accept())
    yield opened
    context.close()


def sign_in(page: Page, plane: ControlPlane, key: str | None = None) -> None:
    page.goto(plane.url + "/")
    page.fill("#api-key", key or plane.api_key("acme"))
    page.click("#login button")


def row(page: Page, table: str, text: str):  # type: ignore[no-untyped-def]
    return page.locator(f"#{table} tbody tr", has_text=text)


def colours_in(page: Page, png: bytes) -> set[tuple[int, int, int]]:
    """The colours of a PNG, decoded by the browser itself."""
    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    pixels = page.evaluate(
        """async (url) => {
            const image = new Image();
            image.src = url;
            await image.decode();
            const canvas = document.createElement("canvas");
            canvas.width = image.width;
            canvas.height = image.height;
            const context = canvas.getContext("2d");
            context.drawImage(image, 0, 0);
            const data = context.getImageData(0, 0, image.width, image.height).data;
            const seen = new Set();
            for (let i = 0; i < data.length; i += 4) {
                seen.add(`${data[i]},${data[i + 1]},${data[i + 2]}`);
            }
            return [...seen];
        }""",
        data_url,
    )
    return {tuple(int(part) for part in colour.split(",")) for colour in pixels}  # type: ignore[misc]


def test_a_wrong_key_is_refused_with_the_apis_message(page: Page, plane: ControlPlane) -> None:
    sign_in(page, plane, key="steadcp_not-a-key")
    expect(page.locator("#error")).to_have_text("Invalid API key.")
    expect(page.locator("#app")).to_be_hidden()


def test_the_console_deploys_rolls_back_and_deletes(
    page: Page, plane: ControlPlane, listener: Listener, tmp_path: Path
) -> None:
    tarball = shutil.make_archive(str(tmp_path / "project"), "gztar", PROJECT)
    sign_in(page, plane)
    expect(page.locator("#deployment-list")).to_be_visible()

    page.click("nav button[data-view=create]")
    form = page.locator("#create-upload")
    form.locator("input[name=name]").fill("console-upload")
    form.locator("input[name=tarball]").set_input_files(tarball)
    form.locator("button[type=submit]").click()
    uploaded = row(page, "deployment-list", "console-upload")
    expect(uploaded.locator(".status")).to_have_text("READY", timeout=60_000)
    expect(uploaded).not_to_contain_text("none yet", timeout=60_000)
    expect(uploaded.locator("a[href^='http://127.0.0.1:']")).to_be_visible()

    page.click("nav button[data-view=create]")
    form = page.locator("#create-image")
    form.locator("input[name=name]").fill("console-image")
    form.locator("input[name=image_uri]").fill("registry.example.com/agent:1.0")
    form.locator("button[type=submit]").click()
    expect(row(page, "deployment-list", "console-image")).to_be_visible()

    screenshot = page.locator("#deployment-list").screenshot(path=str(tmp_path / "deployments.png"))
    colours = colours_in(page, screenshot)
    assert GREEN_BADGE in colours, "the READY badge is not in the screenshot"
    assert len(colours) > 20, "the screenshot is nearly blank"

    uploaded.locator("a", has_text="console-upload").click()
    first = page.locator("#revision-list tbody tr").first
    expect(first.locator(".status")).to_have_text("DEPLOYED")
    first.locator("button", has_text="Build logs").click()
    expect(page.locator("#logs")).to_contain_text("build finished")

    # The image's revision: this listener runs processes, so it fails, and says why.
    row(page, "deployment-list", "console-image").locator("a").click()
    failed = page.locator("#revision-list tbody tr").first
    expect(failed.locator(".status")).to_have_text("BUILD_FAILED", timeout=30_000)

    with plane.client() as client:
        deployment = client.get("/v2/deployments", params={"name": "console-upload"}).json()
        deployment = deployment["resources"][0]
        first_revision = deployment["active_revision_id"]
        changed = client.patch(
            f"/v2/deployments/{deployment['id']}",
            json={"secrets": [{"name": "GREETING", "value": "hej"}]},
        )
        assert changed.status_code == 200
    row(page, "deployment-list", "console-upload").locator("a", has_text="console-upload").click()
    old = page.locator(f"#revision-list tbody tr[data-id='{first_revision}']")
    expect(old.locator(".status")).to_have_text("REPLACED", timeout=60_000)
    old.locator("button", has_text="Roll back to this").click()
    expect(page.locator("#revision-list tbody tr")).to_have_count(3)
    expect(page.locator("#revision-list tbody tr").first.locator(".status")).to_have_text(
        "DEPLOYED", timeout=60_000
    )

    row(page, "deployment-list", "console-image").locator("button", has_text="Delete").click()
    expect(row(page, "deployment-list", "console-image")).to_have_count(0, timeout=30_000)

    page.click("nav button[data-view=listeners]")
    listener_row = row(page, "listener-list", "console-host")
    expect(listener_row.locator(".status")).to_have_text("ONLINE")
    expect(listener_row).not_to_contain_text("never")
    expect(listener_row).to_contain_text("process")


def test_a_self_reporting_server_shows_with_its_health(page: Page, plane: ControlPlane) -> None:
    """What `stead run` with DEPLOYMENT_TYPE=self_hosted_data_plane sends (tests/controlplane/
    test_self_reporting.py runs the real server), here with a failing check."""
    report = {
        "name": "ecs-task",
        "url": "http://10.0.0.5:8000",
        "version": "0.1.0",
        "replica": "task-1:1",
        "health": {"database": "ok", "redis": "ConnectionError"},
    }
    headers = {"Authorization": f"Bearer {plane.license('acme')}"}
    answer = httpx.post(
        f"{plane.url}/v1/data-plane/servers/heartbeat", json=report, headers=headers
    )
    assert answer.status_code == 200, answer.text
    sign_in(page, plane)
    reporting = row(page, "deployment-list", "ecs-task")
    expect(reporting).to_contain_text("self-reporting server, redis: ConnectionError")
    expect(reporting.locator(".status")).to_have_text("READY")


def test_the_dashboard_link_the_official_cli_prints_opens_the_console(
    page: Page, plane: ControlPlane
) -> None:
    page.goto(f"{plane.url}/o/some-tenant/host/deployments/some-id")
    expect(page.locator("h1")).to_have_text("Stead control plane")
