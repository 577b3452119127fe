#!/usr/bin/env python3
"""Reads template.yaml for the Lambda tests (run by tests/lambda/run-events.sh and tests/run.sh).

  lambdatool.py functions TEMPLATE
      One tab-separated line per function: logical id, binary, cargo package, memory size, timeout.
  lambdatool.py events TEMPLATE EVENTS_DIR
      Checks that every function has at least one event in EVENTS_DIR/<binary>/ and that every
      folder there (except _samples-like ones starting with `_`) belongs to a function, and that all
      event and expect files are valid JSON; prints `<binary>\t<event file>` lines.
  lambdatool.py provision TEMPLATE ENDPOINT PREFIX FUNCTION_LOGICAL_ID
      Creates the template's tables, buckets and queues on the emulator at ENDPOINT (moto), named
      PREFIX-<LogicalId>, and prints the function's environment (Globals + its own) as KEY=VALUE
      lines, with Refs resolved to what was created. Variables that point at resources the emulator
      does not host (e.g. the WebSocket API) are left out, so the adapters use the emulator endpoint;
      dynamic references ({{resolve:secretsmanager:...}}) get a fixed test stand-in.
  lambdatool.py check-response EVENT_FILE RESPONSE_FILE
      Checks a function's response against EVENT_FILE's `<name>.expect.json` (or, without one,
      statusCode 200 for HTTP events). Expect keys: statusCode, headers (subset, names
      case-insensitive), body (subset of the JSON body), bodyKeys (keys the JSON body must have),
      response (subset of the raw response); keys starting with `_` are comments.
  lambdatool.py check-template TEMPLATE
      Template rules the linters do not know: each queue consumed by a function through an SQS event
      has a VisibilityTimeout of at least 6x that function's Timeout; each queue with a RedrivePolicy
      has maxReceiveCount 5 and a dead-letter queue with an alarm on ApproximateNumberOfMessagesVisible;
      each function is built by rust-cargolambda with a Binary; Globals use provided.al2023 on arm64
      (written out, or a !Ref to a parameter that defaults to arm64 and allows only arm64/x86_64).

The template uses CloudFormation short-form tags (!Ref, !Sub ...): they are loaded as the long form.
"""

import json
import os
import re
import sys
import tomllib

import yaml

EMULATOR_REGION = "us-east-1"
ACCOUNT = "123456789012"


class _Loader(yaml.SafeLoader):
    pass


def _intrinsic(loader, tag_suffix, node):
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_Loader.add_multi_constructor("!", _intrinsic)


def load_template(path):
    with open(path) as f:
        return yaml.load(f, Loader=_Loader)


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def find_in_map(tpl, args):
    m, k1, k2 = args
    return tpl["Mappings"][m][k1][k2]


def functions(tpl, template_path):
    """(logical id, properties merged with Globals, metadata) for each AWS::Serverless::Function."""
    glob = (tpl.get("Globals") or {}).get("Function") or {}
    out = []
    for lid, res in (tpl.get("Resources") or {}).items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        props = dict(glob)
        props.update(res.get("Properties") or {})
        env = dict(((glob.get("Environment") or {}).get("Variables")) or {})
        env.update((((res.get("Properties") or {}).get("Environment") or {}).get("Variables")) or {})
        props["Environment"] = {"Variables": env}
        out.append((lid, props, res.get("Metadata") or {}))
    return out


def binary_of(lid, meta):
    if meta.get("BuildMethod") != "rust-cargolambda":
        fail(f"{lid}: Metadata.BuildMethod must be rust-cargolambda")
    binary = (meta.get("BuildProperties") or {}).get("Binary")
    if not binary:
        fail(f"{lid}: Metadata.BuildProperties.Binary is missing")
    return binary


def package_of(template_path, lid, props):
    code_uri = props.get("CodeUri")
    if not isinstance(code_uri, str):
        fail(f"{lid}: CodeUri must be the function's crate directory")
    manifest = os.path.join(os.path.dirname(os.path.abspath(template_path)), code_uri, "Cargo.toml")
    if not os.path.isfile(manifest):
        fail(f"{lid}: CodeUri {code_uri!r} has no Cargo.toml ({manifest})")
    with open(manifest, "rb") as f:
        cargo = tomllib.load(f)
    return cargo["package"]["name"], cargo


def number(tpl, v):
    if isinstance(v, dict) and "Fn::FindInMap" in v:
        v = find_in_map(tpl, v["Fn::FindInMap"])
    return int(v)


def cmd_functions(template_path):
    tpl = load_template(template_path)
    fns = functions(tpl, template_path)
    if not fns:
        fail("template declares no AWS::Serverless::Function")
    for lid, props, meta in fns:
        binary = binary_of(lid, meta)
        package, cargo = package_of(template_path, lid, props)
        bins = [b.get("name") for b in cargo.get("bin", [])]
        if binary not in bins:
            fail(f"{lid}: Binary {binary!r} is not a [[bin]] of {package} (has {bins})")
        mode = "stream" if (props.get("FunctionUrlConfig") or {}).get("InvokeMode") == "RESPONSE_STREAM" else "buffered"
        print(f"{lid}\t{binary}\t{package}\t{number(tpl, props.get('MemorySize', 128))}\t{number(tpl, props.get('Timeout', 3))}\t{mode}")


def cmd_events(template_path, events_dir):
    tpl = load_template(template_path)
    binaries = [binary_of(lid, meta) for lid, _, meta in functions(tpl, template_path)]
    problems = []
    for d in sorted(os.listdir(events_dir)):
        p = os.path.join(events_dir, d)
        if os.path.isdir(p) and not d.startswith("_") and d not in binaries:
            problems.append(f"events/{d}/ belongs to no function in the template (functions: {binaries})")
    for root, _, files in os.walk(events_dir):
        for f in files:
            if f.endswith(".json"):
                try:
                    with open(os.path.join(root, f)) as fh:
                        json.load(fh)
                except ValueError as e:
                    problems.append(f"{os.path.join(root, f)} is not valid JSON: {e}")
    lines = []
    # Two functions may run one binary (the ai function and its streaming deployment): its events are listed once.
    for b in dict.fromkeys(binaries):
        d = os.path.join(events_dir, b)
        evs = sorted(f for f in os.listdir(d) if f.endswith(".json") and not f.endswith(".expect.json")) if os.path.isdir(d) else []
        if not evs:
            problems.append(f"function binary {b!r} has no sample event: add events/{b}/<name>.json")
        for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if f.endswith(".expect.json") and f[: -len(".expect.json")] + ".json" not in evs:
                problems.append(f"events/{b}/{f} expects a response to an event that does not exist")
        lines += [f"{b}\t{os.path.join(d, e)}" for e in evs]
    if problems:
        for p in problems:
            print(f"FAIL: {p}", file=sys.stderr)
        sys.exit(1)
    print("\n".join(lines))


# ---- provisioning on the emulator -------------------------------------------------------------

def _client(service, endpoint):
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=EMULATOR_REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def _resolve(tpl, v, created):
    """A plain value for `v`, or None when it names something the emulator does not host."""
    if isinstance(v, (str, int, float, bool)):
        return str(v).lower() if isinstance(v, bool) else str(v)
    if not isinstance(v, dict) or len(v) != 1:
        return None
    (fn, arg), = v.items()
    params = tpl.get("Parameters") or {}
    pseudo = {
        "AWS::Region": EMULATOR_REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::Partition": "aws",
        "AWS::StackName": "nusatrade-test",
    }
    if fn == "Ref":
        if arg in pseudo:
            return pseudo[arg]
        if arg in params:
            d = params[arg].get("Default")
            return None if d is None else str(d)
        return created.get(arg, {}).get("Ref")
    if fn == "Fn::GetAtt":
        lid, attr = arg if isinstance(arg, list) else arg.split(".", 1)
        return created.get(lid, {}).get(attr)
    if fn == "Fn::FindInMap":
        return str(find_in_map(tpl, arg))
    if fn == "Fn::Join":
        delimiter, items = arg
        if isinstance(items, dict):
            # A list-valued Ref: a CommaDelimitedList parameter's default (CloudFormation trims each member).
            param = params.get(items.get("Ref")) if isinstance(items.get("Ref"), str) else None
            if not param or param.get("Type") != "CommaDelimitedList" or param.get("Default") is None:
                return None
            return delimiter.join(x.strip() for x in str(param["Default"]).split(","))
        parts = [_resolve(tpl, i, created) for i in items]
        return None if any(x is None for x in parts) else delimiter.join(parts)
    if fn == "Fn::Sub":
        text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        missing = []

        def sub(m):
            name = m.group(1)
            if name in local:
                r = _resolve(tpl, local[name], created)
            elif "." in name and not name.startswith("AWS::"):
                r = _resolve(tpl, {"Fn::GetAtt": name.split(".", 1)}, created)
            else:
                r = _resolve(tpl, {"Ref": name}, created)
            if r is None:
                missing.append(name)
                return ""
            return r

        out = re.sub(r"\$\{([^!}][^}]*)\}", sub, text)
        return None if missing else out
    return None


def provision(tpl, endpoint, prefix):
    resources = tpl.get("Resources") or {}
    created = {}
    ddb, s3, sqs = _client("dynamodb", endpoint), _client("s3", endpoint), _client("sqs", endpoint)
    for lid, res in resources.items():
        t, p = res.get("Type"), res.get("Properties") or {}
        if t == "AWS::DynamoDB::Table":
            name = f"{prefix}-{lid}"
            kw = {
                "TableName": name,
                "AttributeDefinitions": p["AttributeDefinitions"],
                "KeySchema": p["KeySchema"],
                "BillingMode": p.get("BillingMode", "PAY_PER_REQUEST"),
            }
            if p.get("GlobalSecondaryIndexes"):
                kw["GlobalSecondaryIndexes"] = p["GlobalSecondaryIndexes"]
            ddb.create_table(**kw)
            ttl = p.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
            created[lid] = {"Ref": name, "Arn": f"arn:aws:dynamodb:{EMULATOR_REGION}:{ACCOUNT}:table/{name}"}
        elif t == "AWS::S3::Bucket":
            name = f"{prefix}-{lid}".lower()
            s3.create_bucket(Bucket=name)
            if (p.get("VersioningConfiguration") or {}).get("Status") == "Enabled":
                s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            created[lid] = {"Ref": name, "Arn": f"arn:aws:s3:::{name}"}
        elif t == "AWS::SQS::Queue":
            name = f"{prefix}-{lid}" + (".fifo" if p.get("FifoQueue") else "")
            attrs = {"FifoQueue": "true"} if p.get("FifoQueue") else {}
            url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            created[lid] = {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}
    # Second pass: queue attributes that refer to other queues (RedrivePolicy → the DLQ's ARN).
    for lid, res in resources.items():
        if res.get("Type") != "AWS::SQS::Queue":
            continue
        p = res.get("Properties") or {}
        attrs = {}
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds"):
            if key in p:
                attrs[key] = _resolve(tpl, p[key], created)
        if "RedrivePolicy" in p:
            rp = p["RedrivePolicy"]
            attrs["RedrivePolicy"] = json.dumps({
                "deadLetterTargetArn": _resolve(tpl, rp["deadLetterTargetArn"], created),
                "maxReceiveCount": int(_resolve(tpl, rp["maxReceiveCount"], created)),
            })
        attrs = {k: v for k, v in attrs.items() if v is not None}
        if attrs:
            sqs.set_queue_attributes(QueueUrl=created[lid]["Ref"], Attributes=attrs)
    return created


def cmd_provision(template_path, endpoint, prefix, function_lid):
    tpl = load_template(template_path)
    fns = {lid: props for lid, props, _ in functions(tpl, template_path)}
    if function_lid not in fns:
        fail(f"no function {function_lid!r} in {template_path}")
    created = provision(tpl, endpoint, prefix)
    for key, v in sorted(fns[function_lid]["Environment"]["Variables"].items()):
        r = _resolve(tpl, v, created)
        if r is None:
            print(f"note: {key} left unset (not hosted by the emulator): {v}", file=sys.stderr)
            continue
        if "{{resolve:" in r:
            # A dynamic reference (Secrets Manager / SSM) that CloudFormation resolves at deploy time:
            # the test gets a fixed stand-in of a realistic length instead.
            print(f"note: {key} is a dynamic reference ({r}): using a test stand-in", file=sys.stderr)
            r = f"emulated-{key.lower().replace('_', '-')}-not-a-real-secret-0123456789abcdef"
        if "\n" in r:
            fail(f"{key}: multi-line values are not supported")
        print(f"{key}={r}")


# ---- response checks ----------------------------------------------------------------------------

def _subset(want, got, path, errors):
    if isinstance(want, dict):
        if not isinstance(got, dict):
            errors.append(f"{path}: expected an object, got {json.dumps(got)}")
            return
        for k, w in want.items():
            if k.startswith("_"):
                continue
            if k not in got:
                errors.append(f"{path}.{k}: missing (expected {json.dumps(w)})")
            else:
                _subset(w, got[k], f"{path}.{k}", errors)
    elif want != got:
        errors.append(f"{path}: expected {json.dumps(want)}, got {json.dumps(got)}")


def cmd_check_response(event_file, response_file):
    with open(event_file) as f:
        event = json.load(f)
    with open(response_file) as f:
        raw = f.read()
    try:
        resp = json.loads(raw)
    except ValueError:
        fail(f"the response is not JSON: {raw[:500]!r}")
    expect_file = event_file[: -len(".json")] + ".expect.json"
    is_http = isinstance(event.get("requestContext"), dict) and (
        "http" in event["requestContext"] or "httpMethod" in event
    )
    if os.path.exists(expect_file):
        with open(expect_file) as f:
            expect = json.load(f)
    elif is_http:
        expect = {"statusCode": 200}
    else:
        expect = {}
    errors = []
    if "statusCode" in expect:
        if resp.get("statusCode") != expect["statusCode"]:
            errors.append(f"statusCode: expected {expect['statusCode']}, got {resp.get('statusCode')}")
    if "headers" in expect:
        got = {k.lower(): v for k, v in (resp.get("headers") or {}).items()}
        _subset({k.lower(): v for k, v in expect["headers"].items()}, got, "headers", errors)
    if "body" in expect or "bodyKeys" in expect:
        body = resp.get("body")
        if resp.get("isBase64Encoded") and isinstance(body, str):
            import base64

            body = base64.b64decode(body).decode("utf-8", "replace")
        try:
            body_json = json.loads(body) if isinstance(body, str) else body
        except ValueError:
            body_json = None
            errors.append(f"body is not JSON: {str(body)[:200]!r}")
        if body_json is not None:
            if "body" in expect:
                _subset(expect["body"], body_json, "body", errors)
            for k in expect.get("bodyKeys", []):
                if not isinstance(body_json, dict) or k not in body_json:
                    errors.append(f"body.{k}: missing")
    if "response" in expect:
        _subset(expect["response"], resp, "response", errors)
    if errors:
        print(f"response: {raw[:2000]}", file=sys.stderr)
        for e in errors:
            print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"statusCode={resp.get('statusCode', '-')} checks={'expect file' if os.path.exists(expect_file) else 'default'}")


def cmd_invoke_stream(port, function, event_file, out_file):
    """Invokes a response-streaming function through the Runtime API emulator's invoke endpoint, which decodes the
    streamed HTTP-integration response (prelude, 8 NUL bytes, body) into a plain HTTP answer; writes it as the
    {statusCode, headers, body} object check-response reads (`cargo lambda invoke` cannot read streamed answers)."""
    import urllib.error
    import urllib.request

    with open(event_file, "rb") as f:
        data = f.read()
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/2015-03-31/functions/{function}/invocations", data=data, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, headers, body = r.status, dict(r.headers.items()), r.read()
    except urllib.error.HTTPError as e:
        status, headers, body = e.code, dict(e.headers.items()), e.read()
    with open(out_file, "w") as f:
        json.dump({"statusCode": status, "headers": headers, "body": body.decode("utf-8", "replace")}, f)


# ---- template rules -----------------------------------------------------------------------------

def cmd_check_template(template_path):
    tpl = load_template(template_path)
    resources = tpl.get("Resources") or {}
    problems = []
    glob = (tpl.get("Globals") or {}).get("Function") or {}
    if glob.get("Runtime") != "provided.al2023":
        problems.append("Globals.Function.Runtime must be provided.al2023")
    arch = glob.get("Architectures")
    if isinstance(arch, list) and len(arch) == 1 and isinstance(arch[0], dict) and "Ref" in arch[0]:
        param = (tpl.get("Parameters") or {}).get(arch[0]["Ref"]) or {}
        arm64 = param.get("Default") == "arm64" and set(param.get("AllowedValues") or ["?"]) <= {"arm64", "x86_64"}
    else:
        arm64 = arch == ["arm64"]
    if not arm64:
        problems.append("Globals.Function.Architectures must be [arm64], or [!Ref <parameter>] defaulting to arm64 "
                        "with AllowedValues within arm64, x86_64")
    if glob.get("Handler") != "bootstrap":
        problems.append("Globals.Function.Handler must be bootstrap")
    fns = functions(tpl, template_path)
    for lid, props, meta in fns:
        binary_of(lid, meta)
        package_of(template_path, lid, props)
        for ev_name, ev in ((props.get("Events") or {})).items():
            if ev.get("Type") != "SQS":
                continue
            q = (ev.get("Properties") or {}).get("Queue")
            qlid = q.get("Fn::GetAtt", [None])[0] if isinstance(q, dict) else None
            if qlid not in resources:
                problems.append(f"{lid}.{ev_name}: Queue must be !GetAtt <Queue>.Arn of a queue in this template")
                continue
            vt = number(tpl, (resources[qlid].get("Properties") or {}).get("VisibilityTimeout", 30))
            timeout = number(tpl, props.get("Timeout", 3))
            if vt < 6 * timeout:
                problems.append(f"{qlid}: VisibilityTimeout {vt}s < 6 x {lid} Timeout {timeout}s")
            if not ((ev.get("Properties") or {}).get("FunctionResponseTypes") or []) == ["ReportBatchItemFailures"]:
                problems.append(f"{lid}.{ev_name}: FunctionResponseTypes must be [ReportBatchItemFailures]")
    alarmed = set()
    for lid, res in resources.items():
        if res.get("Type") != "AWS::CloudWatch::Alarm":
            continue
        p = res.get("Properties") or {}
        if p.get("MetricName") != "ApproximateNumberOfMessagesVisible" or p.get("Namespace") != "AWS/SQS":
            continue
        for d in p.get("Dimensions") or []:
            v = d.get("Value")
            if d.get("Name") == "QueueName" and isinstance(v, dict) and "Fn::GetAtt" in v:
                if p.get("ComparisonOperator") == "GreaterThanThreshold" and number(tpl, p.get("Threshold", -1)) == 0:
                    alarmed.add(v["Fn::GetAtt"][0])
    queues = [lid for lid, r in resources.items() if r.get("Type") == "AWS::SQS::Queue"]
    dlqs = set()
    for lid in queues:
        p = resources[lid].get("Properties") or {}
        rp = p.get("RedrivePolicy")
        if not rp:
            continue
        dlq = (rp.get("deadLetterTargetArn") or {}).get("Fn::GetAtt", [None])[0]
        if dlq not in resources:
            problems.append(f"{lid}: RedrivePolicy.deadLetterTargetArn must be !GetAtt <Queue>.Arn")
            continue
        dlqs.add(dlq)
        if number(tpl, rp.get("maxReceiveCount", 0)) != 5:
            problems.append(f"{lid}: RedrivePolicy.maxReceiveCount must be 5")
        if dlq not in alarmed:
            problems.append(f"{dlq}: dead-letter queue of {lid} has no alarm on ApproximateNumberOfMessagesVisible > 0")
    for lid in queues:
        if lid not in dlqs and not (resources[lid].get("Properties") or {}).get("RedrivePolicy"):
            problems.append(f"{lid}: a work queue needs a RedrivePolicy to a dead-letter queue")
    if problems:
        for p in problems:
            print(f"FAIL: {p}", file=sys.stderr)
        sys.exit(1)
    print(f"template rules: {len(fns)} function(s), {len(queues) - len(dlqs)} work queue(s) with alarmed DLQs: ok")


def main(argv):
    cmds = {
        "functions": (cmd_functions, 1),
        "events": (cmd_events, 2),
        "provision": (cmd_provision, 4),
        "check-response": (cmd_check_response, 2),
        "invoke-stream": (cmd_invoke_stream, 4),
        "check-template": (cmd_check_template, 1),
    }
    if len(argv) < 2 or argv[1] not in cmds or len(argv) - 2 != cmds[argv[1]][1]:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmds[argv[1]][0](*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
