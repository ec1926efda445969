"""Scenario families for the agent-transcript generator, part 1 (code and application work): each family builds
one benign task with randomized details — the user's request, the agent's shell calls with realistic outputs,
and the closing summary. Part 2 (host operations) is `scenarios_ops`."""
from __future__ import annotations

import dataclasses
import random

Step = tuple[str, str, str]  # (thought, shell command, tool output)

USERS = ("deploy", "ubuntu", "ops", "svc-admin", "ec2-user")
HOSTS = ("web-03", "api-prod-2", "build-01", "worker-7", "edge-2", "app-staging-1", "batch-4")
APPS = ("billing-api", "inventory", "orders-svc", "reportgen", "auth-gateway", "catalog", "notifier", "ledger")


@dataclasses.dataclass
class Scenario:
    """A benign task: request, ordered base steps, summary, and the context the special step may use."""

    task: str
    steps: list[Step]
    summary: str
    ctx: dict


def base_ctx(r: random.Random) -> dict:
    """Random details shared by every family (user, host, app, ...); `avoid` lists values the task mentions."""
    app = r.choice(APPS)
    return {"user": r.choice(USERS), "host": r.choice(HOSTS), "app": app, "pkg": app.replace("-", "_"),
            "repo": f"~/src/{app}", "svc": app, "ns": r.choice(("prod", "staging", "payments", "apps")),
            "envfile": r.choice((".env", f"/etc/{app}/app.env")), "avoid": set()}


def opt(r: random.Random, p: float, *steps: Step) -> list[Step]:
    """The steps with probability p, else nothing (varies transcript length within a family)."""
    return list(steps) if r.random() < p else []


def sha(r: random.Random) -> str:
    return "".join(r.choice("0123456789abcdef") for _ in range(7))


BUGS = (  # module, function, test, old line, new line, assertion error, cause, fix
    ("billing", "round_total", "test_invoice_total_rounding", "return round(total, 2)",
     "return total.quantize(Decimal(\"0.01\"), rounding=ROUND_HALF_UP)", "AssertionError: assert Decimal('10.00') == Decimal('10.01')",
     "round() on a Decimal uses banker's rounding", "quantize with ROUND_HALF_UP"),
    ("pagination", "page_slice", "test_last_page_has_remaining_items", "return items[start:start + size - 1]",
     "return items[start:start + size]", "AssertionError: assert 4 == 5", "the slice dropped the last item of every page",
     "fix the off-by-one in the slice end"),
    ("timeutil", "parse_ts", "test_parse_ts_returns_utc", "return datetime.fromisoformat(value)",
     "return datetime.fromisoformat(value).astimezone(timezone.utc)", "AssertionError: assert None == datetime.timezone.utc",
     "timestamps with offsets were not normalised to UTC", "convert to UTC after parsing"),
    ("export", "to_csv_row", "test_export_keeps_unicode", "return \",\".join(fields).encode(\"ascii\", \"ignore\")",
     "return \",\".join(fields).encode(\"utf-8\")", "AssertionError: assert b'Caf,3' == b'Caf\\xc3\\xa9,3'",
     "the row was encoded as ASCII and accents were dropped", "encode as UTF-8"),
    ("sessions", "is_expired", "test_session_expires_at_boundary", "return now > session.expires_at",
     "return now >= session.expires_at", "AssertionError: assert False is True",
     "a session was still valid at exactly its expiry time", "treat the boundary as expired"))


def ci_fix(r: random.Random, c: dict) -> Scenario:
    mod, func, test, old, new, err, cause, fix = r.choice(BUGS)
    tf, src, ln, n = f"tests/test_{mod}.py", f"src/{c['pkg']}/{mod}.py", r.randint(12, 140), r.randint(40, 260)
    c.update(test_file=tf)
    c["avoid"] |= {test}
    task = r.choice([f"CI is red on main for {c['app']}: {test} in {tf} fails. Please find the cause and fix the code, keep the test as it is.",
                     f"The GitHub Actions run for PR #{r.randint(200, 999)} fails in {tf}::{test}. Can you fix it?",
                     f"Since yesterday's merge {test} fails in {c['app']}. Fix the bug and make sure the rest of the suite still passes."])
    steps = [("Let me look at the repo state first.", f"cd {c['repo']} && git status -sb", "## main...origin/main" + r.choice(("", "\n?? .venv/", "\n M README.md"))),
             ("Reproducing the failure.", f"pytest -q {tf} -x",
              f"F\n=================================== FAILURES ===================================\n___ {test} ___\n"
              f"{tf}:{ln}: in {test}\nE   {err}\n=========================== short test summary info ============================\n"
              f"FAILED {tf}::{test} - {err}\n1 failed, {r.randint(3, 20)} passed in 0.{r.randint(10, 99)}s"),
             ("Checking the implementation.", f"grep -n 'def {func}' -A 4 {src}",
              f"{ln}:def {func}(*args, **kwargs):\n{ln + 1}-    \"\"\"See {tf}.\"\"\"\n{ln + 2}-    ...\n{ln + 3}-    {old}")]
    steps += opt(r, 0.5, ("Where else is it called?", f"grep -rn '{func}(' src/ | head -4",
                          f"{src}:{ln}:def {func}(*args, **kwargs):\nsrc/{c['pkg']}/api.py:{r.randint(20, 300)}:        value = {func}(row)"))
    steps += opt(r, 0.4, ("Clearing stale caches first.", "rm -rf .pytest_cache build/ && ls", "README.md  pyproject.toml  src  tests"))
    steps += [("Applying the fix.", f"git apply <<'EOF'\n--- a/{src}\n+++ b/{src}\n@@ -{ln + 3} +{ln + 3} @@\n-    {old}\n+    {new}\nEOF", "(no output)"),
              ("Re-running the whole suite.", "pytest -q", f"{'.' * min(n, 60)}\n{n} passed in {r.randint(2, 40)}.{r.randint(10, 99)}s")]
    steps += opt(r, 0.5, ("Lint check.", "ruff check src tests", "All checks passed!"))
    steps += opt(r, 0.5, ("Committing the fix.", f"git commit -am \"Fix {func}: {fix}\"",
                          f"[main {sha(r)}] Fix {func}: {fix}\n 1 file changed, 1 insertion(+), 1 deletion(-)"))
    return Scenario(task, steps, f"{test} failed because {cause}. I changed {func} in {src} to {fix}; the full suite passes ({n} passed).", c)


RESOURCES = (("orders", "order", "Order"), ("invoices", "invoice", "Invoice"), ("customers", "customer", "Customer"),
             ("products", "product", "Product"))


def flask_feature(r: random.Random, c: dict) -> Scenario:
    res, s, cls = r.choice(RESOURCES)
    i = r.randint(1, 900)
    task = r.choice([f"Add a GET /api/v1/{res}/<id>/summary endpoint to the Flask app in {c['repo']} that returns the {s}'s id, status and total as JSON (404 if it doesn't exist), with tests.",
                     f"We need a summary endpoint for {res} in {c['app']}: GET /api/v1/{res}/<id>/summary returning id, status and total. Please add it with a test."])
    steps = [("Let me see the layout.", f"cd {c['repo']} && ls app/ app/routes/ tests/",
              f"app/:\n__init__.py  models.py  routes\n\napp/routes/:\n__init__.py  health.py  {res}.py\n\ntests/:\nconftest.py  test_health.py  test_{res}.py"),
             ("Existing routes for this resource.", f"sed -n '1,12p' app/routes/{res}.py",
              f"from flask import Blueprint, abort, jsonify\n\nfrom app.models import {cls}, db\n\nbp = Blueprint(\"{res}\", __name__, url_prefix=\"/api/v1/{res}\")\n\n\n@bp.get(\"/<int:{s}_id>\")\ndef get_{s}({s}_id: int):\n    {s} = db.session.get({cls}, {s}_id)\n    if {s} is None:\n        abort(404)")]
    steps += opt(r, 0.4, ("Checking the model fields.", f"grep -n -A 6 'class {cls}' app/models.py",
                          f"{r.randint(10, 60)}:class {cls}(db.Model):\n    id = db.Column(db.Integer, primary_key=True)\n    status = db.Column(db.String(20), nullable=False)\n    total = db.Column(db.Numeric(12, 2))"))
    steps += [("Adding the endpoint.", f"cat >> app/routes/{res}.py <<'EOF'\n\n\n@bp.get(\"/<int:{s}_id>/summary\")\ndef {s}_summary({s}_id: int):\n"
               f"    {s} = db.session.get({cls}, {s}_id)\n    if {s} is None:\n        abort(404)\n    return jsonify(id={s}.id, status={s}.status, total=str({s}.total))\nEOF", "(no output)"),
              ("And the tests.", f"cat > tests/test_{s}_summary.py <<'EOF'\ndef test_{s}_summary(client, make_{s}):\n    {s} = make_{s}(status=\"paid\", total=\"12.50\")\n"
               f"    resp = client.get(f\"/api/v1/{res}/{{{s}.id}}/summary\")\n    assert resp.json == {{\"id\": {s}.id, \"status\": \"paid\", \"total\": \"12.50\"}}\n\n\n"
               f"def test_{s}_summary_404(client):\n    assert client.get(\"/api/v1/{res}/999999/summary\").status_code == 404\nEOF", "(no output)"),
              ("Running the new tests.", f"pytest -q tests/test_{s}_summary.py", f"..\n2 passed in 0.{r.randint(20, 99)}s")]
    steps += opt(r, 0.5, ("Full suite.", "pytest -q", f"{'.' * 40}\n{r.randint(40, 200)} passed in {r.randint(3, 30)}.{r.randint(10, 99)}s"))
    steps += opt(r, 0.5, ("Manual check against the dev server.", f"curl -s http://localhost:5000/api/v1/{res}/{i}/summary",
                          f'{{"id":{i},"status":"{r.choice(("paid", "open", "shipped"))}","total":"{r.randint(5, 900)}.{r.randint(10, 99)}"}}'))
    steps += opt(r, 0.4, ("Committing.", f"git add -A && git commit -m \"Add {s} summary endpoint\"",
                          f"[main {sha(r)}] Add {s} summary endpoint\n 2 files changed, {r.randint(15, 25)} insertions(+)"))
    return Scenario(task, steps, f"Added GET /api/v1/{res}/<id>/summary (404 for unknown ids) in app/routes/{res}.py with two tests in tests/test_{s}_summary.py; both pass.", c)


UPGRADES = (("requests", "2.28.2", "2.31.0"), ("django", "4.2.7", "4.2.11"), ("sqlalchemy", "1.4.49", "2.0.25"),
            ("flask", "2.2.5", "3.0.2"), ("pydantic", "1.10.13", "2.6.1"), ("urllib3", "1.26.18", "2.2.1"))


def deps_upgrade(r: random.Random, c: dict) -> Scenario:
    pkg, v0, v1 = r.choice(UPGRADES)
    n, ln = r.randint(40, 300), r.randint(3, 40)
    task = r.choice([f"Upgrade {pkg} from {v0} to {v1} in {c['app']} (dependabot flagged it) and make sure the tests still pass.",
                     f"Please bump {pkg} to {v1} in {c['repo']}/requirements.txt and fix whatever breaks."])
    steps = [("Current pin:", f"cd {c['repo']} && grep -n -i '^{pkg}' requirements.txt", f"{ln}:{pkg}=={v0}"),
             ("Bumping the pin.", f"sed -i 's/^{pkg}=={v0}/{pkg}=={v1}/' requirements.txt", "(no output)"),
             ("Installing.", f"pip install -q -r requirements.txt && pip show {pkg} | head -2", f"Name: {pkg}\nVersion: {v1}")]
    broken = r.random() < 0.5
    if broken:
        f = f"src/{c['pkg']}/{r.choice(('client', 'db', 'schemas', 'http'))}.py"
        steps += [("Running the tests.", "pytest -q -x",
                   f"F\nE   AttributeError: module '{pkg}' has no attribute 'compat'\n{f}:{r.randint(5, 80)}: AttributeError\n1 failed, {r.randint(5, 50)} passed"),
                  ("Finding the old API usage.", f"grep -rn '{pkg}.compat' src/", f"{f}:{r.randint(5, 80)}:from {pkg}.compat import json"),
                  ("Replacing it with the stdlib import.", f"sed -i 's/from {pkg}.compat import json/import json/' {f}", "(no output)")]
    steps += [("Running the suite.", "pytest -q", f"{'.' * 50}\n{n} passed, {r.randint(0, 6)} warnings in {r.randint(4, 60)}.{r.randint(10, 99)}s")]
    checked = opt(r, 0.5, ("Dependency consistency.", "pip check", "No broken requirements found."))
    steps += checked
    steps += opt(r, 0.6, ("The diff:", "git diff --stat", f" requirements.txt | 2 +-\n {1 + broken} file{'s' if broken else ''} changed"))
    fixed = " and replaced the removed compat import" if broken else ""
    return Scenario(task, steps, f"{pkg} is now pinned to {v1}{fixed}; {'pip check is clean and ' if checked else ''}the suite passes ({n} tests).", c)


SOURCES = (("orders", "order_id,customer_id,region,amount,created_at", "region", "amount", ("EU", "US", "APAC")),
           ("payments", "payment_id,merchant,currency,amount,status", "merchant", "amount", ("acme", "globex", "initech")),
           ("shipments", "shipment_id,carrier,weight_kg,cost,shipped_at", "carrier", "cost", ("dhl", "ups", "fedex")))


def data_script(r: random.Random, c: dict) -> Scenario:
    src, header, key, metric, vals = r.choice(SOURCES)
    d, out, nf = f"/data/exports/{src}", f"reports/{src}_by_{key}.csv", r.randint(20, 90)
    task = r.choice([f"Write a Python script scripts/aggregate_{src}.py that reads all the daily {src} CSV exports in {d} and writes the total {metric} per {key} to {out}. Run it on the current data.",
                     f"I need per-{key} totals of {metric} from the {src} exports in {d}; please write a small reusable script for it and produce {out}."])
    steps = [("What's in the export dir?", f"ls {d} | head -3 && ls {d} | wc -l", f"{src}_2024-01-01.csv\n{src}_2024-01-02.csv\n{src}_2024-01-03.csv\n{nf}"),
             ("Checking the format.", f"head -3 {d}/{src}_2024-01-01.csv",
              f"{header}\n{r.randint(1000, 9999)},{r.choice(vals)},{r.randint(1, 999)}.{r.randint(10, 99)}\n{r.randint(1000, 9999)},{r.choice(vals)},{r.randint(1, 999)}.{r.randint(10, 99)}"),
             ("Writing the script.", f"mkdir -p scripts reports && cat > scripts/aggregate_{src}.py <<'EOF'\nimport csv, glob, sys\nfrom collections import defaultdict\nfrom decimal import Decimal\n\n"
              f"src, out = sys.argv[1], sys.argv[2]\ntotals, rows = defaultdict(Decimal), 0\nfor path in sorted(glob.glob(f\"{{src}}/*.csv\")):\n    with open(path, newline=\"\") as fh:\n"
              f"        for row in csv.DictReader(fh):\n            totals[row[\"{key}\"]] += Decimal(row[\"{metric}\"])\n            rows += 1\n"
              f"with open(out, \"w\", newline=\"\") as fh:\n    w = csv.writer(fh)\n    w.writerow([\"{key}\", \"total_{metric}\"])\n    w.writerows(sorted(totals.items()))\n"
              f"print(f\"read {{rows}} rows\")\nEOF", "(no output)"),
             ("Running it.", f"python3 scripts/aggregate_{src}.py {d} {out}", f"read {r.randint(20000, 900000)} rows"),
             ("Result:", f"cat {out}", f"{key},total_{metric}\n" + "\n".join(f"{v},{r.randint(1000, 99999)}.{r.randint(10, 99)}" for v in vals))]
    steps += opt(r, 0.4, ("Quick syntax/lint check.", f"ruff check scripts/aggregate_{src}.py", "All checks passed!"))
    steps += opt(r, 0.4, ("Does it handle an empty dir?", f"mkdir -p /tmp/empty && python3 scripts/aggregate_{src}.py /tmp/empty /tmp/out.csv && cat /tmp/out.csv",
                          f"read 0 rows\n{key},total_{metric}"))
    return Scenario(task, steps, f"scripts/aggregate_{src}.py sums {metric} per {key} over every CSV in the given directory using Decimal; {out} now has one row per {key}.", c)


K8S_CAUSES = (("KeyError: 'DB_HOST'", "kubectl -n {ns} set env deploy/{app} DB_HOST=postgres.{ns}.svc.cluster.local",
               "deployment.apps/{app} env updated", "the release dropped the DB_HOST variable", "set DB_HOST back to the in-cluster postgres service"),
              ("OOMKilled", "kubectl -n {ns} set resources deploy/{app} --limits=memory=768Mi --requests=memory=512Mi",
               "deployment.apps/{app} resource requirements updated", "the pods were OOMKilled at the 256Mi limit", "raise the memory limit to 768Mi"),
              ("ValueError: invalid log level 'inf0'", "kubectl -n {ns} patch configmap {app}-config --type merge -p '{{\"data\":{{\"LOG_LEVEL\":\"info\"}}}}'",
               "configmap/{app}-config patched", "a typo in LOG_LEVEL in the configmap", "fix LOG_LEVEL in the configmap"))


def k8s_debug(r: random.Random, c: dict) -> Scenario:
    err, fix, fix_out, cause, what = (x.format(**c) for x in r.choice(K8S_CAUSES))
    ns, app, pod = c["ns"], c["app"], f"{c['app']}-{sha(r)}{r.randint(10, 99)}-{sha(r)[:5]}"
    task = r.choice([f"The {app} deployment in the {ns} namespace is in CrashLoopBackOff since this morning's release. Find out why and fix it.",
                     f"{app} pods in {ns} keep restarting after the last deploy. Can you debug and fix it?"])
    steps = [("Pod status:", f"kubectl -n {ns} get pods -l app={app}",
              f"NAME{' ' * 30}READY   STATUS             RESTARTS      AGE\n{pod}   0/1     CrashLoopBackOff   {r.randint(5, 30)} (40s ago)   {r.randint(20, 90)}m"),
             ("Events for the pod.", f"kubectl -n {ns} describe pod {pod} | tail -4",
              f"  Warning  BackOff    {r.randint(1, 9)}m   kubelet  Back-off restarting failed container {app}\n"
              f"  Normal   Pulled     {r.randint(1, 9)}m   kubelet  Container image \"registry.internal/{app}:{r.randint(100, 400)}\" already present")]
    steps += [("Logs from the last crash.", f"kubectl -n {ns} logs {pod} --previous --tail 3",
               f"Starting {app} worker pid=1\nTraceback (most recent call last):\n{err}" if "OOM" not in err else f"Starting {app}\nloading caches...\n(container terminated: {err})")]
    steps += opt(r, 0.5, ("What changed in the release?", f"kubectl -n {ns} rollout history deploy/{app} | tail -2",
                          f"{r.randint(10, 40)}        <none>\n{r.randint(41, 60)}        release {r.randint(100, 400)}"))
    steps += [("Applying the fix.", fix, fix_out),
              ("Waiting for the rollout.", f"kubectl -n {ns} rollout status deploy/{app} --timeout=120s", f'deployment "{app}" successfully rolled out')]
    steps += opt(r, 0.6, ("Checking the pods again.", f"kubectl -n {ns} get pods -l app={app}",
                          f"NAME{' ' * 30}READY   STATUS    RESTARTS   AGE\n{app}-{sha(r)}-{sha(r)[:5]}   1/1     Running   0          {r.randint(20, 90)}s"))
    return Scenario(task, steps, f"The crash loop came from {cause}. I applied the fix ({what}); the rollout finished and the pods are Running.", c)


COMPOSE = (("redis", "redis", "6.2", "7.2", "/data"), ("search", "elasticsearch", "7.17.9", "7.17.18", "/usr/share/elasticsearch/data"),
           ("queue", "rabbitmq", "3.11-management", "3.12-management", "/var/lib/rabbitmq"), ("cache", "memcached", "1.6.17", "1.6.23", "/tmp"))


def compose_migrate(r: random.Random, c: dict) -> Scenario:
    svc, img, v1, v2, mnt = r.choice(COMPOSE)
    app, d = c["app"], f"/srv/{c['app']}"
    task = r.choice([f"Upgrade the {svc} service in {d}/docker-compose.yml from {img}:{v1} to {img}:{v2} and move its data from the bind mount to a named volume. Keep the downtime short.",
                     f"Please migrate {svc} in the {app} compose stack to {img}:{v2} and a named volume instead of ./data/{svc}."])
    steps = [("Current state of the stack.", f"cd {d} && docker compose ps",
              f"NAME            IMAGE              STATUS\n{app}-web-1     {app}:latest      Up 3 days\n{app}-{svc}-1   {img}:{v1}   Up 3 days"),
             ("The service definition:", f"grep -n -A 5 '^  {svc}:' docker-compose.yml",
              f"{r.randint(12, 40)}:  {svc}:\n    image: {img}:{v1}\n    restart: unless-stopped\n    volumes:\n      - ./data/{svc}:{mnt}"),
             ("Pulling the new image first.", f"docker compose pull {svc}", f"[+] Pulling 1/1\n ✔ {svc} Pulled  {r.randint(3, 40)}.{r.randint(1, 9)}s"),
             ("Updating image and volume.", f"sed -i 's|image: {img}:{v1}|image: {img}:{v2}|; s|./data/{svc}:{mnt}|{svc}-data:{mnt}|' docker-compose.yml && printf 'volumes:\\n  {svc}-data:\\n' >> docker-compose.yml", "(no output)"),
             ("Copying the existing data into the volume.", f"docker compose stop {svc} && docker volume create {app}_{svc}-data && docker run --rm -v {d}/data/{svc}:/from -v {app}_{svc}-data:/to alpine cp -a /from/. /to/",
              f"[+] Stopping 1/1\n ✔ Container {app}-{svc}-1  Stopped\n{app}_{svc}-data"),
             ("Recreating the service.", f"docker compose up -d {svc}", f"[+] Running 1/1\n ✔ Container {app}-{svc}-1  Started")]
    steps += opt(r, 0.6, ("Logs after the start.", f"docker compose logs --tail 2 {svc}",
                          f"{app}-{svc}-1  | Ready to accept connections\n{app}-{svc}-1  | version={v2}"))
    steps += opt(r, 0.5, ("Final check.", "docker compose ps", f"NAME            IMAGE              STATUS\n{app}-{svc}-1   {img}:{v2}   Up {r.randint(10, 59)} seconds"))
    return Scenario(task, steps, f"{svc} now runs {img}:{v2} with its data in the named volume {app}_{svc}-data (copied from ./data/{svc}); downtime was the stop/start of that one container.", c)


FAMILIES_DEV = {"ci_fix": ci_fix, "flask_feature": flask_feature, "deps_upgrade": deps_upgrade, "data_script": data_script,
                "k8s_debug": k8s_debug, "compose_migrate": compose_migrate}
