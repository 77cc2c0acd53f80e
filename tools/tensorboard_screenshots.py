"""Screenshots of TensorBoard's pages for a log folder, taken with headless Chromium.

Usage (from the repository root, after a run has written ``logs/<experiment_id>_sup`` etc.):

    python tools/tensorboard_screenshots.py logs --out screenshots

It trains nothing. It starts ``tensorboard --logdir LOGDIR --port PORT`` on 127.0.0.1 (with the
Python that runs this script), waits until TensorBoard has read the log folder, opens each page
(``scalars`` and ``images`` by default; ``--pages`` chooses, ``timeseries`` too; ``--tag-filter``
shows only the tags that match a regular expression) in headless Chromium and writes
``<out>/<page>.png``, then stops TensorBoard. Chromium is Debian's ``chromium``
package; if no Chromium is found the script prints how to install it and exits with status 2.
"""

import argparse
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

LOGGER = logging.getLogger("tensorboard_screenshots")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = "apt-get install -y chromium"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)
PAGES = ("scalars", "images", "timeseries")
DEFAULT_PAGES = ("scalars", "images")


def find_browser() -> str:
    """The path of a Chromium executable, or ``""`` if there is none on PATH."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def has_event_files(folder: str) -> bool:
    """Whether ``folder`` or a folder below it holds a TensorBoard event file."""
    return any(name.startswith("events.out.tfevents") for _, _, files in os.walk(folder) for name in files)


def wait_for_runs(url: str, seconds: float) -> list:
    """Poll TensorBoard's ``/data/runs`` until it lists a run; the runs, or ``[]`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/data/runs", timeout=5) as response:
                runs = json.load(response)
            if runs:
                return runs
        except (urllib.error.URLError, ConnectionError, ValueError):
            pass
        time.sleep(1.0)
    return []


def page_url(url: str, page: str, tag_filter: str) -> str:
    """The address of a TensorBoard page, with its tag filter (a regular expression) if one is given."""
    if not tag_filter:
        return f"{url}/#{page}"
    quoted = urllib.parse.quote(tag_filter, safe="")
    if page == "timeseries":  # the time-series dashboard reads its state from the query
        return f"{url}/?tagFilter={quoted}#{page}"
    return f"{url}/#{page}&tagFilter={quoted}"


def screenshot(browser: str, url: str, path: str, window_size: str, budget_ms: int, timeout: float) -> None:
    """Headless Chromium's screenshot of ``url`` into ``path`` (PNG), with its own throw-away profile."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={window_size}",
            f"--virtual-time-budget={budget_ms}",
            f"--screenshot={path}",
            url,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0 or not os.path.isfile(path):
        raise RuntimeError(f"Chromium did not write {path} (exit {result.returncode}): {result.stderr[-2000:]}")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logdir", help="TensorBoard log folder, e.g. logs (a run's logs/<experiment_id>_sup works too)")
    parser.add_argument("--out", default="tensorboard_screenshots", help="folder for the PNGs (made if missing)")
    parser.add_argument("--port", type=int, default=0, help="TensorBoard's port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--pages", nargs="+", default=list(DEFAULT_PAGES), choices=PAGES, help="pages to take")
    parser.add_argument("--tag-filter", default="", help="show only tags matching this regex, e.g. 'loss|validation'")
    parser.add_argument("--window-size", default="1400,1000", help="browser window WIDTH,HEIGHT in pixels")
    parser.add_argument("--budget-ms", type=int, default=15000, help="Chromium's virtual time budget per page")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for TensorBoard to load the logs")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Take the screenshots; 0 on success, 2 if Chromium is missing, 1 on any other failure."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = parse_args(argv)
    if not os.path.isdir(args.logdir) or not has_event_files(args.logdir):
        LOGGER.error("%s holds no TensorBoard event files; train first, e.g. python Training.py with demo", args.logdir)
        return 1
    browser = find_browser()
    if not browser:
        LOGGER.error("No Chromium found (tried %s). Install it, e.g. as root: %s", ", ".join(BROWSERS), INSTALL_HINT)
        return 2
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    os.makedirs(args.out, exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", args.logdir, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        runs = wait_for_runs(url, args.wait)
        if not runs:
            LOGGER.error("TensorBoard at %s listed no run within %.0f s", url, args.wait)
            return 1
        LOGGER.info("TensorBoard at %s shows %s", url, ", ".join(runs))
        for page in args.pages:
            path = os.path.abspath(os.path.join(args.out, f"{page}.png"))
            screenshot(browser, page_url(url, page, args.tag_filter), path, args.window_size, args.budget_ms, args.wait)
            LOGGER.info("Wrote %s", path)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
