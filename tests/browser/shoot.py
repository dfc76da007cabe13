"""Screenshot a SegLab page as a student's browser shows it.

    python tests/browser/shoot.py <url_path> <out.png> [--width 1400] [--full-page]
    python tests/browser/shoot.py --all DIR            # every page of the router

Starts `streamlit run` on a free loopback port, opens the page in Debian's chromium, waits
until the script has finished and every figure is drawn, and writes the PNG. `url_path` is the
page's url path from streamlit_app.py's SECTIONS ("world", "segmentation", ...; "" or "/" is
the default page). Prints where the picture went, how long the page took, and any exception
box or server traceback (exit status 1 then).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import server  # noqa: E402

_TRACEBACK = re.compile(r"^Traceback \(most recent call last\):", re.MULTILINE)


def shoot(page, base: str, url_path: str, out: Path, *, full_page: bool = True,
          timeout: float = server.PAGE_TIMEOUT) -> list[str]:
    """Open `url_path`, wait for it, write `out`; return the problems seen (empty: none)."""
    problems = []
    try:
        seconds = server.goto(page, base, url_path, timeout=timeout)
    except LookupError as error:  # Streamlit showed the main page instead: no picture
        print(f"{url_path}: not shot", flush=True)
        return [str(error)]
    except TimeoutError as error:  # shot as it is: the picture shows what is still running
        problems.append(str(error))
        seconds = float("nan")
    server.screenshot(page, out, full_page=full_page)
    problems += [f"exception box: {text}" for text in server.exceptions(page)]
    problems += [f"request left loopback: {url}" for url in server.outside_requests(page)]
    print(f"{url_path or '/'}: {out} ({seconds:.1f} s)", flush=True)
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url_path", nargs="?", help='page url path, e.g. "world"')
    parser.add_argument("out", nargs="?", type=Path, help="PNG file to write")
    parser.add_argument("--all", type=Path, metavar="DIR",
                        help="shoot every existing page of the router into DIR/<url_path>.png")
    parser.add_argument("--width", type=int, default=1400, help="viewport width in pixels")
    parser.add_argument("--height", type=int, default=900, help="viewport height in pixels")
    parser.add_argument("--full-page", action="store_true", default=None,
                        help="capture the whole scrollable page (the default)")
    parser.add_argument("--viewport-only", dest="full_page", action="store_false",
                        help="capture only the visible viewport")
    parser.add_argument("--timeout", type=float, default=server.PAGE_TIMEOUT,
                        help="seconds a page may take before it is shot as it is")
    args = parser.parse_args(argv)
    if args.all is None and (args.url_path is None or args.out is None):
        parser.error("give <url_path> <out.png>, or --all DIR")
    full_page = args.full_page is not False
    if missing := server.missing_browser():
        print(f"cannot take screenshots: {missing}", file=sys.stderr)
        return 2
    if args.all is not None:
        targets = [(url, args.all / f"{url}.png") for _, _, _, url in server.existing_pages()]
    else:
        targets = [(args.url_path.strip("/"), args.out)]

    started = time.perf_counter()
    problems: list[str] = []
    # Chromium starts while Streamlit boots: both take seconds on a busy CPU.
    with server.serve(wait=False) as base, server.browser() as context:
        base.wait_healthy()
        page = server.new_page(context, width=args.width, height=args.height)
        for url_path, out in targets:
            problems += [f"{url_path}: {p}" for p in
                         shoot(page, base, url_path, out, full_page=full_page,
                               timeout=args.timeout)]
        problems += [f"server: {m.group(0)} …" for m in _TRACEBACK.finditer(base.log_text())]
        if _TRACEBACK.search(base.log_text()):
            print(base.log_text()[-4000:], file=sys.stderr)
    print(f"done in {time.perf_counter() - started:.1f} s", flush=True)
    for problem in problems:
        print(f"PROBLEM {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
