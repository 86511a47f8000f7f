"""What idling between requests costs: CPU per single-reading POST by the gap before it.

    .venv/bin/python benchmarks/idle_cost.py [--posts 400] [--gaps 0,0.5,2,5,10,20]

In-process, no HTTP server: the product's WSGI application (config.wsgi) is called with a
POST /api/v1/readings of one glucose reading, as gunicorn calls it, `--posts` times per gap,
the process sleeping `gap` milliseconds before each. Prints the process's CPU time per POST
(user + system, resource.getrusage) for each gap and its ratio to the first gap's, in one
run. At 100 posts/s over two gunicorn workers a worker idles ~20 ms between posts; the
benchmark shows what that costs by itself, apart from gunicorn and the network.

Runs against the database `benchmarks/evaluate.py` left behind (vigil_bench_eval; run that
first, `--quick` is enough): issues app tokens for its first patients (nothing else is
changed but the readings posted, which no worker evaluates here).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(ROOT))

from benchmarks.evaluate import in_process_environment  # noqa: E402


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=400, help="per gap")
    parser.add_argument("--gaps", default="0,0.5,2,5,10,20", help="milliseconds")
    args = parser.parse_args()
    in_process_environment(DJANGO_ALLOWED_HOSTS="127.0.0.1")
    from config.wsgi import application  # sets up Django
    from monitoring.auth import issue_app_token
    from monitoring.models import Patient

    tokens = [
        issue_app_token(patient=patient)[1] for patient in Patient.objects.order_by("id")[:50]
    ]
    statuses: set[str] = set()

    def start_response(status, headers, exc_info=None):
        statuses.add(status)

    def post(number: int) -> None:
        measured = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        item = {
            "id": str(uuid.uuid4()),
            "type": "glucose",
            "value": 112,
            "unit": "mg/dL",
            "measured_at": measured,
        }
        body = json.dumps({"readings": [item]}).encode()
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/api/v1/readings",
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "HTTP_HOST": "127.0.0.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_AUTHORIZATION": f"Bearer {tokens[number % len(tokens)]}",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http",
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        response = application(environ, start_response)
        b"".join(response)
        response.close()

    for number in range(50):  # warm: imports, compiled statements, the connection
        post(number)
    gaps = [float(gap) for gap in args.gaps.split(",")]
    rows = []
    for gap in gaps:
        spent = 0.0
        for number in range(args.posts):
            if gap:
                time.sleep(gap / 1000)
            began = cpu_seconds()
            post(number)
            spent += cpu_seconds() - began
        rows.append((gap, spent / args.posts * 1000))
    if statuses != {"201 Created"}:
        raise SystemExit(f"unexpected responses: {sorted(statuses)}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores)")
    print(f"{'gap before each POST':>22}  {'CPU per POST':>12}  {'ratio':>6}")
    for gap, per_post in rows:
        print(f"{gap:>19.1f} ms  {per_post:>9.2f} ms  {per_post / rows[0][1]:>5.2f}×")


if __name__ == "__main__":
    main()
