"""Runs scim2-tester's RFC 7643/7644 checks against a live SCIM endpoint (called by
scripts/scim-check.sh). Prints every check, a summary by status, and exits 1 when a check
fails that is not listed in KNOWN_UNSUPPORTED with the reason."""

import collections
import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

# Checks tokengate fails on purpose: (title, resource type or None) -> why.
KNOWN_UNSUPPORTED: dict[tuple[str, str | None], str] = {}


def main() -> int:
    base, token = sys.argv[1], sys.argv[2]
    http = Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    client = SyncSCIMClient(http)
    results = check_server(client, raise_exceptions=False)
    counts = collections.Counter()
    unexpected = []
    for r in results:
        status = r.status.name if hasattr(r.status, "name") else str(r.status)
        key = (r.title, r.resource_type)
        known = KNOWN_UNSUPPORTED.get(key) or KNOWN_UNSUPPORTED.get((r.title, None))
        label = status
        if status in ("ERROR", "CRITICAL") and known:
            label = f"{status} (known: {known})"
            counts["KNOWN"] += 1
        else:
            counts[status] += 1
            if status in ("ERROR", "CRITICAL"):
                unexpected.append(r)
        print(f"{label:8} {r.resource_type or '-':6} {r.title}: {r.reason or ''}".rstrip()[:400])
    print()
    print("scim2-tester summary: " + ", ".join(f"{k.lower()} {v}" for k, v in sorted(counts.items())))
    if unexpected:
        print(f"{len(unexpected)} unexpected failures", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
