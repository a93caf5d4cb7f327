#!/usr/bin/env python3
"""Creates on moto the resources a synthesized cpis template defines, and
writes each function's environment with the template's references resolved.

Usage: rehearsal_resources.py TEMPLATE ENDPOINT OUT_DIR [-p NAME=VALUE ...]
                              [--imported-secret ARN=FILE ...]

The template is the one source of truth (issue 15): DynamoDB tables (key
schema, GSIs, TTL), SQS queues (redrive included), KMS keys and Secrets
Manager secrets are created as it declares them, and every
`AWS::Lambda::Function`'s `Environment.Variables` is resolved against what
was created. A function's variable that refers to anything else fails the run
with its name, so a new resource in the stack cannot be silently missed here.
A secret the stack imports by ARN (the operator's MESH secret, given by
context) is not in the template: `--imported-secret ARN=FILE` creates it on
moto with FILE's text, and every environment naming ARN names moto's instead
(moto chooses a secret's ARN suffix itself).

Writes OUT_DIR/<crate>.env (KEY=VALUE lines, for `cargo lambda watch
--env-file`) per function and OUT_DIR/resources.json (logical id -> name,
url, arn), and prints one `ok resources: ...` line.
"""

import argparse
import json
import os
import re
import secrets
import sys

import boto3

REGION = "eu-west-2"
# moto's account: ARNs that functions build themselves (the SNS topic prefix)
# must name the account moto puts topics in.
ACCOUNT = "123456789012"


class Unresolvable(Exception):
    pass


def crate_name(logical_path):
    """`Cpis/PlanUpload/Function/Resource` -> `plan-upload` (the stack's toId, reversed)."""
    construct = logical_path.split("/")[1]
    return re.sub(r"(?<!^)([A-Z])", r"-\1", construct).lower()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("template")
    parser.add_argument("endpoint")
    parser.add_argument("out_dir")
    parser.add_argument("-p", "--parameter", action="append", default=[],
                        help="NAME=VALUE for a template parameter without a default")
    parser.add_argument("-f", "--function", action="append", default=[],
                        help="write the environment of this function only (repeatable; default all)")
    parser.add_argument("--imported-secret", action="append", default=[],
                        help="ARN=FILE: a secret the stack imports, created on moto from FILE")
    args = parser.parse_args()

    with open(args.template, encoding="utf-8") as f:
        template = json.load(f)
    resources = template["Resources"]
    overrides = dict(p.split("=", 1) for p in args.parameter)

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    client = lambda service: session.client(service, endpoint_url=args.endpoint)  # noqa: E731
    dynamodb, sqs, kms, sm = (client(s) for s in ("dynamodb", "sqs", "kms", "secretsmanager"))

    # logical id -> {"Ref": ..., attribute name: ...}, as CloudFormation would answer.
    created = {}

    def parameter(name):
        if name in overrides:
            return overrides[name]
        spec = template.get("Parameters", {}).get(name)
        if spec is None or "Default" not in spec:
            raise Unresolvable(f"parameter {name} has no default: pass -p {name}=VALUE")
        return str(spec["Default"])

    pseudo = {
        "AWS::Region": REGION,
        "AWS::AccountId": ACCOUNT,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": "Cpis",
    }

    def resolve(value):
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if not isinstance(value, dict) or len(value) != 1:
            raise Unresolvable(f"unexpected value {json.dumps(value)[:80]}")
        (fn, arg), = value.items()
        if fn == "Ref":
            if arg in pseudo:
                return pseudo[arg]
            if arg in created:
                return created[arg]["Ref"]
            if arg in template.get("Parameters", {}):
                return parameter(arg)
            raise Unresolvable(f"Ref {arg} ({resources.get(arg, {}).get('Type', 'unknown')})")
        if fn == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            if logical in created and attribute in created[logical]:
                return created[logical][attribute]
            raise Unresolvable(f"GetAtt {logical}.{attribute}")
        if fn == "Fn::If":
            # Only the branch the condition picks is resolved, as CloudFormation does.
            name, when_true, when_false = arg
            return resolve(when_true if condition(name) else when_false)
        if fn == "Fn::Join":
            sep, parts = arg
            return sep.join(resolve(p) for p in parts)
        if fn == "Fn::Sub" and isinstance(arg, str):
            return re.sub(r"\$\{([^}]+)\}", lambda m: resolve(
                {"Fn::GetAtt": m.group(1).split(".", 1)} if "." in m.group(1) and m.group(1) not in pseudo
                else {"Ref": m.group(1)}), arg)
        raise Unresolvable(f"{fn} is not supported here")

    def condition(name):
        """A template condition: Fn::Equals, Fn::Not, Fn::And, Fn::Or over resolvable values."""
        def holds(expr):
            (fn, arg), = expr.items()
            if fn == "Fn::Equals":
                return resolve(arg[0]) == resolve(arg[1])
            if fn == "Fn::Not":
                return not holds(arg[0])
            if fn == "Fn::And":
                return all(holds(a) for a in arg)
            if fn == "Fn::Or":
                return any(holds(a) for a in arg)
            if fn == "Condition":
                return condition(arg)
            raise Unresolvable(f"condition {fn} is not supported here")
        spec = template.get("Conditions", {}).get(name)
        if spec is None:
            raise Unresolvable(f"condition {name} is not in the template")
        return holds(spec)

    of_type = lambda t: sorted(k for k, v in resources.items() if v["Type"] == t)  # noqa: E731

    for logical in of_type("AWS::KMS::Key"):
        props = resources[logical].get("Properties", {})
        meta = kms.create_key(Description=props.get("Description", logical))["KeyMetadata"]
        created[logical] = {"Ref": meta["KeyId"], "Arn": meta["Arn"], "KeyId": meta["KeyId"]}

    for logical in of_type("AWS::SecretsManager::Secret"):
        # A template secret is generated by CloudFormation; here, as the stack's
        # pseudonymisation key is: 32 random bytes, hex.
        arn = sm.create_secret(Name=f"cpis-rehearsal-{logical}",
                               SecretString=secrets.token_hex(32))["ARN"]
        created[logical] = {"Ref": arn, "Id": arn}

    # Dead-letter queues first: a queue's RedrivePolicy names its DLQ's ARN.
    pending = of_type("AWS::SQS::Queue")
    while pending:
        progressed = False
        for logical in list(pending):
            props = resources[logical].get("Properties", {})
            attributes = {}
            try:
                for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds",
                            "ReceiveMessageWaitTimeSeconds", "FifoQueue"):
                    if key in props:
                        attributes[key] = str(props[key]).lower() if key == "FifoQueue" else str(props[key])
                if "RedrivePolicy" in props:
                    attributes["RedrivePolicy"] = json.dumps(resolve_tree(props["RedrivePolicy"], resolve))
            except Unresolvable:
                continue
            # KMS encryption is left out: moto does not encrypt, and the functions
            # never name the queues' key.
            name = f"cpis-rehearsal-{logical}" + (".fifo" if props.get("FifoQueue") else "")
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            created[logical] = {"Ref": url, "QueueUrl": url, "Arn": arn, "QueueName": name}
            pending.remove(logical)
            progressed = True
        if not progressed:
            sys.exit(f"FAIL resources: queues whose redrive target cannot be created: {pending}")

    tables = of_type("AWS::DynamoDB::Table")
    for logical in tables:
        props = resources[logical]["Properties"]
        name = f"cpis-rehearsal-{logical}"
        request = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if request["BillingMode"] == "PROVISIONED":
            request["ProvisionedThroughput"] = props["ProvisionedThroughput"]
        if props.get("GlobalSecondaryIndexes"):
            request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        if props.get("StreamSpecification"):
            request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        # The audit table's resource policy (append-only denials) is not
        # applied: moto does not evaluate resource policies.
        arn = dynamodb.create_table(**request)["TableDescription"]["TableArn"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        created[logical] = {"Ref": name, "Arn": arn}

    # Imported secrets: the template names them by ARN only.
    imported = {}
    for spec in args.imported_secret:
        arn, path = spec.split("=", 1)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        name = "cpis-rehearsal-imported-" + arn.rsplit(":", 1)[1].rsplit("-", 1)[0].replace("/", "-")
        imported[arn] = sm.create_secret(Name=name, SecretString=text)["ARN"]

    os.makedirs(args.out_dir, exist_ok=True)
    functions = of_type("AWS::Lambda::Function")
    written = []
    for logical in functions:
        res = resources[logical]
        path = res.get("Metadata", {}).get("aws:cdk:path", "")
        if not path.startswith("Cpis/") or not path.endswith("/Function/Resource"):
            continue  # CDK's own helper functions, if any
        name = crate_name(path)
        if args.function and name not in args.function:
            continue  # a function the rehearsal does not run
        variables = res.get("Properties", {}).get("Environment", {}).get("Variables", {})
        try:
            env = {k: imported.get(resolve(v), resolve(v)) for k, v in sorted(variables.items())}
        except Unresolvable as e:
            sys.exit(f"FAIL resources: {name}: cannot resolve an environment variable: {e}")
        with open(os.path.join(args.out_dir, f"{name}.env"), "w", encoding="utf-8") as f:
            for k, v in env.items():
                if "\n" in v:
                    sys.exit(f"FAIL resources: {name}: {k} cannot be written to an env file")
                f.write(f"{k}={v}\n")
        written.append(name)
    with open(os.path.join(args.out_dir, "resources.json"), "w", encoding="utf-8") as f:
        json.dump({"created": created, "functions": written}, f, indent=1)

    print(f"ok resources: {len(tables)} tables, {len(of_type('AWS::SQS::Queue'))} queues, "
          f"{len(of_type('AWS::KMS::Key'))} KMS keys, {len(of_type('AWS::SecretsManager::Secret'))} "
          f"secret(s) from the template, {len(imported)} imported; environments of {', '.join(written)}")


def resolve_tree(value, resolve):
    """Resolves intrinsic functions anywhere inside a JSON property (a RedrivePolicy)."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)).startswith(("Ref", "Fn::")):
            return resolve(value)
        return {k: resolve_tree(v, resolve) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_tree(v, resolve) for v in value]
    return value


if __name__ == "__main__":
    main()
