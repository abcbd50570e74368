"""The SAM transform, as CloudFormation applies it when `sam deploy` submits the template.

samtranslator (the library behind `AWS::Serverless-2016-10-31`) turns the template into plain
CloudFormation offline. It needs each function's code as an S3 location, which `sam deploy`
fills in after uploading the packages; `transform` puts the location it is given instead.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Final

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from salesstream.deploy.template import DEFAULT_TEMPLATE, load_template_document

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

PLACEHOLDER_CODE: Final = {"Bucket": "salesstream-packages", "Key": "function.zip"}


def with_code_location(document: Mapping[str, Any], code: Mapping[str, str]) -> dict[str, Any]:
    """The template with every function's CodeUri pointing at `code` (what `sam package` does)."""
    result = copy.deepcopy(dict(document))
    result.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = dict(code)
    for resource in result["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function" and "CodeUri" in resource.get("Properties", {}):
            resource["Properties"]["CodeUri"] = dict(code)
    return result


def transform(
    document: Mapping[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    *,
    region: str = "us-east-1",
    code: Mapping[str, str] = PLACEHOLDER_CODE,
    path: Path = DEFAULT_TEMPLATE,
) -> dict[str, Any]:
    """The CloudFormation template SAM makes of ours (no network: AWS managed policies are only
    looked up for templates that name them, and ours names none)."""
    source = with_code_location(document or load_template_document(path), code)
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    transformed: dict[str, Any] = translator.translate(
        source, parameter_values=dict(parameters or {}), get_managed_policy_map=dict
    )
    return transformed
