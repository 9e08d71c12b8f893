"""The PII guard (design.md §5): label names and operation-metadata keys matched by token.

One matrix of realistic names, checked where the guard applies: metric label names (a
``DefinitionError`` naming the setting), operation-log metadata keys (the same function as
``meterhub.oplog.validate``), event-rule labels, and ``meterhub lint``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import meterhub
from meterhub import Counter, DefinitionError, Histogram, Registry
from meterhub._config import DEFAULT_PII_ALLOW, DEFAULT_PII_DENY
from meterhub.errors import RecordingError
from meterhub.naming import KNOWN_CLEAN_NAMES, is_pii_name, pii_match, pii_tokens
from meterhub.oplog import OperationLog
from meterhub.oplog.validate import check_metadata
from meterhub.tools.lint import lint_text

# Realistic label names (valid Prometheus label names) that name personal data or secrets.
REFUSED_LABELS = [
    "email", "user_email", "email_address", "userEmail", "emails", "e_mail",
    "password", "password_hash", "db_password", "passwd",
    "token", "access_token", "auth_token", "refresh_token", "accessToken", "csrftoken",
    "tokenid", "emailaddress", "passwordhash", "secretkey", "tokens",
    "secret", "client_secret", "clientSecret",
    "api_key", "apiKey", "APIKey", "x_api_key", "apikey",
    "private_key", "privateKey",
    "cookie", "cookies", "set_cookie",
    "authorization", "Authorization",
    "username", "user_name", "UserName",
    "first_name", "last_name", "full_name", "firstName",
    "phone", "phone_number", "phoneNumber",
    "ssn", "credit_card", "creditCardNumber",
    "ip_address", "IPAddress", "client_ip_address",
    "user_id", "userId", "UserID", "user_ids", "session_id", "sessionId", "client_id",
    "request_id", "requestId",
]  # fmt: skip

# Operation-metadata keys may be any string: separators, spacing, Unicode tricks.
REFUSED_KEYS = [
    *REFUSED_LABELS,
    "email ",
    " email",
    "User-Email",
    "user.email",
    "e-mail",
    "E-Mail",
    "\uff45\uff4d\uff41\uff49\uff4c",  # fullwidth "email"
    "em\u00adail",  # soft hyphen
    "e\u200bmail",  # zero-width space
    "pass\u200dword",  # zero-width joiner
    "\ufefftoken",  # BOM
    "user id",
    "user.id",
    "User-ID",
    "user\tid",
    "user\u00a0id",  # no-break space
    "Api-Key",
    "API KEY",
    "X-API-Key",
    "first name",
    "credit-card",
    "ip.address",
    "PassWord",
    "Set-Cookie",
    "EMAIL_ADDRESS",
]

# Ordinary label words Prometheus users write every day: they must pass.
ALLOWED = [
    "name", "key", "type", "kind", "user", "id", "status", "method", "route", "path",
    "host", "hostname", "service", "operation", "queue", "job", "instance", "code",
    "region", "zone", "version", "key_type", "key_id", "user_type", "user_agent",
    "display_name", "metric_name", "queue_name", "file_name", "cache_key", "tenant",
    "session", "client", "request", "address", "ip", "ip_version", "keyspace", "identity",
    "tokenizer", "mailbox", "phase", "secretary", "secretariat", "tokenization", "emailer",
]  # fmt: skip


def test_the_matrix_is_realistic_and_large() -> None:
    assert len(set(REFUSED_LABELS)) >= 38 and len(set(REFUSED_KEYS)) > len(REFUSED_LABELS)


@pytest.mark.parametrize("label", REFUSED_LABELS)
def test_pii_label_names_are_refused_naming_the_setting(registry: Registry, label: str) -> None:
    with pytest.raises(DefinitionError, match="PII deny-list") as info:
        Counter("c", "C.", [label], registry=registry)
    message = str(info.value)
    assert repr(label) in message and "METERHUB_PII_ALLOW" in message
    assert "METERHUB_PII_DENY" in message


@pytest.mark.parametrize("key", REFUSED_KEYS)
def test_pii_metadata_keys_are_refused(key: str) -> None:
    assert is_pii_name(key), pii_tokens(key)
    with pytest.raises(RecordingError, match=r"PII deny-list.*METERHUB_PII_ALLOW"):
        check_metadata({key: "x"})
    with pytest.raises(RecordingError, match="PII deny-list"):
        check_metadata({"request": {"headers": {key: "x"}}})


@pytest.mark.parametrize("name", ALLOWED)
def test_ordinary_words_pass(registry: Registry, name: str) -> None:
    assert pii_match(name) is None
    Counter("c", "C.", [name], registry=registry)
    assert check_metadata({name: 1}) == {name: 1}


def test_tokens() -> None:
    assert pii_tokens("X-API-Key") == ("x", "api", "key")
    assert pii_tokens("userIDHash") == ("user", "id", "hash")
    assert pii_tokens("  User.Name\u00ad ") == ("user", "name")
    assert pii_tokens("\uff35\uff53\uff45\uff52\uff29\uff44") == ("user", "id")  # fullwidth


def test_the_matched_entry_is_reported() -> None:
    assert pii_match("user_email") == "email"
    assert pii_match("Access-Token") == "token"
    assert pii_match("first name") == "first name"
    assert pii_match("userid") == "user id"


def test_allow_list_by_setting_and_environment(registry: Registry) -> None:
    assert {"token_type", "gen_ai_token_type"} == DEFAULT_PII_ALLOW
    Counter("llm_tokens", "Tokens.", ["tokenType"], registry=registry)  # compared by tokens
    assert pii_match("gen_ai.token.type") is None and pii_match("token_value") == "token"
    meterhub.configure(strict=True, pii_allow={"refresh_token_kind"})
    Counter("c2", "C.", ["refreshTokenKind"], registry=registry)
    assert is_pii_name("token_type")  # the setting replaced the default allow-list
    meterhub.configure({"METERHUB_PII_ALLOW": "+access_token"})
    assert not is_pii_name("AccessToken") and not is_pii_name("token_type")
    assert is_pii_name("refresh_token")


def test_deny_list_by_setting_and_environment(registry: Registry) -> None:
    meterhub.configure({"METERHUB_PII_DENY": "+region, customer number"})
    assert is_pii_name("region") and is_pii_name("customerNumber")
    assert is_pii_name("customernumber") and is_pii_name("user_email")
    meterhub.configure({"METERHUB_PII_DENY": "region"})
    assert is_pii_name("region") and not is_pii_name("user_email")
    with pytest.raises(TypeError, match="pii_deny"):
        meterhub.configure(pii_deny="email")


def test_reset_defaults_restores_the_lists_and_empties_the_cache() -> None:
    assert check_metadata({"region": 1}) == {"region": 1}
    assert "region" in KNOWN_CLEAN_NAMES
    meterhub.configure(strict=True, pii_deny=DEFAULT_PII_DENY | {"region"})
    assert "region" not in KNOWN_CLEAN_NAMES  # the fast path's cache follows the change
    with pytest.raises(RecordingError, match="PII"):
        check_metadata({"region": 1})
    meterhub.reset_defaults()
    meterhub.configure(strict=True)
    assert meterhub.get_config().pii_deny is DEFAULT_PII_DENY
    assert check_metadata({"region": 1}) == {"region": 1}


@pytest.mark.parametrize("fast", [True, False])
def test_oplog_refuses_pii_keys_on_both_paths(tmp_path: Path, fast: bool) -> None:
    log = OperationLog(tmp_path, registry=Registry(self_metrics=False), fsync=False)
    log._fast = fast
    log.start_sync()
    try:
        for key in ("User-Email", "user id", "em\u00adail", "\uff45\uff4d\uff41\uff49\uff4c"):
            with pytest.raises(RecordingError, match="PII"):
                log.record_operation_nowait("api", "GET /", 1.0, metadata={key: "x"})
    finally:
        log.stop_sync()


def test_hub_and_histogram_labels_use_the_same_guard(registry: Registry) -> None:
    with pytest.raises(DefinitionError, match="PII"):
        Histogram("h", "H.", ["clientIpAddress"], registry=registry)
    hub = meterhub.Hub(registry=registry)
    with pytest.raises(DefinitionError, match="PII"):
        hub.inc_counter("logins_total", {"userEmail": "a@b.c"})


def test_lint_reports_pii_label_names() -> None:
    text = '# TYPE logins counter\nlogins_total{userEmail="x",status="ok"} 1\n'
    findings = [f for f in lint_text(text) if f.code == "label-pii"]
    assert len(findings) == 1 and "'userEmail'" in findings[0].message
    assert findings[0].line == 2 and findings[0].severity == "error"
    clean = '# TYPE logins counter\nlogins_total{user="x",name="y",key="z"} 1\n'
    assert not [f for f in lint_text(clean) if f.code == "label-pii"]
