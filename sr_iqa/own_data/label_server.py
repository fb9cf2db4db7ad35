"""``sr-iqa label serve``: a labelling page for the candidate GTs of a multi-GT set, on Flask, bound to localhost.

The server knows every group and image when it starts; a request names a group by its number and a GT by its slot,
never by a path, so no request can read or write outside the set. Votes arrive one whole group at a time and are
written as HGGT's label files (``<labels>/<annotator>/<group>.json``) whole, by rename, under a lock per file; two
annotators write different files and never wait for each other.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from flask import Flask, Response, jsonify, request, send_file
from werkzeug.exceptions import HTTPException

from sr_iqa.atomic_files import remove_partial_files, write_text_atomically
from sr_iqa.data.groups import LABEL_VALUES, METRIC_ANNOTATOR_PREFIX, hggt_label_file, index_hggt
from sr_iqa.data.release_layout import find_splits, labels_folder_of
from sr_iqa.errors import DataError
from sr_iqa.json_text import read_json_file

log = logging.getLogger("sr_iqa.label")
ANNOTATOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_REQUEST_BYTES = 64 << 10  # a group's votes are about 200 bytes
MAX_TIME_COST = 7 * 24 * 3600.0


@dataclass(frozen=True)
class LabelGroup:
    """One group as the page shows it: its split, name, images by slot and where its label files go."""

    split: str
    name: str
    images: dict[str, Path]  # "original", "01", ...
    labels: Path

    @property
    def candidates(self) -> list[str]:
        return [slot for slot in self.images if slot != "original"]

    def label_path(self, annotator: str) -> Path:
        return self.labels / annotator / f"{self.name}.json"


def label_groups(root: Path) -> list[LabelGroup]:
    """Every group with candidates of every multi-GT split under ``root``, in order."""
    groups = []
    for split in find_splits(root):
        if split.flat:
            continue
        index = index_hggt(split.images)
        for problem in index.problems:
            log.warning("%s", problem)
        labels = labels_folder_of(split)
        groups += [LabelGroup(split.name, group.name, {gt.slot: gt.path for gt in group.gts}, labels)
                   for group in index.groups if len(group.gts) > 1]
    if not groups:
        raise DataError(f"{root}: no group with candidate GTs to label (build them with `sr-iqa data build`)")
    return groups


class RefusedRequest(Exception):
    """A request the page would never send: answered 400 with this message, nothing written."""


def checked_annotator(name: object) -> str:
    if not isinstance(name, str) or not ANNOTATOR_NAME.fullmatch(name) or name.startswith(METRIC_ANNOTATOR_PREFIX):
        raise RefusedRequest(f"annotator name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-' (starting with a "
                         f"letter or digit, not '{METRIC_ANNOTATOR_PREFIX}', which marks labels from a metric)")
    return name


def _saved_labels(group: LabelGroup, annotator: str) -> dict[str, str] | None:
    """The annotator's votes for a group, when a whole label file for every candidate is there."""
    path = group.label_path(annotator)
    if not path.is_file():
        return None
    try:
        entries = read_json_file(path, 1 << 20)
        labels = {entries[f"Picture_{k}"]["Name"]: entries[f"Picture_{k}"]["Label"]
                  for k in range(2, len(group.candidates) + 2)}
    except (ValueError, KeyError, TypeError, OSError) as error:
        log.warning("%s: not a label file this page wrote (%s); the group is shown as not labelled", path, error)
        return None
    return labels if set(labels) == set(group.candidates) and set(labels.values()) <= set(LABEL_VALUES) else None


def _checked_votes(body: object, groups: list[LabelGroup]) -> tuple[str, LabelGroup, dict[str, str], float]:
    """(annotator, group, slot -> label, seconds) from a POSTed body, or RefusedRequest naming what is wrong."""
    if not isinstance(body, dict) or set(body) != {"annotator", "group", "labels", "time_cost"}:
        raise RefusedRequest("the body must be a JSON object with annotator, group, labels and time_cost")
    annotator = checked_annotator(body["annotator"])
    number = body["group"]
    if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < len(groups):
        raise RefusedRequest(f"group {number!r}: there are groups 0 to {len(groups) - 1}")
    group, labels, seconds = groups[number], body["labels"], body["time_cost"]
    if not isinstance(labels, dict) or set(labels) != set(group.candidates) or \
            not all(label in LABEL_VALUES for label in labels.values()):
        raise RefusedRequest(f"labels: one of {', '.join(LABEL_VALUES)} for each of {', '.join(group.candidates)}")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= MAX_TIME_COST:
        raise RefusedRequest(f"time_cost {seconds!r}: seconds from 0 to {MAX_TIME_COST:g}")
    return annotator, group, labels, round(float(seconds), 1)


class LabelStore:
    """The label files of one set: read for an annotator's progress, written whole under a lock per file."""

    def __init__(self, groups: list[LabelGroup]) -> None:
        self.groups = groups
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        for folder in {group.labels for group in groups}:  # what writers killed mid-write left
            for annotator in folder.iterdir() if folder.is_dir() else []:
                for leftover in remove_partial_files(annotator):
                    log.info("removed %s (left by a writer that was stopped)", leftover)

    def progress(self, annotator: str) -> list[dict[str, str] | None]:
        return [_saved_labels(group, annotator) for group in self.groups]

    def save(self, body: object) -> Path:
        annotator, group, labels, seconds = _checked_votes(body, self.groups)
        path = group.label_path(annotator)
        with self._locks_lock:
            lock = self._locks.setdefault(path, threading.Lock())
        with lock:
            write_text_atomically(path, json.dumps(hggt_label_file(group.name, group.candidates, labels, seconds),
                                                   indent=1))
        return path


def create_app(root: Path) -> Flask:
    """The labelling page's app for the set under ``root``."""
    root = root.resolve()  # Flask reads a relative file name against its own package
    store = LabelStore(label_groups(root))
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    page = resources.files("sr_iqa.own_data").joinpath("label_page.html").read_text(encoding="utf-8")

    @app.get("/")
    def index() -> Response:
        return Response(page, mimetype="text/html")

    @app.get("/api/groups")
    def groups() -> Response:
        annotator = checked_annotator(request.args.get("annotator"))
        saved = store.progress(annotator)
        listed = [{"id": number, "split": group.split, "name": group.name, "slots": group.candidates,
                   "labels": saved[number]} for number, group in enumerate(store.groups)]
        first_open = next((number for number, labels in enumerate(saved) if labels is None), None)
        return jsonify(annotator=annotator, groups=listed, first_open=first_open)

    @app.get("/image/<int:number>/<slot>")
    def image(number: int, slot: str) -> Response:
        if number >= len(store.groups) or slot not in store.groups[number].images:
            raise RefusedRequest(f"no image {slot!r} in group {number}")
        return send_file(store.groups[number].images[slot], max_age=3600)

    @app.post("/api/labels")
    def save() -> Response:
        path = store.save(request.get_json(silent=True))
        done = sum(group.label_path(path.parent.name).is_file() for group in store.groups)
        return jsonify(saved=str(path.relative_to(root)) if path.is_relative_to(root) else str(path), done=done)

    @app.errorhandler(RefusedRequest)
    def bad_request(error: RefusedRequest) -> tuple[Response, int]:
        return jsonify(error=str(error)), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        return jsonify(error=f"{error.name}: {error.description}"), error.code or 500

    return app


def serve(root: Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the page until interrupted (Ctrl-C); one process, a thread per request."""
    from werkzeug.serving import make_server

    app = create_app(root)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per image request says nothing to a user
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: anyone who reaches this machine on port %d can read the images and write labels",
                    host, port)
    server = make_server(host, port, app, threaded=True)
    # Ctrl-C stops it even when the process that started it ignored or blocked SIGINT (a disposition and a mask
    # that exec passes on: a script's background job, a test runner's worker).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    print(f"labelling page for {root}: http://{'localhost' if host == '127.0.0.1' else host}:{server.server_port}/ "
          "(Ctrl-C stops it; the votes are saved as each group is finished)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

