"""Key-pair and programmatic-access-token logins, as Snowflake checks them, for the proxy.

fakesnow takes any login. Snowflake's key-pair authentication (docs: "Key-pair authentication
and key-pair rotation", "Key Pair Authentication: Troubleshooting") checks a login whose
AUTHENTICATOR is SNOWFLAKE_JWT like this, and so does this module:

- the user has a public key, set with `ALTER USER <name> SET RSA_PUBLIC_KEY = '<base64 DER>'`
  (or RSA_PUBLIC_KEY_2, for rotation; UNSET removes one);
- the JWT is signed RS256; `sub` is `<ACCOUNT>.<USER>` and `iss` is
  `<ACCOUNT>.<USER>.SHA256:<fingerprint>`, upper-case, where ACCOUNT is the login's
  ACCOUNT_NAME and the fingerprint (base64 SHA-256 of the key's DER) names one of the user's two
  keys, whose signature must verify;
- `iat` and `exp` are present, `exp` is not past, and the token lives at most one hour (Snowflake
  documents one hour as the longest a JWT may be valid).
Any failure is error 390144 "JWT token is invalid. [<uuid>]", as the troubleshooting page shows;
the reason goes to the proxy's events, as Snowflake keeps it for SYSTEM$GET_LOGIN_FAILURE_DETAILS.

Programmatic access tokens (docs: "Using programmatic access tokens for authentication"):
`ALTER USER <name> ADD PROGRAMMATIC ACCESS TOKEN <token> [DAYS_TO_EXPIRY = n]` answers
token_name and token_secret; a login with AUTHENTICATOR PROGRAMMATIC_ACCESS_TOKEN and that secret
as TOKEN is accepted until it expires (default 15 days) or `ALTER USER … REMOVE PROGRAMMATIC
ACCESS TOKEN <token>`. Any other is refused; Snowflake does not document the code for that, so
the emulator answers as it does for a wrong password: 390100 "Incorrect username or password was
specified."

The token's prerequisites (same page, "Prerequisites", "Network policy requirements"): "By
default, the user must be subject to a network policy with one or more network rules to
generate or use programmatic access tokens: For service users (where TYPE=SERVICE or
TYPE=LEGACY_SERVICE for the user), you can only generate or use a token if the user is subject
to a network policy. [...] For human users (where TYPE=PERSON for the user), you can generate a
token even if the user is not subject to a network policy, but the user must be subject to a
network policy in order to authenticate with this token." A network policy applies to the user
through `ALTER USER <name> SET NETWORK_POLICY = <policy>` or to every user through `ALTER
ACCOUNT SET NETWORK_POLICY = <policy>`; `CREATE NETWORK POLICY` makes one (this module keeps
them; its network rules and addresses are not checked: every login comes from the test's own
machine). A PAT login of a user no policy applies to is refused with 390432 "Network policy is
required." (the code and text Snowflake's connectors report for it). Generating a token for a
service user also needs a ROLE_RESTRICTION ("Removing the role restriction for service users";
since the 2025-11-19 release an authentication policy with PAT_POLICY =
(REQUIRE_ROLE_RESTRICTION_FOR_SERVICE_USERS = FALSE) lifts it, which this module does not
model). The errors for a refused ADD are the emulator's own words: Snowflake does not document
them. The default NETWORK_POLICY_EVALUATION = ENFORCED_REQUIRED is the only one modelled.

In front of the grant emulator, which models users, the keys and user types are the
emulator's (set with ALTER or CREATE USER there, read from its model at each login); in front
of fakesnow, which has no users, this module keeps them (`ALTER USER … SET TYPE = …`). What it
does not model: that the user exists in front of fakesnow, the privileges needed to set a key,
authentication policies.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
import time
import uuid

import jwt
from cryptography.hazmat.primitives.serialization import load_der_public_key

MAX_LIFETIME_SECONDS = 3600
PAT_DEFAULT_DAYS = 15
NAME = r'("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
SET_KEY = re.compile(
    rf"^\s*ALTER\s+USER\s+(?:IF\s+EXISTS\s+)?{NAME}\s+SET\s+(RSA_PUBLIC_KEY(?:_2)?)\s*=\s*'([^']*)'\s*;?\s*$", re.I
)
UNSET_KEY = re.compile(rf"^\s*ALTER\s+USER\s+(?:IF\s+EXISTS\s+)?{NAME}\s+UNSET\s+(RSA_PUBLIC_KEY(?:_2)?)\s*;?\s*$", re.I)
ADD_PAT = re.compile(
    rf"^\s*ALTER\s+USER\s+(?:IF\s+EXISTS\s+)?{NAME}\s+ADD\s+(?:PROGRAMMATIC\s+ACCESS\s+TOKEN|PAT)\s+{NAME}"
    r"(?:\s+DAYS_TO_EXPIRY\s*=\s*(\d+))?(?:\s+ROLE_RESTRICTION\s*=\s*'[^']*')?\s*;?\s*$",
    re.I,
)
ADD_PAT_ROLE = re.compile(r"\bROLE_RESTRICTION\s*=", re.I)
SET_TYPE = re.compile(
    rf"^\s*ALTER\s+USER\s+(?:IF\s+EXISTS\s+)?{NAME}\s+SET\s+TYPE\s*=\s*'?([A-Za-z_]+)'?\s*;?\s*$", re.I
)
CREATE_NETWORK_POLICY = re.compile(
    rf"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?NETWORK\s+POLICY\s+(?:IF\s+NOT\s+EXISTS\s+)?{NAME}\b(.*)$", re.I | re.S
)
SET_NETWORK_POLICY = re.compile(
    rf"^\s*ALTER\s+(USER\s+(?:IF\s+EXISTS\s+)?{NAME}|ACCOUNT)\s+SET\s+NETWORK_POLICY\s*=\s*'?{NAME}'?\s*;?\s*$", re.I
)
UNSET_NETWORK_POLICY = re.compile(
    rf"^\s*ALTER\s+(USER\s+(?:IF\s+EXISTS\s+)?{NAME}|ACCOUNT)\s+UNSET\s+NETWORK_POLICY\s*;?\s*$", re.I
)
SERVICE_TYPES = {"SERVICE", "LEGACY_SERVICE"}
DONE = "SELECT 'Statement executed successfully.' AS \"status\""
REMOVE_PAT = re.compile(
    rf"^\s*ALTER\s+USER\s+(?:IF\s+EXISTS\s+)?{NAME}\s+REMOVE\s+(?:PROGRAMMATIC\s+ACCESS\s+TOKEN|PAT)\s+{NAME}\s*;?\s*$", re.I
)


class AuthError(Exception):
    def __init__(self, code: str, message: str, reason: str) -> None:
        super().__init__(message)
        self.code, self.message, self.reason = code, message, reason


def stored(name: str) -> str:
    """A name as Snowflake stores it: unquoted upper-cased, quoted as written."""
    if name.startswith('"'):
        return name[1:-1].replace('""', '"')
    return name.upper()


def fingerprint(der: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode()


class Users:
    """The users' keys and tokens, shared by the proxy's handler threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.keys: dict[str, dict[str, bytes]] = {}  # user -> {RSA_PUBLIC_KEY[_2]: DER}
        self.tokens: dict[str, dict[str, tuple[str, float]]] = {}  # user -> {name: (secret, expiry)}
        # Set when the backend models users (the grant emulator): their keys are its to keep.
        self.backend_keys = None
        # Likewise their TYPE (PERSON when unset).
        self.backend_type = None
        self.types: dict[str, str] = {}  # user -> TYPE, in front of fakesnow
        self.network_policies: set[str] = set()
        self.user_policies: dict[str, str] = {}  # user -> network policy
        self.account_policy: str | None = None

    def statement(self, sql: str, keys_in_backend: bool = False) -> str | None:
        """Runs an ALTER USER this module answers; returns the SQL of the query whose result is
        Snowflake's answer to it, or None for any other statement (keys too, when the backend
        keeps them)."""
        if keys_in_backend and (SET_KEY.match(sql) or UNSET_KEY.match(sql) or SET_TYPE.match(sql)):
            return None
        if match := SET_TYPE.match(sql):
            with self.lock:
                self.types[stored(match[1])] = match[2].upper()
            return DONE
        if match := CREATE_NETWORK_POLICY.match(sql):
            with self.lock:
                self.network_policies.add(stored(match[1]))
            return f"SELECT 'Network policy {stored(match[1])} successfully created.' AS \"status\""
        if match := SET_NETWORK_POLICY.match(sql):
            policy = stored(match[3])
            with self.lock:
                if policy not in self.network_policies:
                    raise AuthError(
                        "002003", f"Network policy '{policy}' does not exist or not authorized.", "no such policy"
                    )
                if match[2]:
                    self.user_policies[stored(match[2])] = policy
                else:
                    self.account_policy = policy
            return DONE
        if match := UNSET_NETWORK_POLICY.match(sql):
            with self.lock:
                if match[2]:
                    self.user_policies.pop(stored(match[2]), None)
                else:
                    self.account_policy = None
            return DONE
        if match := SET_KEY.match(sql):
            user, prop, text = stored(match[1]), match[2].upper(), re.sub(r"\s+", "", match[3])
            try:
                der = base64.b64decode(text, validate=True)
                load_der_public_key(der)
            except ValueError as e:
                raise AuthError("002029", "Invalid RSA public key.", str(e)) from None
            with self.lock:
                self.keys.setdefault(user, {})[prop] = der
            return "SELECT 'Statement executed successfully.' AS \"status\""
        if match := UNSET_KEY.match(sql):
            with self.lock:
                self.keys.get(stored(match[1]), {}).pop(match[2].upper(), None)
            return "SELECT 'Statement executed successfully.' AS \"status\""
        if match := ADD_PAT.match(sql):
            user, name = stored(match[1]), stored(match[2])
            if self.user_type(user) in SERVICE_TYPES:
                if not self.has_network_policy(user):
                    raise AuthError(
                        "390432",
                        f"Network policy is required. User {user} is a service user: a programmatic "
                        "access token can be generated only for a user subject to a network policy.",
                        "service user without a network policy",
                    )
                if not ADD_PAT_ROLE.search(sql):
                    raise AuthError(
                        "001003",
                        f"A programmatic access token for service user {user} needs a ROLE_RESTRICTION.",
                        "service user token without a role restriction",
                    )
            days = int(match[3]) if match[3] else PAT_DEFAULT_DAYS
            secret = secrets.token_urlsafe(48)
            with self.lock:
                self.tokens.setdefault(user, {})[name] = (secret, time.time() + days * 86400)
            return f"SELECT '{name.replace(chr(39), chr(39) * 2)}' AS \"token_name\", '{secret}' AS \"token_secret\""
        if match := REMOVE_PAT.match(sql):
            with self.lock:
                self.tokens.get(stored(match[1]), {}).pop(stored(match[2]), None)
            return "SELECT 'Statement executed successfully.' AS \"status\""
        return None

    def check_login(self, data: dict) -> None:
        """Checks a login's credential when it is one this module knows; raises AuthError."""
        authenticator = str(data.get("AUTHENTICATOR") or "").upper()
        if authenticator == "SNOWFLAKE_JWT":
            self.check_jwt(data)
        elif authenticator == "PROGRAMMATIC_ACCESS_TOKEN":
            self.check_pat(data)

    def check_jwt(self, data: dict) -> None:
        def invalid(reason: str) -> AuthError:
            return AuthError("390144", f"JWT token is invalid. [{uuid.uuid4()}]", reason)

        token = str(data.get("TOKEN") or "")
        account = str(data.get("ACCOUNT_NAME") or "").upper()
        user = str(data.get("LOGIN_NAME") or "")
        qualified = f"{account}.{user.upper()}"
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as e:
            raise invalid(f"not a JWT: {e}") from None
        if header.get("alg") != "RS256":
            raise invalid(f"algorithm {header.get('alg')}, not RS256")
        if claims.get("sub") != qualified:
            raise invalid(f"sub {claims.get('sub')!r} is not {qualified!r}")
        issuer = str(claims.get("iss") or "")
        if not issuer.startswith(qualified + ".SHA256:"):
            raise invalid(f"iss {issuer!r} is not {qualified}.SHA256:<fingerprint>")
        wanted = issuer[len(qualified) + 1 :]
        if self.backend_keys is not None:
            keys = {str(i): base64.b64decode(k) for i, k in enumerate(self.backend_keys(stored(user)))}
        else:
            with self.lock:
                keys = dict(self.keys.get(stored(user), {}) or self.keys.get(user, {}))
        der = next((d for d in keys.values() if fingerprint(d) == wanted), None)
        if der is None:
            raise invalid(f"no public key of user {user} has fingerprint {wanted}")
        try:
            claims = jwt.decode(
                token, load_der_public_key(der), algorithms=["RS256"], options={"require": ["iss", "sub", "iat", "exp"]}
            )
        except jwt.PyJWTError as e:
            raise invalid(f"{type(e).__name__}: {e}") from None
        if claims["exp"] - claims["iat"] > MAX_LIFETIME_SECONDS:
            raise invalid(f"lifetime {claims['exp'] - claims['iat']} s is over one hour")

    def check_pat(self, data: dict) -> None:
        token = str(data.get("TOKEN") or "")
        user = str(data.get("LOGIN_NAME") or "")
        with self.lock:
            tokens = dict(self.tokens.get(stored(user), {}) or self.tokens.get(user, {}))
        now = time.time()
        if not any(secrets.compare_digest(secret, token) and expiry > now for secret, expiry in tokens.values()):
            raise AuthError("390100", "Incorrect username or password was specified.", f"no live token of user {user} matches")
        if not self.has_network_policy(stored(user)) and not self.has_network_policy(user):
            raise AuthError("390432", "Network policy is required.", f"user {user} is subject to no network policy")

    def user_type(self, user: str) -> str:
        if self.backend_type is not None:
            return str(self.backend_type(user) or "PERSON").upper()
        with self.lock:
            return self.types.get(user, "PERSON")

    def has_network_policy(self, user: str) -> bool:
        with self.lock:
            return user in self.user_policies or self.account_policy is not None
