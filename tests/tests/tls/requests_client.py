"""N requests to an HTTPS upstream, statuses cycling through a plan, over one keep-alive
`requests.Session` (`session`) or a new connection each (`fresh`); prints the statuses
received as one JSON line."""
import json
import sys
import time
import warnings

import requests

warnings.filterwarnings("ignore")
base, n, plan = sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3].split(",")]
seen = {}
if sys.argv[4] == "fresh":
    for i in range(n):
        status = plan[i % len(plan)]
        r = requests.post(f"{base}/v1/chat/completions?status={status}", json={"i": i}, verify=False)
        seen[str(r.status_code)] = seen.get(str(r.status_code), 0) + 1
    print(json.dumps(seen), flush=True)
    sys.exit(0)
with requests.Session() as s:
    for i in range(n):
        status = plan[i % len(plan)]
        r = s.post(f"{base}/v1/chat/completions?status={status}", json={"i": i}, verify=False)
        seen[str(r.status_code)] = seen.get(str(r.status_code), 0) + 1
    print(json.dumps(seen), flush=True)
    # Keep the connection open a moment, as a long-lived client would.
    time.sleep(1)
