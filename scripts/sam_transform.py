"""The SAM transform, offline: template.yaml -> plain CloudFormation JSON, for cfn-lint.

cfn-lint 1.x lints SAM templates without transforming them and `sam validate --lint` runs
the same code, so neither sees the CloudFormation that SAM generates: a dangling !Ref or
!GetAtt inside a policy, a misspelled IAM action or an invalid runtime passes both. This
runs the real transform (samtranslator, installed with aws-sam-cli) and writes its output,
which scripts/lint-template then lints with cfn-lint.

    python sam_transform.py TEMPLATE OUT.json   (needs AWS_DEFAULT_REGION; no credentials)
"""

import json
import sys

from samtranslator.public.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """Offline: SAM looks managed policies up only when a template names one by name."""

    def load(self):
        return {}


def main(src, dst):
    with open(src) as f:
        template = yaml_parse(f.read())
    # What `sam package` does: local code folders become S3 objects.
    for res in template.get("Resources", {}).values():
        props = res.get("Properties") or {}
        uri = props.get("CodeUri")
        if res.get("Type") == "AWS::Serverless::Function" and isinstance(uri, str) and not uri.startswith("s3://"):
            props["CodeUri"] = "s3://packaged-by-sam/" + uri.strip("/").replace("/", "-") + ".zip"
    try:
        out = transform(template, {}, NoManagedPolicies())
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(f"sam transform: {cause.message}", file=sys.stderr)
        sys.exit(1)
    with open(dst, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:3])
