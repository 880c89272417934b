"""DynamoDB's endpoint, chosen as botocore chooses it for a client, once, when a transport opens.

The rules are botocore's own: its DynamoDB endpoint rule set
(``botocore/data/dynamodb/2012-08-10/endpoint-rule-set-1.json``) and partitions, evaluated by its
``EndpointProvider``, with the signing region from its ``ClientEndpointBridge`` over
``endpoints.json``. What is written here is only the glue botocore's client creation puts around
them, step by step as ``ClientCreator.create_client`` and ``ClientArgsCreator`` do it:

- the region: the one given, else ``AWS_DEFAULT_REGION``/``AWS_REGION``/the profile's, checked as
  botocore checks it; a FIPS pseudo-region (``us-east-1-fips``, ``fips-us-gov-west-1``) becomes
  the region with FIPS on;
- the endpoint: the one given, else the configured one (``AWS_ENDPOINT_URL_DYNAMODB``,
  ``AWS_ENDPOINT_URL``, the profile's ``endpoint_url``) unless configured endpoints are ignored;
  an endpoint given turns FIPS and dual-stack off, as botocore's client does;
- FIPS and dual-stack: ``use_fips_endpoint`` / ``use_dualstack_endpoint`` (environment, profile);
- account-based endpoints: ``account_id_endpoint_mode`` (``AWS_ACCOUNT_ID_ENDPOINT_MODE`` or the
  profile; ``preferred`` by default, or ``required``, ``disabled``), with the account ID of a
  table given by its ARN, else of the credentials (``AWS_ACCOUNT_ID``, the profile's
  ``aws_account_id``, SSO, an assumed role).

Where botocore refuses (an invalid region, FIPS with ``required`` account endpoints, a dual-stack
endpoint given as an override...), `choose` raises `ValueError` with botocore's message.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from botocore.client import ClientEndpointBridge
from botocore.configprovider import ConfiguredEndpointProvider
from botocore.endpoint_provider import EndpointProvider
from botocore.exceptions import BotoCoreError, EndpointProviderError, NoRegionError
from botocore.regions import EndpointResolver
from botocore.regions import EndpointResolverBuiltins as Builtins
from botocore.utils import ensure_boolean, validate_region_name

__all__ = ["ACCOUNT_ID_ENDPOINT_MODES", "Endpoint", "choose"]

_SERVICE = "dynamodb"
_NO_REGION = "no AWS region: pass region_name= or set AWS_DEFAULT_REGION (or a profile's)"
#: The values botocore accepts for ``account_id_endpoint_mode``.
ACCOUNT_ID_ENDPOINT_MODES = ("preferred", "disabled", "required")


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where a DynamoDB client sends its requests, and the region it signs them for."""

    url: str
    signing_region: str


#: botocore's rules, by the loader's search paths: read and parsed once a process (about 40 ms
#: of CPU), not once a session (a pool made without a session gets a new one).
_RULES: dict[tuple[str, ...], tuple[EndpointProvider, EndpointResolver]] = {}


def _rules(loader: Any) -> tuple[EndpointProvider, EndpointResolver]:
    """botocore's DynamoDB rule set and partitions, and its ``endpoints.json`` resolver, as the
    session's loader finds them."""
    key = tuple(loader.search_paths)
    found = _RULES.get(key)
    if found is None:
        ruleset = loader.load_service_model(_SERVICE, "endpoint-rule-set-1")
        partitions = loader.load_data("partitions")
        provider = EndpointProvider(ruleset_data=ruleset, partition_data=partitions)
        endpoints, path = loader.load_data_with_path("endpoints")
        legacy = EndpointResolver(endpoints, uses_builtin_data=loader.is_builtin_path(path))
        found = _RULES[key] = (provider, legacy)
    return found


def _account_id_endpoint_mode(config_store: Any) -> str:
    mode = config_store.get_config_variable("account_id_endpoint_mode")
    if isinstance(mode, str):
        mode = mode.lower()
    if mode not in ACCOUNT_ID_ENDPOINT_MODES:
        raise ValueError(
            f"The configured value {mode!r} for 'account_id_endpoint_mode' is invalid "
            f"(AWS_ACCOUNT_ID_ENDPOINT_MODE or the profile's): use one of "
            f"{', '.join(ACCOUNT_ID_ENDPOINT_MODES)}"
        )
    return str(mode)


def choose(
    session: Any,
    *,
    region_name: str | None,
    endpoint_url: str | None,
    account_id: str | None,
    table: str | None = None,
) -> Endpoint:
    """The endpoint and signing region an aiobotocore DynamoDB client of ``session`` (a botocore
    or aiobotocore session) would use, given ``region_name`` and ``endpoint_url`` as
    ``create_client`` is given them, and the credentials' ``account_id``, for requests on
    ``table`` (a table given by its ARN routes to the account in the ARN, as botocore does per
    request; every request of a pool is on its one table).

    Reads configuration (environment, config files) and botocore's data files: run it in a
    thread. Raises `ValueError` where botocore would refuse the client or its first request.
    """
    region = region_name if region_name is not None else session.get_config_variable("region")
    try:
        validate_region_name(region)
    except BotoCoreError as exc:
        raise ValueError(str(exc)) from None
    fips_pseudo = False
    if region is not None:
        normalized = region.replace("fips-", "").replace("-fips", "")
        fips_pseudo = normalized != region
        region = normalized

    config_store = copy.copy(session.get_component("config_store"))
    config_store.set_config_provider(
        "endpoint_url",
        ConfiguredEndpointProvider(
            full_config=session.full_config,
            scoped_config=session.get_scoped_config(),
            client_name=_SERVICE,
        ),
    )
    if endpoint_url is None and not ensure_boolean(
        config_store.get_config_variable("ignore_configured_endpoint_urls") or False
    ):
        configured = config_store.get_config_variable("endpoint_url")
        endpoint_url = configured if isinstance(configured, str) and configured else None
    mode = _account_id_endpoint_mode(config_store)

    provider, legacy = _rules(session.get_component("data_loader"))
    client_config = None
    if fips_pseudo:
        from botocore.config import Config

        client_config = Config(use_fips_endpoint=True)
    bridge = ClientEndpointBridge(
        legacy,
        session.get_scoped_config(),
        client_config,
        service_signing_name=_SERVICE,
        config_store=config_store,
        service_signature_version="v4",
    )
    try:
        legacy_config = bridge.resolve(_SERVICE, region, endpoint_url, True)
    except NoRegionError:
        raise ValueError(_NO_REGION) from None
    except BotoCoreError as exc:
        raise ValueError(str(exc)) from None

    given = endpoint_url
    if not given and not bridge.resolver_uses_builtin_data():
        given = legacy_config["endpoint_url"]  # a custom endpoints.json's answer is an override
    rules_region = region if region is not None else legacy_config["region_name"]
    # The rule set's built-in inputs, as `ClientArgsCreator.compute_endpoint_resolver_builtin_
    # defaults` computes them (the bridge's private helpers are the ones it calls too).
    builtins: dict[str, Any] = {
        Builtins.AWS_REGION.value: rules_region,
        Builtins.AWS_USE_FIPS.value: (
            given is None and bridge._resolve_endpoint_variant_config_var("use_fips_endpoint")
        )
        or False,
        Builtins.AWS_USE_DUALSTACK.value: (
            given is None and bridge._resolve_use_dualstack_endpoint(_SERVICE)
        )
        or False,
        Builtins.SDK_ENDPOINT.value: given,
        Builtins.ACCOUNT_ID.value: account_id,
        Builtins.ACCOUNT_ID_ENDPOINT_MODE.value: mode,
    }
    params: dict[str, Any] = {}
    for name, definition in provider.ruleset.parameters.items():
        value = builtins.get(definition.builtin) if definition.builtin else None
        if value is not None:
            params[name] = value
    if table is not None and "ResourceArn" in provider.ruleset.parameters:
        params["ResourceArn"] = table  # the operations' TableName, as their context parameter
    try:
        resolved = provider.resolve_endpoint(**params)
    except EndpointProviderError as exc:
        raise ValueError(str(exc.kwargs.get("msg") or exc)) from None

    signing_region = legacy_config["signing_region"]
    for scheme in resolved.properties.get("authSchemes", ()):
        if scheme.get("signingRegion"):
            signing_region = scheme["signingRegion"]
            break
    if not signing_region:  # an endpoint without a region: botocore cannot sign for it
        raise ValueError(_NO_REGION)
    return Endpoint(url=resolved.url, signing_region=signing_region)
