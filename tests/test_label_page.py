"""The labelling page (`sr-iqa label serve`) driven in real headless Chromium through Playwright: keyboard votes,
reload and resume, two annotators at once, refused requests, a killed server; then `data check`, `agree` and a
tiny training read what the page wrote."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from werkzeug.serving import make_server

from sr_iqa.own_data.label_server import create_app
from tests.conftest import REPO, run_cli, tiny_options, write_options
from tests.own_data_sets import UNSHARP, enhancer_file, photo_folder

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-extensions"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "headless Chromium is needed (make test installs Debian's chromium package)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def build_set(folder: Path) -> Path:
    """Four groups (chelsea's top-left 256 px in 128-px patches) with one candidate each."""
    photos = photo_folder(folder / "photos", {"chelsea": (256, 256)})
    result = run_cli("data", "build", "--photos", str(photos), "--out", str(folder / "set"), "--enhancers",
                     str(enhancer_file(folder / "one.yml", UNSHARP)), "--patch-size", "128")
    assert result.returncode == 0, result.stderr
    return folder / "set"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The page of a fresh set, served from a thread of this process: (its address, the set's root)."""
    root = build_set(tmp_path)
    server = make_server("127.0.0.1", 0, create_app(root), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", root
    server.shutdown()


def labels_of(root: Path, annotator: str) -> dict[str, str]:
    folder = root / "Train" / "labels" / "own" / annotator
    return {path.stem: json.loads(path.read_text())["Picture_2"]["Label"] for path in sorted(folder.glob("*.json"))}


GROUPS = ["chelsea-0-0", "chelsea-0-128", "chelsea-128-0", "chelsea-128-128"]


def open_as(browser: Browser, url: str, annotator: str) -> Page:
    page = browser.new_page(viewport={"width": 1000, "height": 600})
    page.goto(url)
    page.fill("#annotator", annotator)
    page.click("#start")
    page.wait_for_selector("#labeller:not([hidden])")
    return page


def wait_for_saved(page: Page, saved: int) -> None:
    """Until the page says ``saved`` groups are labelled (or, for the last, that all are)."""
    page.wait_for_function(f"(t => t.includes('; {saved} labelled') || t === 'all {saved} groups labelled')"
                           "(document.getElementById('progress').textContent)")


def vote_and_wait(page: Page, key: str, saved: int) -> None:
    page.keyboard.press(key)
    wait_for_saved(page, saved)


def test_keyboard_votes_are_saved_as_hggt_label_files_and_a_reload_resumes(browser: Browser, served):
    url, root = served
    page = open_as(browser, url, "A")
    assert page.text_content("#progress").startswith("group 1 of 4 (Train/own chelsea-0-0), candidate 1 of 1")
    page.keyboard.press("f")  # flip: the right side shows the original, then the candidate again
    assert page.get_attribute("#right", "data-showing") == "original"
    page.keyboard.press("f")
    assert page.get_attribute("#right", "data-showing") == "01"
    vote_and_wait(page, "p", 1)
    vote_and_wait(page, "3", 2)
    saved = json.loads((root / "Train" / "labels" / "own" / "A" / "chelsea-0-0.json").read_text())
    assert saved["Picture_1"] == {"Name": "original", "File": "original/chelsea-0-0.png", "Label": None}
    assert saved["Picture_2"] == {"Name": "01", "File": "01/chelsea-0-0_01.png", "Label": "Positive"}
    assert isinstance(saved["Time_cost"], float) and saved["Time_cost"] > 0
    page.reload()  # the name is in the address: the page comes back where the annotator stopped
    wait_for_saved(page, 2)
    assert page.text_content("#progress").startswith("group 3 of 4 (Train/own chelsea-128-0)")
    vote_and_wait(page, "s", 3)
    vote_and_wait(page, "n", 4)
    assert page.text_content("#progress") == "all 4 groups labelled"
    assert labels_of(root, "A") == dict(zip(GROUPS, ["Positive", "Negative", "Similar", "Negative"], strict=True))
    page.close()


def test_zoom_and_pan_stay_in_step_on_both_sides(browser: Browser, served):
    url, _ = served
    page = open_as(browser, url, "A")
    page.wait_for_function("document.getElementById('original-image').style.transform !== ''")
    page.keyboard.press("+")
    box = page.locator("#right").bounding_box()
    page.mouse.move(box["x"] + 50, box["y"] + 50)
    page.mouse.down()
    page.mouse.move(box["x"] + 90, box["y"] + 70)
    page.mouse.up()
    left, right = (page.eval_on_selector(f"#{name}", "e => e.style.transform") for name in ("original-image",
                                                                                          "candidate-image"))
    assert left == right and "scale" in left
    assert page.eval_on_selector("#candidate-image", "e => e.getBoundingClientRect().x") - box["x"] == \
        pytest.approx(page.eval_on_selector("#original-image", "e => e.getBoundingClientRect().x")
                      - page.locator("#left").bounding_box()["x"], abs=0.5)
    page.close()


def test_two_annotators_at_once_each_get_their_own_files(browser: Browser, served):
    url, root = served
    first, second = open_as(browser, url, "A"), open_as(browser, url, "B")
    for number, (a_key, b_key) in enumerate(zip("pspn", "nnsp", strict=True), start=1):
        first.keyboard.press(a_key)
        vote_and_wait(second, b_key, number)
        wait_for_saved(first, number)
    assert labels_of(root, "A") == dict(zip(GROUPS, ["Positive", "Similar", "Positive", "Negative"], strict=True))
    assert labels_of(root, "B") == dict(zip(GROUPS, ["Negative", "Negative", "Similar", "Positive"], strict=True))
    first.close()
    second.close()


def request(url: str, data: bytes | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_paths_outside_the_set_and_malformed_requests_are_refused_and_change_nothing(served):
    url, root = served
    before = sorted(str(p) for p in root.parent.rglob("*"))
    refused = [request(f"{url}/image/0/..%2F..%2F..%2Fphotos%2Fchelsea.png"), request(f"{url}/image/9/original"),
               request(f"{url}/api/groups?annotator=..%2Fx"), request(f"{url}/api/groups")]
    good = {"annotator": "A", "group": 0, "labels": {"01": "Positive"}, "time_cost": 1.5}
    for changed in ({"annotator": "../../x"}, {"annotator": "metric-niqe"}, {"group": 4}, {"group": True},
                    {"labels": {"01": "Great"}}, {"labels": {"01": "Positive", "02": "Positive"}},
                    {"time_cost": -1}, {"time_cost": "1"}, {"extra": 1}):
        refused.append(request(f"{url}/api/labels", json.dumps(good | changed).encode()))
    refused += [request(f"{url}/api/labels", b"{not json"), request(f"{url}/api/labels", b"[]"),
                request(f"{url}/api/labels", b" " * (100 << 10))]
    assert [code for code, _ in refused] == [404] + [400] * 14 + [413]  # a path with folders matches no route
    assert all(body["error"] for _, body in refused)
    assert "groups 0 to 3" in refused[6][1]["error"] and "annotator name '../../x'" in refused[4][1]["error"]
    assert sorted(str(p) for p in root.parent.rglob("*")) == before
    assert request(f"{url}/api/labels", json.dumps(good).encode())[0] == 200


def start_server(root: Path, before: Callable[[], None] | None = None) -> tuple[subprocess.Popen, str]:
    """The server in its own process (``before`` runs in it first); its log goes to a file beside the set."""
    log = root.parent / "server.log"
    with open(log, "a") as errors:
        server = subprocess.Popen([sys.executable, "-m", "sr_iqa", "label", "serve", str(root), "--port", "0"],
                                  cwd=REPO, stdout=subprocess.PIPE, stderr=errors, text=True,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=before)
    line = server.stdout.readline()
    address = re.search(r"http://localhost:(\d+)/", line)
    assert address, line + log.read_text()
    return server, f"http://127.0.0.1:{address.group(1)}"


def interrupted(server: subprocess.Popen) -> int | None:
    """Ctrl-C to the server and its exit status; None, with the server killed, when it has not ended in 30 s (a test
    that fails leaves no server behind)."""
    server.send_signal(signal.SIGINT)
    try:
        return server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        return None


def test_ctrl_c_stops_a_server_started_with_sigint_ignored_and_blocked(tmp_path: Path):
    # What a script's background job or a test runner's worker passes on through exec; the suite once waited 30 s.
    def ignore_and_block() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

    server, url = start_server(build_set(tmp_path), before=ignore_and_block)
    with urllib.request.urlopen(f"{url}/", timeout=10) as answer:
        assert answer.status == 200
    assert interrupted(server) == 0


def test_a_server_killed_while_votes_arrive_leaves_whole_files_and_resumes(browser: Browser, tmp_path: Path):
    root = build_set(tmp_path)
    server, url = start_server(root)
    stop = threading.Event()

    def hammer() -> None:  # one annotator's votes for every group, again and again, until the server is gone
        number = 0
        while not stop.is_set():
            body = {"annotator": "A", "group": number % 4, "labels": {"01": ("Positive", "Negative")[number % 2]},
                    "time_cost": 1.0}
            try:
                request(f"{url}/api/labels", json.dumps(body).encode())
            except OSError:
                return
            number += 1

    writer = threading.Thread(target=hammer)
    writer.start()
    folder = root / "Train" / "labels" / "own" / "A"
    deadline = time.monotonic() + 60
    try:
        while len(list(folder.glob("*.json"))) < 2:
            assert time.monotonic() < deadline, "no label file written in 60 s"
    finally:  # the kill under test; on a failure above, no server is left behind either
        server.send_signal(signal.SIGKILL)
        server.wait()
        stop.set()
        writer.join()
    kept = sorted(folder.glob("*.json"))
    for path in kept:  # whole files only: each one parses and holds a vote
        assert json.loads(path.read_text())["Picture_2"]["Label"] in ("Positive", "Negative")
    planted = folder / ".chelsea-128-128.json.999999.partial"  # what a writer killed mid-write leaves
    planted.write_text('{"Picture_1": ')
    server, url = start_server(root)
    try:
        assert not planted.exists()
        page = open_as(browser, url, "A")
        done = len(kept)
        wait_for_saved(page, done)
        while done < 4:
            done += 1
            vote_and_wait(page, "s", done)
        assert set(labels_of(root, "A")) == set(GROUPS)
        page.close()
    finally:
        assert interrupted(server) == 0


def test_page_labels_pass_data_check_give_a_kappa_and_train(browser: Browser, served, demo_set, tmp_path: Path):
    url, root = served
    votes = {"A": "ppns", "B": "pnps", "C": "pnns"}  # rows (P, S, N) per group: [3,0,0] [1,0,2] [1,0,2] [0,3,0]
    for annotator, keys in votes.items():
        page = open_as(browser, url, annotator)
        for number, key in enumerate(keys, start=1):
            vote_and_wait(page, key, number)
        page.close()
    check = run_cli("data", "check", str(root))
    assert check.returncode == 0, check.stdout
    assert "labels: Positive: 1, Similar: 1, Negative: 2" in check.stdout
    cache = tmp_path / "scores.db"
    assert run_cli("score", "--dataset", str(root), "--metric", "niqe", "--cache", str(cache)).returncode == 0
    agree = run_cli("agree", "--dataset", str(root), "--cache", str(cache))
    # Hand-computed: P-bar = (1 + 1/3 + 1/3 + 1) / 4 = 2/3, P_e = (5/12)^2 + (3/12)^2 + (4/12)^2 = 50/144,
    # kappa = (96 - 50) / (144 - 50) = 46/94.
    assert f"01 {46 / 94:.3f} (4 GTs), all {46 / 94:.3f} (4 GTs)" in agree.stdout, agree.stdout
    options = tiny_options(demo_set, tmp_path / "runs")
    options["datasets"]["train"] |= {"dataroot_gt": str(root / "Train" / "images" / "own"),
                                     "dataroot_label": str(root / "Train" / "labels" / "own"), "positive_only": True}
    options["sampler"] = {"type": "upos"}
    trained = run_cli("train", "-opt", str(write_options(tmp_path / "train.yml", options)))
    assert trained.returncode == 0, trained.stderr
    run = tmp_path / "runs" / "tiny"
    # HGGT's positive-only filter on the page's votes: only chelsea-0-0 has an enhanced GT with two Positive votes.
    log = (run / "logs" / "train.log").read_text()
    assert "training data: 1 groups, 2 GTs" in log and "the label filter dropped 3 groups" in log
    assert (run / "models" / "net_g_8.safetensors").is_file()
