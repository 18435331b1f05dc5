"""What template.yaml promises, checked on the CloudFormation the SAM transform makes of it.

cfn-lint says a template is valid; this says it is the one docs/deploy.md and
docs/operations.md describe: throttled stage with access logs, the $default route on the
dashboard function, reserved concurrency, the aggregation's retry and failure handling and
its alarms, log levels, table protection, GSI ARNs by name, the alarms on meter's own
metrics (whose names must be those shared/src/metrics emits), the dashboard, and a
samconfig.toml whose parameters the template accepts.

    python check_template.py TEMPLATE TRANSFORMED.json SAMCONFIG METRICS_RS

Exit status 1 with one line per failed check. scripts/lint-template runs it (with the
Python of .venv-lint, which has samtranslator's YAML loader for the CloudFormation tags).
"""

import json
import re
import sys
import tomllib

from samtranslator.yaml_helper import yaml_parse

HTTP_FUNCTIONS = ["LimitCheckFunction", "UsageIngestFunction", "UsageDashboardFunction"]
AGGREGATE = "UsageAggregateFunction"
FUNCTIONS = HTTP_FUNCTIONS + [AGGREGATE]
APP_LOG_LEVELS = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
SYSTEM_LOG_LEVELS = {"DEBUG", "INFO", "WARN"}

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
    return ok


def ref(name):
    return {"Ref": name}


def get_att(resource, attr):
    return {"Fn::GetAtt": [resource, attr]}


def alarms_notify_ops(name, props):
    check(props.get("AlarmActions") == [ref("OpsTopic")], f"{name}: AlarmActions is not [OpsTopic]")
    check(props.get("OKActions") == [ref("OpsTopic")], f"{name}: OKActions is not [OpsTopic]")


def rate_seconds(expression):
    m = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours)\)", expression)
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2)
    if (n == 1) != (unit in ("minute", "hour")):
        return None  # EventBridge wants `1 minute` and `5 minutes`
    return n * (3600 if unit.startswith("hour") else 60)


def main(template_path, transformed_path, samconfig_path, metrics_path):
    with open(template_path) as f:
        template = yaml_parse(f.read())
    with open(transformed_path) as f:
        cfn = json.load(f)
    with open(samconfig_path, "rb") as f:
        samconfig = tomllib.load(f)
    with open(metrics_path) as f:
        metric_names = set(re.findall(r'name: "(meter_[a-z_]+)"', f.read()))
    check(len(metric_names) >= 8, f"found only {sorted(metric_names)} in {metrics_path}")

    params = template["Parameters"]
    mappings = template["Mappings"]
    res = cfn["Resources"]

    # ---- the stage: throttling and access logs
    stage = res["MeterApiApiGatewayDefaultStage"]["Properties"]
    check(
        stage.get("DefaultRouteSettings") == {"ThrottlingRateLimit": ref("ApiRateLimit"), "ThrottlingBurstLimit": ref("ApiBurstLimit")},
        "the stage's DefaultRouteSettings do not throttle with ApiRateLimit/ApiBurstLimit",
    )
    logs = stage.get("AccessLogSettings", {})
    check(logs.get("DestinationArn") == get_att("ApiAccessLogGroup", "Arn"), "access logs do not go to ApiAccessLogGroup")
    try:
        fmt = json.loads(logs.get("Format", ""))
    except ValueError:
        fmt = {}
        check(False, "the access log format is not one JSON object")
    check(fmt.get("lambdaRequestId") == "$context.integration.requestId", "access logs lack the Lambda request id")
    check(fmt.get("status") == "$context.status", "access logs lack the status")
    leaks = [v for v in fmt.values() if re.search(r"header|querystring|authorizer|requestOverride", v, re.I)]
    check(not leaks, f"access logs would record request data: {leaks}")
    check(
        res["ApiAccessLogGroup"]["Properties"].get("RetentionInDays") == ref("LogRetentionDays"),
        "ApiAccessLogGroup is not kept LogRetentionDays",
    )

    # ---- routes: $default goes to the dashboard function
    body = res["MeterApi"]["Properties"]["Body"]
    default = body["paths"].get("$default", {}).get("x-amazon-apigateway-any-method", {})
    uri = json.dumps(default.get("x-amazon-apigateway-integration", {}).get("uri"))
    check(default.get("isDefaultRoute") is True and "${UsageDashboardFunction.Arn}" in uri, "no $default route to UsageDashboardFunction")

    # ---- functions
    for name in FUNCTIONS:
        props = res[name]["Properties"]
        lc = props.get("LoggingConfig", {})
        check(lc.get("LogFormat") == "JSON", f"{name}: LogFormat is not JSON")
        check(
            lc.get("ApplicationLogLevel") == {"Fn::FindInMap": ["LogLevels", ref("LogLevel"), "Application"]},
            f"{name}: ApplicationLogLevel does not follow LogLevel",
        )
        check(
            lc.get("SystemLogLevel") == {"Fn::FindInMap": ["LogLevels", ref("LogLevel"), "System"]},
            f"{name}: SystemLogLevel does not follow LogLevel",
        )
        check(lc.get("LogGroup", {}).get("Ref", "").endswith("LogGroup"), f"{name}: no log group of its own")
        env = props.get("Environment", {}).get("Variables", {})
        check(env.get("METER_STACK") == ref("AWS::StackName"), f"{name}: METER_STACK is not the stack name")
        check(env.get("RUST_LOG") == ref("LogLevel"), f"{name}: RUST_LOG is not LogLevel")
    for name in HTTP_FUNCTIONS:
        timeout = res[name]["Properties"].get("Timeout", 3)
        check(timeout <= 29, f"{name}: timeout {timeout} s reaches the HTTP API's 30 s limit")
    for level in params["LogLevel"]["AllowedValues"]:
        m = mappings["LogLevels"].get(level, {})
        check(m.get("Application") in APP_LOG_LEVELS, f"LogLevels.{level}.Application is not a Lambda level")
        # Never above INFO: EMF lines have no `level` and Lambda files them as INFO.
        check(m.get("Application") in {"TRACE", "DEBUG", "INFO"}, f"LogLevels.{level}.Application drops the metric lines (above INFO)")
        wanted = {"trace": "TRACE", "debug": "DEBUG"}.get(level, "INFO")
        check(m.get("Application") == wanted, f"LogLevels.{level}.Application is not {wanted}")
        check(m.get("System") in SYSTEM_LOG_LEVELS, f"LogLevels.{level}.System is not a Lambda system level")
    for name, param in [("LimitCheckFunction", "LimitCheckReservedConcurrency"), ("UsageIngestFunction", "UsageIngestReservedConcurrency")]:
        rce = res[name]["Properties"].get("ReservedConcurrentExecutions")
        check(
            isinstance(rce, dict) and rce.get("Fn::If", [None, None])[1] == ref(param) and rce["Fn::If"][2] == ref("AWS::NoValue"),
            f"{name}: ReservedConcurrentExecutions does not follow {param} (0 = none)",
        )

    # ---- the aggregation: one at a time, no retries, failures kept and alarmed
    agg = res[AGGREGATE]["Properties"]
    check(agg.get("ReservedConcurrentExecutions") == 1, "the aggregation's reserved concurrency is not 1")
    eic = res.get(f"{AGGREGATE}EventInvokeConfig", {}).get("Properties", {})
    check(eic.get("MaximumRetryAttempts") == 0, "the aggregation is retried by Lambda")
    check(
        eic.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination") == get_att("AggregationFailureQueue", "Arn"),
        "failed aggregation events do not go to AggregationFailureQueue",
    )
    role = json.dumps(res[f"{AGGREGATE}Role"]["Properties"]["Policies"])
    check('"sqs:SendMessage"' in role and '"AggregationFailureQueue"' in role, "the aggregation may not send to its failure queue")
    rule = res[f"{AGGREGATE}Schedule"]["Properties"]
    check(
        rule.get("ScheduleExpression") == {"Fn::FindInMap": ["AggregationIntervals", ref("AggregationIntervalMinutes"), "Schedule"]},
        "the schedule does not follow AggregationIntervalMinutes",
    )
    for minutes in params["AggregationIntervalMinutes"]["AllowedValues"]:
        entry = mappings["AggregationIntervals"].get(str(minutes), {})
        check(entry.get("Seconds") == int(minutes) * 60, f"AggregationIntervals.{minutes}.Seconds is not {int(minutes) * 60}")
        check(rate_seconds(entry.get("Schedule", "")) == int(minutes) * 60, f"AggregationIntervals.{minutes}.Schedule is not a rate of {minutes} minutes")
    queue = res["AggregationFailureQueue"]["Properties"]
    check(queue.get("SqsManagedSseEnabled") is True, "the failure queue is not encrypted")

    # ---- alarms
    alarms = {k: v["Properties"] for k, v in res.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    for name, props in alarms.items():
        alarms_notify_ops(name, props)
    missed = alarms.get("AggregationMissedAlarm", {})
    check(
        (missed.get("Namespace"), missed.get("MetricName"), missed.get("Statistic")) == ("AWS/Lambda", "Invocations", "Sum")
        and missed.get("Dimensions") == [{"Name": "FunctionName", "Value": ref(AGGREGATE)}]
        and missed.get("Period") == {"Fn::FindInMap": ["AggregationIntervals", ref("AggregationIntervalMinutes"), "Seconds"]}
        and (missed.get("EvaluationPeriods"), missed.get("DatapointsToAlarm")) == (2, 2)
        and (missed.get("ComparisonOperator"), missed.get("Threshold")) == ("LessThanThreshold", 1)
        and missed.get("TreatMissingData") == "breaching",
        "AggregationMissedAlarm: not `Invocations < 1 over two intervals, missing data breaching`",
    )
    failed = alarms.get("AggregationFailuresAlarm", {})
    check(
        failed.get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and failed.get("Dimensions") == [{"Name": "QueueName", "Value": get_att("AggregationFailureQueue", "QueueName")}],
        "AggregationFailuresAlarm does not watch the failure queue's depth",
    )
    p99 = alarms.get("LimitCheckDurationAlarm", {})
    check(
        (p99.get("MetricName"), p99.get("ExtendedStatistic"), p99.get("Threshold")) == ("Duration", "p99", ref("CheckP99Milliseconds"))
        and p99.get("Dimensions") == [{"Name": "FunctionName", "Value": ref("LimitCheckFunction")}],
        "LimitCheckDurationAlarm is not limit-check's p99 Duration against CheckP99Milliseconds",
    )
    sns = alarms.get("AlertDeliveryFailuresAlarm", {})
    check(
        (sns.get("Namespace"), sns.get("MetricName")) == ("AWS/SNS", "NumberOfNotificationsFailed")
        and sns.get("Dimensions") == [{"Name": "TopicName", "Value": get_att("AlertTopic", "TopicName")}],
        "AlertDeliveryFailuresAlarm does not watch the alert topic's failed notifications",
    )
    outbox = alarms.get("OutboxAgeAlarm", {})
    check(
        outbox.get("Namespace") == "meter"
        and outbox.get("MetricName") in metric_names
        and outbox.get("MetricName", "").endswith("_age_seconds")
        and outbox.get("Dimensions") == [{"Name": "stack", "Value": ref("AWS::StackName")}]
        and outbox.get("Threshold") == ref("OutboxAgeAlarmSeconds"),
        "OutboxAgeAlarm does not watch meter's outbox age metric (namespace meter, dimension stack)",
    )

    # ---- the dashboard: JSON once substituted, naming only metrics the code emits
    sub = res["MeterDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    text = re.sub(r"\$\{[^}]+\}", "1", sub[0] if isinstance(sub, list) else sub)
    try:
        dashboard = json.loads(text)
    except ValueError as e:
        dashboard = {"widgets": []}
        check(False, f"the dashboard body is not JSON: {e}")
    named = set(re.findall(r'"(meter_[a-z_]+)"', text)) | set(re.findall(r'\\"(meter_[a-z_]+)\\"', text))
    check(named and named <= metric_names, f"the dashboard names metrics the code does not emit: {sorted(named - metric_names)}")
    check(len(dashboard.get("widgets", [])) >= 6, "the dashboard has fewer than 6 widgets")

    # ---- the table
    table = res["MeterTable"]["Properties"]
    check(table.get("DeletionProtectionEnabled") is True, "the table has no deletion protection")
    check({"Key": "app", "Value": "meter"} in table.get("Tags", []), "the table is not tagged app=meter")
    check("Fn::If" in table.get("OnDemandThroughput", {}), "the table's OnDemandThroughput does not follow the cap parameters")
    indexes = {g["IndexName"] for g in table["GlobalSecondaryIndexes"]}
    for name in FUNCTIONS:
        policies = json.dumps(res[f"{name}Role"]["Properties"]["Policies"])
        check("/index/*" not in policies, f"{name}: a policy allows every index (index/*)")
        for index in re.findall(r"/index/([A-Za-z0-9_.-]+)", policies):
            check(index in indexes, f"{name}: a policy names index {index}, which the table does not have")

    # ---- samconfig.toml
    envs = [k for k in samconfig if k != "version"]
    check({"default", "prod"} <= set(envs), f"samconfig.toml environments are {envs}, not default and prod")
    stacks = [samconfig[e].get("global", {}).get("parameters", {}).get("stack_name") for e in envs]
    check(len(set(stacks)) == len(stacks) and None not in stacks, f"each environment needs its own stack_name: {stacks}")
    for env in envs:
        for cmd, sections in samconfig[env].items():
            p = sections.get("parameters", {})
            if cmd != "global":
                check("parameter_overrides" not in p, f"[{env}.{cmd}] has its own parameter_overrides (keep them in [{env}.global] for build and deploy alike)")
                check(not p.get("cached"), f"[{env}.{cmd}] builds cached (SAM hashes functions/<name> only, not shared/)")
        overrides = samconfig[env].get("global", {}).get("parameters", {}).get("parameter_overrides", [])
        if isinstance(overrides, str):
            overrides = overrides.split()
        check(any(o.startswith("Architecture=") for o in overrides), f"[{env}] does not name the Architecture")
        for o in overrides:
            key, _, value = o.partition("=")
            spec = params.get(key)
            if not check(spec is not None, f"[{env}] parameter {key} is not in the template"):
                continue
            allowed = spec.get("AllowedValues")
            if allowed is not None:
                check(value in [str(a) for a in allowed], f"[{env}] {key}={value} is not one of {allowed}")
            if spec.get("Type") == "Number":
                try:
                    n = float(value)
                except ValueError:
                    check(False, f"[{env}] {key}={value} is not a number")
                    continue
                check("MinValue" not in spec or n >= spec["MinValue"], f"[{env}] {key}={value} is below {spec.get('MinValue')}")
                check("MaxValue" not in spec or n <= spec["MaxValue"], f"[{env}] {key}={value} is above {spec.get('MaxValue')}")

    for f in failures:
        print(f"check-template: {f}", file=sys.stderr)
    if failures:
        sys.exit(1)
    print(f"check-template: the template keeps its promises ({len(alarms)} alarms, {len(envs)} samconfig environments)", file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:5])
