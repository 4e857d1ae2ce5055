"""A grant-aware Snowflake emulator for the permissions tests and benchmark.

fakesnow (PyPI) emulates Snowflake's REST protocol on DuckDB but has no roles, users or grants:
CREATE ROLE, GRANT, REVOKE and SHOW GRANTS fail there, SHOW WAREHOUSES returns one fixed row and
CURRENT_ROLE() is `duckdb`. This server runs fakesnow's own application in the same process and
answers the access-control statements itself from an in-memory account model; every other
statement (CREATE DATABASE / SCHEMA / TABLE / VIEW, SELECT, ...) goes to fakesnow unchanged, and
the objects it holds are the databases, schemas, tables and views the model grants on.

Its SHOW answers use the column names and value formats Snowflake documents (SHOW GRANTS:
created_on, privilege, granted_on, name, granted_to, grantee_name, grant_option, granted_by;
SHOW GRANTS TO USER as since behaviour change 2025_01: created_on, privilege, granted_on, name,
role, granted_to, grantee_name, grant_option, granted_by, a role grant being USAGE on ROLE
<name> (role NULL on the rows of privileges granted to the user directly, which it models too);
SHOW FUTURE GRANTS: created_on, privilege, grant_on, name, grant_to, grantee_name, grant_option;
names as stored, unquoted ones upper-cased; qualified names with each part double-quoted only
when it needs to be), and it answers in Snowflake's JSON result format.

What it models, and how far (kept honest in tests/permissions.rs, which checks these formats):
- roles (with Snowflake's system hierarchy: ACCOUNTADMIN > SECURITYADMIN > USERADMIN,
  ACCOUNTADMIN > SYSADMIN; PUBLIC implicit), role-to-role and role-to-user grants, cycles refused;
- users with their properties, passwords (kept as SHA-256 only), DISABLED; a login checks the
  user, its password and that the requested role is granted to it;
- warehouses and integrations; databases created FROM SHARE are marked imported, and
  IMPORTED PRIVILEGES on them shows as USAGE, as Permifrost reads it;
- privilege grants on databases, schemas, tables, views, warehouses and integrations, ON ALL
  (expanded to the objects that exist), ON FUTURE in a database or schema (applied when a table,
  view or schema is created later: schema-level future grants win over database-level ones, as in
  Snowflake), OWNERSHIP; grants on an object go when it is dropped or replaced;
- authorisation, simplified: creating roles and users and granting roles needs USERADMIN (or a
  role above it); granting privileges needs SECURITYADMIN (MANAGE GRANTS) or above.

Started as `python grant_emulator.py -s --host 127.0.0.1 -p PORT`, the same arguments as
`fakesnow -s`, so that the compatibility proxy (tests/snowflake_compat/proxy.py) can start it in
fakesnow's place. A seeded user ADMIN (password from --admin-password) holds ACCOUNTADMIN.

Test control, JSON over HTTP (never exposed by a real server):
  POST /__grants/sql    {"sql": ["...", ...], "role": "ACCOUNTADMIN"}  runs statements as that role
  GET  /__grants/state  the model (passwords as sha256)
  GET  /__grants/log    every statement received over the protocol, in order
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
import uuid

import fakesnow.server as fs_server
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

LOG = logging.getLogger("grant_emulator")

SELECT_TYPE = 0x1000
SHOW_TYPE = 0x4400
USE_TYPE = 0x4300
DDL_TYPE = 0x6000

SYSTEM_ROLES = ["ACCOUNTADMIN", "SECURITYADMIN", "SYSADMIN", "USERADMIN", "PUBLIC"]
# (granted role, grantee role): ACCOUNTADMIN inherits SECURITYADMIN and SYSADMIN, SECURITYADMIN inherits USERADMIN.
SYSTEM_HIERARCHY = [("SECURITYADMIN", "ACCOUNTADMIN"), ("SYSADMIN", "ACCOUNTADMIN"), ("USERADMIN", "SECURITYADMIN")]

# Privileges Snowflake accepts per object kind (the ones the tests and Permifrost use, and more).
PRIVILEGES = {
    "DATABASE": {"USAGE", "MONITOR", "CREATE SCHEMA", "CREATE DATABASE ROLE", "MODIFY", "APPLYBUDGET", "IMPORTED PRIVILEGES"},
    "SCHEMA": {
        "USAGE", "MONITOR", "MODIFY", "CREATE TABLE", "CREATE VIEW", "CREATE STAGE", "CREATE FILE FORMAT",
        "CREATE SEQUENCE", "CREATE FUNCTION", "CREATE PIPE", "CREATE PROCEDURE", "CREATE TASK", "CREATE STREAM",
        "CREATE MATERIALIZED VIEW", "CREATE EXTERNAL TABLE", "CREATE DYNAMIC TABLE", "ADD SEARCH OPTIMIZATION",
    },
    "TABLE": {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "EVOLVE SCHEMA", "REBUILD"},
    "VIEW": {"SELECT", "REFERENCES"},
    "WAREHOUSE": {"USAGE", "OPERATE", "MONITOR", "MODIFY", "APPLYBUDGET"},
    "INTEGRATION": {"USAGE", "USE_ANY_ROLE"},
}
ALL_PRIVILEGES = {kind: privs - {"IMPORTED PRIVILEGES"} for kind, privs in PRIVILEGES.items()}
PLURAL = {"TABLES": "TABLE", "VIEWS": "VIEW", "SCHEMAS": "SCHEMA"}
PLAIN = re.compile(r"^[A-Z_][A-Z0-9_$]*$")


class SqlError(Exception):
    def __init__(self, code: str, state: str, message: str):
        super().__init__(message)
        self.code, self.state, self.message = code, state, message


def not_found(kind: str, name: str) -> SqlError:
    return SqlError("002003", "02000", f"SQL compilation error:\n{kind} '{name}' does not exist or not authorized.")


def now() -> float:
    return time.time()


def ts(t: float) -> str:
    """TIMESTAMP_LTZ as Snowflake's JSON results write it: seconds since the epoch, 9 decimals."""
    whole = int(t)
    return f"{whole}.{int(round((t - whole) * 1e9)) % 1_000_000_000:09d}"


def q(part: str) -> str:
    """One name part as Snowflake prints it in a qualified name: bare when plain, else quoted."""
    return part if PLAIN.match(part) else '"' + part.replace('"', '""') + '"'


def qualified(parts) -> str:
    return ".".join(q(p) for p in parts)


def like(pattern: str | None, name: str) -> bool:
    if pattern is None:
        return True
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.IGNORECASE | re.DOTALL) is not None


# --- SQL tokens and a small parser ------------------------------------------------------------

TOKEN = re.compile(
    r"""(?P<ws>\s+|--[^\n]*|/\*.*?\*/)
      |(?P<quoted>"(?:[^"]|"")*")
      |(?P<string>'(?:[^'\\]|''|\\.)*')
      |(?P<word>[A-Za-z_][A-Za-z0-9_$]*)
      |(?P<number>\d+(?:\.\d+)?)
      |(?P<angle><[A-Za-z]+>)
      |(?P<punct>[.,()=;*])""",
    re.X | re.S,
)


def unescape_string(text: str) -> str:
    body = text[1:-1]
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(nxt, nxt))
            i += 2
        elif c == "'" and i + 1 < len(body) and body[i + 1] == "'":
            out.append("'")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def tokenize(sql: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(sql):
        m = TOKEN.match(sql, pos)
        if not m:
            raise SqlError("001003", "42000", f"SQL compilation error:\nsyntax error line 1 at position {pos} unexpected '{sql[pos]}'.")
        pos = m.end()
        kind = m.lastgroup
        text = m.group()
        if kind == "ws":
            continue
        if kind == "quoted":
            tokens.append(("ident", text[1:-1].replace('""', '"')))
        elif kind == "word":
            tokens.append(("word", text))
        elif kind == "string":
            tokens.append(("string", unescape_string(text)))
        else:
            tokens.append((kind, text))
    while tokens and tokens[-1] == ("punct", ";"):
        tokens.pop()
    return tokens


class Parser:
    def __init__(self, sql: str):
        self.tokens = tokenize(sql)
        self.i = 0

    def peek(self, offset: int = 0):
        j = self.i + offset
        return self.tokens[j] if j < len(self.tokens) else (None, None)

    def is_word(self, word: str, offset: int = 0) -> bool:
        kind, text = self.peek(offset)
        return kind == "word" and text.upper() == word

    def accept(self, *words: str) -> bool:
        if all(self.is_word(w, k) for k, w in enumerate(words)):
            self.i += len(words)
            return True
        return False

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            self.fail(" ".join(words))

    def accept_punct(self, p: str) -> bool:
        if self.peek() == ("punct", p):
            self.i += 1
            return True
        return False

    def fail(self, expected: str):
        kind, text = self.peek()
        found = "end of statement" if kind is None else repr(text)
        raise SqlError("001003", "42000", f"SQL compilation error:\nsyntax error: expected {expected}, found {found}.")

    def done(self) -> bool:
        return self.i >= len(self.tokens)

    def end(self) -> None:
        if not self.done():
            self.fail("end of statement")

    def word(self) -> str:
        kind, text = self.peek()
        if kind != "word":
            self.fail("a keyword")
        self.i += 1
        return text.upper()

    def ident(self) -> str:
        kind, text = self.peek()
        if kind == "word":
            self.i += 1
            return text.upper()
        if kind == "ident":
            self.i += 1
            return text
        if kind == "string":
            # DEFAULT_ROLE = 'loader' and the like: a name in a string, folded as Snowflake does.
            self.i += 1
            return text.upper() if re.match(r"^[A-Za-z_][A-Za-z0-9_$]*$", text) else text
        self.fail("a name")

    def name_parts(self) -> list[str]:
        parts = [self.ident()]
        while self.accept_punct("."):
            parts.append(self.ident())
        return parts

    def string(self) -> str:
        kind, text = self.peek()
        if kind != "string":
            self.fail("a string")
        self.i += 1
        return text

    def value(self):
        """A property value: a string, a name, a number, TRUE/FALSE or NULL."""
        kind, text = self.peek()
        if kind == "string":
            self.i += 1
            return text
        if kind == "number":
            self.i += 1
            return text
        if kind == "word" and text.upper() in ("TRUE", "FALSE"):
            self.i += 1
            return text.upper() == "TRUE"
        if kind == "word" and text.upper() == "NULL":
            self.i += 1
            return None
        return self.ident()

    def properties(self) -> dict:
        props = {}
        while not self.done():
            kind, text = self.peek()
            if kind != "word":
                break
            key = text.upper()
            if self.peek(1) != ("punct", "="):
                break
            self.i += 2
            props[key] = self.value()
            self.accept_punct(",")
        return props

    def privileges(self) -> list[str]:
        """`USAGE, MONITOR, CREATE SCHEMA` or `ALL [PRIVILEGES]` or `OWNERSHIP`, up to ON."""
        privs, current = [], []
        while not self.is_word("ON"):
            kind, text = self.peek()
            if kind is None:
                self.fail("ON")
            self.i += 1
            if (kind, text) == ("punct", ","):
                privs.append(" ".join(current))
                current = []
            else:
                current.append(text.upper())
        if current:
            privs.append(" ".join(current))
        return [p for p in privs if p]


# --- the account model -------------------------------------------------------------------------


class Grants(dict):
    """Grants keyed by (privilege, kind, parts, grantee), indexed by grantee: SHOW GRANTS TO ROLE
    and SHOW FUTURE GRANTS TO ROLE ask per grantee, hundreds of times in a plan."""

    def __init__(self):
        super().__init__()
        self.by_grantee: dict[str, set] = {}

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self.by_grantee.setdefault(key[3], set()).add(key)

    def __delitem__(self, key):
        super().__delitem__(key)
        self.by_grantee.get(key[3], set()).discard(key)

    def setdefault(self, key, value):
        if key not in self:
            self[key] = value
        return self[key]

    def pop(self, key, *default):
        if key in self:
            value = self[key]
            del self[key]
            return value
        if default:
            return default[0]
        raise KeyError(key)

    def of(self, grantee: str) -> list:
        return [(key, self[key]) for key in sorted(self.by_grantee.get(grantee, ()))]


class Owners(dict):
    """Object owners keyed by (kind, parts), indexed by owner (SHOW GRANTS TO ROLE lists what the
    role owns)."""

    def __init__(self):
        super().__init__()
        self.by_owner: dict[str, set] = {}

    def __setitem__(self, key, owner):
        if key in self:
            self.by_owner.get(self[key], set()).discard(key)
        super().__setitem__(key, owner)
        self.by_owner.setdefault(owner, set()).add(key)

    def __delitem__(self, key):
        self.by_owner.get(self[key], set()).discard(key)
        super().__delitem__(key)

    def of(self, owner: str) -> list:
        return sorted((key, owner) for key in self.by_owner.get(owner, ()))


class Session:
    def __init__(self, user: str | None, role: str, warehouse: str | None = None, conn=None):
        self.user = user
        self.role = role
        self.warehouse = warehouse
        self.conn = conn  # fakesnow's connection of this session (database and schema context)


class Account:
    def __init__(self, admin_password: str):
        self.lock = threading.RLock()
        t = now()
        self.roles = {r: {"created_on": t, "owner": "", "comment": None} for r in SYSTEM_ROLES}
        self.parents: dict[tuple[str, str], dict] = {
            (granted, grantee): {"created_on": t, "granted_by": ""} for granted, grantee in SYSTEM_HIERARCHY
        }  # (granted role, grantee role)
        self.user_roles: dict[tuple[str, str], dict] = {}  # (role, user)
        self.user_grants: dict[tuple, dict] = {}  # (privilege, kind, parts, user): granted to a user directly
        self.users: dict[str, dict] = {}
        self.warehouses = {"COMPUTE_WH": {"created_on": t, "size": "X-Small", "owner": "ACCOUNTADMIN", "comment": None}}
        self.integrations: dict[str, dict] = {}
        self.grants = Grants()  # (privilege, kind, parts, grantee) -> meta
        self.future = Grants()  # (privilege, kind, container parts, grantee) -> meta
        self.owners = Owners()  # (kind, parts) -> role
        self.imported: dict[str, str] = {}  # database -> share it came from
        self.owners[("WAREHOUSE", ("COMPUTE_WH",))] = "ACCOUNTADMIN"
        self.log: list[dict] = []
        self.create_user("ADMIN", {"PASSWORD": admin_password, "DEFAULT_ROLE": "ACCOUNTADMIN"}, "ACCOUNTADMIN")
        self.user_roles[("ACCOUNTADMIN", "ADMIN")] = {"created_on": t, "granted_by": ""}
        # fakesnow's objects, read through one internal connection
        self.objects_lock = threading.Lock()
        self.objects_conn = fs_server.shared_fs.connect(None, None)
        self.cache: dict[str, list[dict]] = {}

    # roles

    def closure(self, role: str) -> set[str]:
        """The role and every role it inherits (PUBLIC included)."""
        seen, todo = {role, "PUBLIC"}, [role]
        while todo:
            r = todo.pop()
            for (granted, grantee) in self.parents:
                if grantee == r and granted not in seen:
                    seen.add(granted)
                    todo.append(granted)
        return seen

    def user_closure(self, user: str) -> set[str]:
        roles = {"PUBLIC"}
        for (role, u) in self.user_roles:
            if u == user:
                roles |= self.closure(role)
        return roles

    def require(self, session: Session, role: str, what: str) -> None:
        if role not in self.closure(session.role):
            raise SqlError("003001", "42501", f"SQL access control error:\nInsufficient privileges to operate on {what}.")

    def role(self, name: str) -> None:
        if name not in self.roles:
            raise not_found("Role", name)

    # users

    def create_user(self, name: str, props: dict, owner: str) -> None:
        user = {
            "created_on": now(), "login_name": name, "display_name": name, "first_name": None, "last_name": None,
            "middle_name": None, "email": None, "comment": None, "disabled": False, "must_change_password": False,
            "default_warehouse": None, "default_namespace": None, "default_role": None, "type": None,
            "password_sha256": None, "owner": owner, "rsa_public_key": None, "rsa_public_key_2": None,
        }
        self.check_service_user(props, None)
        self.users[name] = user
        self.set_user(name, props)

    # What a TYPE = SERVICE user may not have (docs: "Types of users"; the message is the
    # emulator's own).
    NOT_FOR_SERVICE = ("PASSWORD", "MUST_CHANGE_PASSWORD", "FIRST_NAME", "MIDDLE_NAME", "LAST_NAME")

    def check_service_user(self, props: dict, current: dict | None) -> None:
        upper = {k.upper(): v for k, v in props.items()}
        kind = str(upper.get("TYPE", (current or {}).get("type")) or "").upper()
        if kind == "LEGACY_SERVICE" and current is None:
            raise SqlError("001008", "22023", "SQL compilation error:\nUsers of type LEGACY_SERVICE can no longer be created.")
        if kind != "SERVICE":
            return
        for key in self.NOT_FOR_SERVICE:
            if upper.get(key) is not None:
                raise SqlError("001008", "22023", f"SQL compilation error:\nProperty '{key}' is not supported for users of type SERVICE.")

    def set_user(self, name: str, props: dict) -> None:
        user = self.users[name]
        self.check_service_user(props, user)
        for key, value in props.items():
            key = key.upper()
            if key == "PASSWORD":
                user["password_sha256"] = None if value is None else hashlib.sha256(str(value).encode()).hexdigest()
            elif key in ("RSA_PUBLIC_KEY", "RSA_PUBLIC_KEY_2"):
                user[key.lower()] = None if value is None else public_key_body(str(value))
            elif key in ("DISABLED", "MUST_CHANGE_PASSWORD"):
                user[key.lower()] = value is True or str(value).upper() == "TRUE"
            elif key == "TYPE":
                user["type"] = None if value is None else str(value).upper()
            elif key.lower() in user:
                user[key.lower()] = value
            else:
                raise SqlError("001008", "22023", f"SQL compilation error:\ninvalid property '{key}' for 'USER'.")

    # objects held by fakesnow

    def fs_rows(self, sql: str) -> list[dict]:
        """fakesnow's answer to a SHOW, remembered until a statement may have changed objects
        (fakesnow translates every statement with sqlglot: tens of milliseconds each)."""
        with self.objects_lock:
            if sql not in self.cache:
                cur = self.objects_conn.cursor()
                cur.execute(sql)
                columns = [d[0] for d in cur.description]
                self.cache[sql] = [dict(zip(columns, row)) for row in cur.fetchall()]
            return self.cache[sql]

    def objects_changed(self, sql: str) -> None:
        if not re.match(r"^\s*(SELECT|SHOW|DESC|DESCRIBE|USE|WITH)\b", sql, re.IGNORECASE):
            with self.objects_lock:
                self.cache.clear()

    def databases(self) -> list[str]:
        return [r["name"] for r in self.fs_rows("SHOW DATABASES")]

    def schemas(self, database: str) -> list[str]:
        return [
            "INFORMATION_SCHEMA" if r["name"].lower() == "information_schema" else r["name"]
            for r in self.fs_rows(f"SHOW TERSE SCHEMAS IN DATABASE {qualified([database])}")
        ]

    def tables(self, database: str, kind: str) -> list[tuple[str, str]]:
        what = "TABLES" if kind == "TABLE" else "VIEWS"
        return [(r["schema_name"], r["name"]) for r in self.fs_rows(f"SHOW TERSE {what} IN DATABASE {qualified([database])}")]

    def exists(self, kind: str, parts: tuple) -> bool:
        if kind == "DATABASE":
            return parts[0] in self.databases()
        if kind == "SCHEMA":
            return parts[0] in self.databases() and parts[1] in self.schemas(parts[0])
        if kind in ("TABLE", "VIEW"):
            return parts[0] in self.databases() and (parts[1], parts[2]) in self.tables(parts[0], kind)
        if kind == "WAREHOUSE":
            return parts[0] in self.warehouses
        if kind == "INTEGRATION":
            return parts[0] in self.integrations
        if kind == "ROLE":
            return parts[0] in self.roles
        if kind == "USER":
            return parts[0] in self.users
        return False

    def owner(self, kind: str, parts: tuple) -> str:
        default = {"WAREHOUSE": "ACCOUNTADMIN", "ROLE": "", "USER": "ACCOUNTADMIN"}.get(kind, "SYSADMIN")
        return self.owners.get((kind, tuple(parts)), default)

    def forget(self, kind: str, parts: tuple) -> None:
        """An object (and everything in it) is gone: so are the grants on it."""
        parts = tuple(parts)

        def inside(k, p):
            p = tuple(p)
            if k == kind and p == parts:
                return True
            if kind == "DATABASE" and k in ("SCHEMA", "TABLE", "VIEW"):
                return p[0] == parts[0]
            if kind == "SCHEMA" and k in ("TABLE", "VIEW"):
                return p[:2] == parts
            return False

        for key in [k for k in self.grants if inside(k[1], k[2])]:
            del self.grants[key]
        if kind in ("DATABASE", "SCHEMA"):
            for key in [k for k in self.future if tuple(k[2][: len(parts)]) == parts]:
                del self.future[key]
        for key in [k for k in self.owners if inside(k[0], k[1])]:
            del self.owners[key]

    def created(self, kind: str, parts: tuple, session: Session) -> None:
        """A table, view or schema was created: its owner, and the future grants that apply."""
        self.forget(kind, parts)
        self.owners[(kind, parts)] = session.role
        if kind not in ("SCHEMA", "TABLE", "VIEW"):
            return
        container_schema = parts[:2] if kind != "SCHEMA" else None
        schema_level = [k for k in self.future if k[1] == kind and container_schema and tuple(k[2]) == tuple(container_schema)]
        # Snowflake: schema-level future grants of a kind take precedence over database-level ones.
        chosen = schema_level or [k for k in self.future if k[1] == kind and tuple(k[2]) == (parts[0],)]
        for privilege, _, _, grantee in chosen:
            self.grants[(privilege, kind, parts, grantee)] = {"created_on": now(), "grant_option": False, "granted_by": "SECURITYADMIN"}


# --- statements --------------------------------------------------------------------------------

STATUS = [("status", "text")]


def ok_status(message: str = "Statement executed successfully."):
    return STATUS, [[message]], DDL_TYPE


class Executor:
    """Runs one statement for a session: returns (columns, rows, statement type), or None to let
    fakesnow run it."""

    def __init__(self, account: Account):
        self.a = account

    def run(self, sql: str, session: Session):
        try:
            p = Parser(sql)
        except SqlError:
            return None
        if p.done():
            return None
        first = p.peek()[1].upper() if p.peek()[0] == "word" else ""
        with self.a.lock:
            if first == "SHOW":
                return self.show(p, session)
            if first in ("DESC", "DESCRIBE"):
                return self.describe(p, session)
            if first == "GRANT":
                return self.grant(p, session, revoke=False)
            if first == "REVOKE":
                return self.grant(p, session, revoke=True)
            if first == "CREATE":
                return self.create(p, session)
            if first == "DROP":
                return self.drop(p, session)
            if first == "ALTER":
                return self.alter(p, session)
            if first == "USE":
                return self.use(p, session)
            if first == "SELECT":
                return self.select(p, session)
        return None

    # context

    def current_db(self, session: Session) -> str:
        db = session.conn.database if session.conn else None
        if not db:
            raise SqlError("090105", "22000", "Cannot perform operation. This session does not have a current database. Call 'USE DATABASE', or use a qualified name.")
        return db

    def current_schema(self, session: Session) -> str:
        schema = getattr(session.conn, "schema", None) if session.conn else None
        if not schema:
            raise SqlError("090106", "22000", "Cannot perform operation. This session does not have a current schema. Call 'USE SCHEMA', or use a qualified name.")
        return schema

    def object_parts(self, kind: str, parts: list[str], session: Session) -> tuple:
        want = {"DATABASE": 1, "SCHEMA": 2, "TABLE": 3, "VIEW": 3}.get(kind, 1)
        if len(parts) > want:
            raise SqlError("001003", "42000", f"SQL compilation error:\ninvalid name '{'.'.join(parts)}' for {kind}.")
        if want - len(parts) >= 1 and kind in ("SCHEMA", "TABLE", "VIEW"):
            if want - len(parts) == 2:
                parts = [self.current_db(session), self.current_schema(session)] + parts
            else:
                parts = [self.current_db(session)] + parts
        return tuple(parts)

    def select(self, p: Parser, session: Session):
        p.expect("SELECT")
        columns, row = [], []
        while True:
            if p.peek()[0] != "word":
                return None
            fn = p.word()
            if fn not in ("CURRENT_USER", "CURRENT_ROLE", "CURRENT_WAREHOUSE", "CURRENT_SECONDARY_ROLES"):
                return None
            if not (p.accept_punct("(") and p.accept_punct(")")):
                return None
            alias = f"{fn}()"
            if p.accept("AS"):
                if p.peek()[0] not in ("word", "ident"):
                    return None
                alias = p.ident()
            columns.append((alias, "text"))
            row.append({"CURRENT_USER": session.user, "CURRENT_ROLE": session.role,
                        "CURRENT_WAREHOUSE": session.warehouse, "CURRENT_SECONDARY_ROLES": '{"roles":"","value":""}'}[fn])
            if not p.accept_punct(","):
                break
        if not p.done():
            return None
        return columns, [row], SELECT_TYPE

    def use(self, p: Parser, session: Session):
        p.expect("USE")
        if p.accept("ROLE"):
            role = p.ident()
            p.end()
            self.a.role(role)
            if session.user is not None and role not in self.a.user_closure(session.user):
                raise SqlError("003013", "42501", f"SQL access control error:\nRequested role '{role}' is not assigned to the executing user. Specify another role to activate.")
            session.role = role
            return ok_status()
        if p.accept("WAREHOUSE"):
            wh = p.ident()
            p.end()
            if wh not in self.a.warehouses:
                raise SqlError("002043", "02000", f"SQL compilation error:\nObject does not exist, or operation cannot be performed.")
            session.warehouse = wh
            return ok_status()
        if p.accept("SECONDARY", "ROLES"):
            return ok_status()
        return None

    # CREATE / DROP / ALTER

    def create(self, p: Parser, session: Session):
        p.expect("CREATE")
        replace = p.accept("OR", "REPLACE")
        for modifier in ("TRANSIENT", "TEMPORARY", "TEMP", "LOCAL", "GLOBAL", "VOLATILE", "SECURE", "RECURSIVE", "MATERIALIZED"):
            p.accept(modifier)
        if p.accept("ROLE"):
            if_not_exists = p.accept("IF", "NOT", "EXISTS")
            name = p.ident()
            props = p.properties()
            p.end()
            self.a.require(session, "USERADMIN", f"role '{name}'")
            if name in self.a.roles and not replace:
                if if_not_exists:
                    return ok_status(f"{name} already exists, statement succeeded.")
                raise SqlError("002002", "42710", f"SQL compilation error:\nObject '{name}' already exists.")
            self.a.roles[name] = {"created_on": now(), "owner": session.role, "comment": props.get("COMMENT")}
            self.a.owners[("ROLE", (name,))] = session.role
            return ok_status(f"Role {name} successfully created.")
        if p.accept("USER"):
            if_not_exists = p.accept("IF", "NOT", "EXISTS")
            name = p.ident()
            props = p.properties()
            p.end()
            self.a.require(session, "USERADMIN", f"user '{name}'")
            if name in self.a.users and not replace:
                if if_not_exists:
                    return ok_status(f"{name} already exists, statement succeeded.")
                raise SqlError("002002", "42710", f"SQL compilation error:\nObject '{name}' already exists.")
            self.a.create_user(name, props, session.role)
            return ok_status(f"User {name} successfully created.")
        if p.accept("WAREHOUSE"):
            if_not_exists = p.accept("IF", "NOT", "EXISTS")
            name = p.ident()
            p.accept("WITH")
            props = p.properties()
            p.end()
            self.a.require(session, "SYSADMIN", f"warehouse '{name}'")
            if name in self.a.warehouses and not replace:
                if if_not_exists:
                    return ok_status(f"{name} already exists, statement succeeded.")
                raise SqlError("002002", "42710", f"SQL compilation error:\nObject '{name}' already exists.")
            size = str(props.get("WAREHOUSE_SIZE") or "X-Small")
            self.a.warehouses[name] = {"created_on": now(), "size": size, "owner": session.role, "comment": props.get("COMMENT")}
            self.a.owners[("WAREHOUSE", (name,))] = session.role
            return ok_status(f"Warehouse {name} successfully created.")
        if p.is_word("INTEGRATION") or (p.peek()[0] == "word" and p.is_word("INTEGRATION", 1)):
            category = "STORAGE" if p.is_word("INTEGRATION") else p.word()
            p.expect("INTEGRATION")
            p.accept("IF", "NOT", "EXISTS")
            name = p.ident()
            props = p.properties()
            self.a.require(session, "ACCOUNTADMIN", f"integration '{name}'")
            self.a.integrations[name] = {"created_on": now(), "category": category, "type": str(props.get("TYPE") or "EXTERNAL_STAGE"), "comment": props.get("COMMENT")}
            return ok_status(f"Integration {name} successfully created.")
        if p.accept("DATABASE"):
            p.accept("IF", "NOT", "EXISTS")
            name = p.ident()
            if p.accept("FROM", "SHARE"):
                share = ".".join(p.name_parts())
                p.end()
                return ("share", name, share)
            return ("created", "DATABASE", (name,))
        if p.accept("SCHEMA"):
            p.accept("IF", "NOT", "EXISTS")
            parts = self.object_parts("SCHEMA", p.name_parts(), session)
            return ("created", "SCHEMA", parts)
        for kind in ("TABLE", "VIEW"):
            if p.accept(kind):
                p.accept("IF", "NOT", "EXISTS")
                parts = self.object_parts(kind, p.name_parts(), session)
                return ("created", kind, parts)
        return None

    def drop(self, p: Parser, session: Session):
        p.expect("DROP")
        for kind, table in (("ROLE", self.a.roles), ("USER", self.a.users), ("WAREHOUSE", self.a.warehouses), ("INTEGRATION", self.a.integrations)):
            if p.accept(kind):
                if_exists = p.accept("IF", "EXISTS")
                name = p.ident()
                if kind in ("ROLE", "USER"):
                    self.a.require(session, "USERADMIN", f"{kind.lower()} '{name}'")
                if name not in table:
                    if if_exists:
                        return ok_status("Drop statement executed successfully (object already dropped).")
                    raise not_found(kind.capitalize(), name)
                if kind == "ROLE" and name in SYSTEM_ROLES:
                    raise SqlError("003012", "42501", f"SQL access control error:\nCannot drop system role {name}.")
                del table[name]
                if kind == "ROLE":
                    for key in [k for k in self.a.parents if name in k]:
                        del self.a.parents[key]
                    for key in [k for k in self.a.user_roles if k[0] == name]:
                        del self.a.user_roles[key]
                    for table_ in (self.a.grants, self.a.future):
                        for key in [k for k in table_ if k[3] == name]:
                            del table_[key]
                    self.a.forget("ROLE", (name,))
                elif kind == "USER":
                    for key in [k for k in self.a.user_roles if k[1] == name]:
                        del self.a.user_roles[key]
                else:
                    self.a.forget(kind, (name,))
                return ok_status(f"{name} successfully dropped.")
        for kind in ("DATABASE", "SCHEMA", "TABLE", "VIEW"):
            if p.accept(kind):
                p.accept("IF", "EXISTS")
                parts = self.object_parts(kind, p.name_parts(), session)
                return ("dropped", kind, parts)
        return None

    def describe(self, p: Parser, session: Session):
        """DESC USER: property, value, default, description; the key fingerprints as
        RSA_PUBLIC_KEY_FP / RSA_PUBLIC_KEY_2_FP (SHA256:<base64>), unset ones as null."""
        p.accept("DESC") or p.accept("DESCRIBE")
        if not p.accept("USER"):
            return None
        name = p.ident()
        p.end()
        if name not in self.a.users:
            raise not_found("User", name)
        u = self.a.users[name]
        text = lambda v: "null" if v is None else str(v)  # noqa: E731
        rows = [
            ["NAME", name, "null", "Name"],
            # Bundle 2025_05 (BCR-2067): an unset TYPE reads back as PERSON.
            ["TYPE", text(u["type"] or "PERSON"), "null", "Type of the user"],
            ["DISPLAY_NAME", text(u["display_name"]), "null", "Display name of the associated object"],
            ["EMAIL", text(u["email"]), "null", "Email address of the user"],
            ["DISABLED", "true" if u["disabled"] else "false", "false", "Whether the user is disabled"],
            ["RSA_PUBLIC_KEY", text(u["rsa_public_key"]), "null", "RSA public key of the user"],
            ["RSA_PUBLIC_KEY_FP", text(key_fingerprint(u["rsa_public_key"])), "null", "Fingerprint of user's RSA public key."],
            ["RSA_PUBLIC_KEY_2", text(u["rsa_public_key_2"]), "null", "Second RSA public key of the user"],
            ["RSA_PUBLIC_KEY_2_FP", text(key_fingerprint(u["rsa_public_key_2"])), "null", "Fingerprint of user's second RSA public key."],
        ]
        columns = [("property", "text"), ("value", "text"), ("default", "text"), ("description", "text")]
        return columns, rows, SHOW_TYPE

    def alter(self, p: Parser, session: Session):
        p.expect("ALTER")
        if not p.accept("USER"):
            return None
        p.accept("IF", "EXISTS")
        name = p.ident()
        self.a.require(session, "USERADMIN", f"user '{name}'")
        if name not in self.a.users:
            raise not_found("User", name)
        if p.accept("SET"):
            props = p.properties()
            p.end()
            if not props:
                p.fail("a property")
            self.a.set_user(name, props)
        elif p.accept("UNSET"):
            keys = [p.word()]
            while p.accept_punct(","):
                keys.append(p.word())
            p.end()
            self.a.set_user(name, {k: None for k in keys})
        elif p.accept("RENAME", "TO"):
            new = p.ident()
            p.end()
            self.a.users[new] = self.a.users.pop(name)
            for (role, user) in list(self.a.user_roles):
                if user == name:
                    self.a.user_roles[(role, new)] = self.a.user_roles.pop((role, user))
        else:
            p.fail("SET, UNSET or RENAME TO")
        return ok_status()

    # GRANT / REVOKE

    def grant(self, p: Parser, session: Session, revoke: bool):
        p.expect("REVOKE" if revoke else "GRANT")
        grant_option_only = revoke and p.accept("GRANT", "OPTION", "FOR")
        if p.accept("ROLE"):
            role = p.ident()
            p.expect("FROM" if revoke else "TO")
            to_kind = p.word()
            grantee = p.ident()
            p.end()
            self.a.require(session, "USERADMIN", f"role '{role}'")
            self.a.role(role)
            if to_kind == "ROLE":
                self.a.role(grantee)
                key = (role, grantee)
                if revoke:
                    self.a.parents.pop(key, None)
                else:
                    if grantee in self.a.closure(role):
                        raise SqlError("003013", "42501", f"SQL access control error:\nGranting role '{role}' to role '{grantee}' would create a cycle.")
                    self.a.parents.setdefault(key, {"created_on": now(), "granted_by": session.role})
            elif to_kind == "USER":
                if grantee not in self.a.users:
                    raise not_found("User", grantee)
                key = (role, grantee)
                if revoke:
                    self.a.user_roles.pop(key, None)
                else:
                    self.a.user_roles.setdefault(key, {"created_on": now(), "granted_by": session.role})
            else:
                p.fail("ROLE or USER")
            return ok_status()

        privileges = p.privileges()
        p.expect("ON")
        if p.accept("ALL") or p.is_word("FUTURE"):
            future = p.accept("FUTURE")
            plural = p.word()
            kind = PLURAL.get(plural)
            if kind is None:
                p.fail("TABLES, VIEWS or SCHEMAS")
            p.expect("IN")
            container_kind = p.word()
            if container_kind not in ("DATABASE", "SCHEMA"):
                p.fail("DATABASE or SCHEMA")
            container = self.object_parts(container_kind, p.name_parts(), session)
            grantee = self.grantee(p, revoke)
            self.check_grant(session, privileges, kind, grantee)
            if not self.a.exists(container_kind, container):
                raise not_found(container_kind.capitalize(), qualified(container))
            privileges = self.expand(privileges, kind)
            if future:
                for privilege in privileges:
                    key = (privilege, kind, container, grantee)
                    if revoke:
                        self.a.future.pop(key, None)
                    else:
                        self.a.future.setdefault(key, {"created_on": now(), "grant_option": False, "granted_by": session.role})
                return ok_status()
            objects = self.objects_in(kind, container)
            for parts in objects:
                self.apply(privileges, kind, parts, grantee, session, revoke, grant_option_only)
            return ok_status()

        kind = p.word()
        if kind == "TABLE" and p.accept("FUNCTION"):
            return None
        parts = self.object_parts(kind, p.name_parts(), session)
        if p.accept("FROM" if revoke else "TO", "USER"):
            return self.privilege_to_user(p, session, privileges, kind, parts, revoke)
        grantee = self.grantee(p, revoke)
        with_option = p.accept("WITH", "GRANT", "OPTION")
        copy = p.accept("COPY", "CURRENT", "GRANTS") or p.accept("REVOKE", "CURRENT", "GRANTS")
        p.accept("CASCADE") or p.accept("RESTRICT")
        del copy
        p.end()
        if kind not in PRIVILEGES:
            raise SqlError("001003", "42000", f"SQL compilation error:\nunsupported object kind {kind} in this emulator.")
        self.check_grant(session, privileges, kind, grantee)
        if not self.a.exists(kind, parts):
            raise not_found(kind.capitalize(), qualified(parts))
        if privileges == ["OWNERSHIP"]:
            if revoke:
                raise SqlError("003111", "42501", "SQL access control error:\nOwnership cannot be revoked; transfer it instead.")
            self.a.owners[(kind, parts)] = grantee
            return ok_status()
        if "IMPORTED PRIVILEGES" in privileges:
            if kind != "DATABASE" or parts[0] not in self.a.imported:
                raise SqlError("003011", "42501", "SQL access control error:\nIMPORTED PRIVILEGES can only be granted on a database created from a share.")
            # Shown as USAGE by SHOW GRANTS (Permifrost reads it so).
            privileges = ["USAGE"]
        elif kind == "DATABASE" and parts[0] in self.a.imported:
            raise SqlError("003004", "42501", "SQL access control error:\nGranting individual privileges on imported databases is not allowed. Use 'GRANT IMPORTED PRIVILEGES' instead.")
        privileges = self.expand(privileges, kind)
        self.apply(privileges, kind, parts, grantee, session, revoke, grant_option_only, with_option)
        return ok_status()

    def privilege_to_user(self, p: Parser, session: Session, privileges: list[str], kind: str, parts, revoke: bool):
        """GRANT <privilege> ON <object> TO USER <user> (user-based access control)."""
        user = p.ident()
        p.end()
        self.a.require(session, "SECURITYADMIN", f"grants to user '{user}'")
        if user not in self.a.users:
            raise not_found("User", user)
        if not self.a.exists(kind, parts):
            raise not_found(kind.capitalize(), qualified(parts))
        for privilege in self.expand(privileges, kind):
            key = (privilege, kind, tuple(parts), user)
            if revoke:
                self.a.user_grants.pop(key, None)
            else:
                self.a.user_grants.setdefault(key, {"created_on": now(), "granted_by": session.role})
        return ok_status()

    def grantee(self, p: Parser, revoke: bool) -> str:
        p.expect("FROM" if revoke else "TO")
        if p.accept("SHARE"):
            p.fail("ROLE (shares are not emulated)")
        p.accept("ROLE")
        return p.ident()

    def check_grant(self, session: Session, privileges: list[str], kind: str, grantee: str) -> None:
        self.a.require(session, "SECURITYADMIN", f"grants to role '{grantee}'")
        self.a.role(grantee)
        allowed = PRIVILEGES.get(kind, set()) | {"ALL", "ALL PRIVILEGES", "OWNERSHIP"}
        for privilege in privileges:
            if privilege not in allowed:
                raise SqlError("003008", "42501", f"SQL compilation error:\nInvalid privilege {privilege} on {kind}.")

    def expand(self, privileges: list[str], kind: str) -> list[str]:
        if any(pr in ("ALL", "ALL PRIVILEGES") for pr in privileges):
            return sorted(ALL_PRIVILEGES[kind])
        return privileges

    def objects_in(self, kind: str, container: tuple) -> list[tuple]:
        db = container[0]
        if kind == "SCHEMA":
            return [(db, s) for s in self.a.schemas(db) if s != "INFORMATION_SCHEMA"]
        return [
            (db, s, n) for (s, n) in self.a.tables(db, kind)
            if (len(container) == 1 or s == container[1]) and s.lower() != "information_schema"
        ]

    def apply(self, privileges, kind, parts, grantee, session, revoke, grant_option_only=False, with_option=False):
        for privilege in privileges:
            key = (privilege, kind, tuple(parts), grantee)
            if revoke:
                if grant_option_only:
                    if key in self.a.grants:
                        self.a.grants[key]["grant_option"] = False
                else:
                    self.a.grants.pop(key, None)
            else:
                meta = self.a.grants.setdefault(key, {"created_on": now(), "grant_option": False, "granted_by": session.role})
                meta["grant_option"] = meta["grant_option"] or with_option

    # SHOW

    def show(self, p: Parser, session: Session):
        p.expect("SHOW")
        terse = p.accept("TERSE")
        if p.accept("FUTURE", "GRANTS"):
            return self.show_future(p, session)
        if p.accept("GRANTS"):
            return self.show_grants(p, session)
        what = p.word()
        pattern = p.string() if p.accept("LIKE") else None
        scope = None
        if p.accept("IN"):
            if p.accept("ACCOUNT"):
                scope = ("ACCOUNT", ())
            else:
                scope_kind = p.word()
                scope = (scope_kind, self.object_parts(scope_kind, p.name_parts(), session))
        if not p.done():
            return None
        handler = {
            "ROLES": self.show_roles, "USERS": self.show_users, "WAREHOUSES": self.show_warehouses,
            "INTEGRATIONS": self.show_integrations, "DATABASES": self.show_databases,
            "SCHEMAS": self.show_schemas, "TABLES": self.show_tables, "VIEWS": self.show_views,
        }.get(what)
        if handler is None:
            return None
        if what in ("SCHEMAS", "TABLES", "VIEWS"):
            return handler(session, pattern, scope, terse)
        return handler(session, pattern)

    def show_roles(self, session, pattern):
        columns = [("created_on", "timestamp_ltz"), ("name", "text"), ("is_default", "text"), ("is_current", "text"),
                   ("is_inherited", "text"), ("assigned_to_users", "fixed"), ("granted_to_roles", "fixed"),
                   ("granted_roles", "fixed"), ("owner", "text"), ("comment", "text")]
        inherited = self.a.closure(session.role)
        default = self.a.users.get(session.user or "", {}).get("default_role")
        rows = []
        for name, role in sorted(self.a.roles.items()):
            if not like(pattern, name):
                continue
            rows.append([
                ts(role["created_on"]), name, "Y" if name == default else "N", "Y" if name == session.role else "N",
                "Y" if name in inherited and name != session.role else "N",
                str(sum(1 for (r, _) in self.a.user_roles if r == name)),
                str(sum(1 for (r, _) in self.a.parents if r == name)),
                str(sum(1 for (_, g) in self.a.parents if g == name)),
                role["owner"], role["comment"],
            ])
        return columns, rows, SHOW_TYPE

    def show_users(self, session, pattern):
        columns = [("name", "text"), ("created_on", "timestamp_ltz"), ("login_name", "text"), ("display_name", "text"),
                   ("first_name", "text"), ("last_name", "text"), ("email", "text"), ("mins_to_unlock", "text"),
                   ("days_to_expiry", "text"), ("comment", "text"), ("disabled", "text"), ("must_change_password", "text"),
                   ("snowflake_lock", "text"), ("default_warehouse", "text"), ("default_namespace", "text"),
                   ("default_role", "text"), ("default_secondary_roles", "text"), ("ext_authn_duo", "text"),
                   ("ext_authn_uid", "text"), ("mins_to_bypass_mfa", "text"), ("owner", "text"),
                   ("last_success_login", "timestamp_ltz"), ("expires_at_time", "timestamp_ltz"),
                   ("locked_until_time", "timestamp_ltz"), ("has_password", "text"), ("has_rsa_public_key", "text"),
                   ("type", "text"), ("has_mfa", "text")]
        rows = []
        for name, u in sorted(self.a.users.items()):
            if not like(pattern, name):
                continue
            flag = lambda b: "true" if b else "false"  # noqa: E731
            rows.append([
                name, ts(u["created_on"]), u["login_name"], u["display_name"], u["first_name"], u["last_name"], u["email"],
                None, None, u["comment"], flag(u["disabled"]), flag(u["must_change_password"]), "false",
                u["default_warehouse"], u["default_namespace"], u["default_role"], None, "false", None, None, u["owner"],
                None, None, None, flag(u["password_sha256"] is not None), flag(u["rsa_public_key"] or u["rsa_public_key_2"]),
                u["type"] or "PERSON", "false",
            ])
        return columns, rows, SHOW_TYPE

    def show_warehouses(self, session, pattern):
        columns = [("name", "text"), ("state", "text"), ("type", "text"), ("size", "text"), ("min_cluster_count", "fixed"),
                   ("max_cluster_count", "fixed"), ("started_clusters", "fixed"), ("running", "fixed"), ("queued", "fixed"),
                   ("is_default", "text"), ("is_current", "text"), ("auto_suspend", "fixed"), ("auto_resume", "text"),
                   ("available", "text"), ("provisioning", "text"), ("quiescing", "text"), ("other", "text"),
                   ("created_on", "timestamp_ltz"), ("resumed_on", "timestamp_ltz"), ("updated_on", "timestamp_ltz"),
                   ("owner", "text"), ("comment", "text"), ("resource_monitor", "text")]
        rows = [
            [name, "SUSPENDED", "STANDARD", w["size"], "1", "1", "0", "0", "0", "N", "Y" if name == session.warehouse else "N",
             "600", "true", "", "", "", "", ts(w["created_on"]), ts(w["created_on"]), ts(w["created_on"]), w["owner"], w["comment"], "null"]
            for name, w in sorted(self.a.warehouses.items()) if like(pattern, name)
        ]
        return columns, rows, SHOW_TYPE

    def show_integrations(self, session, pattern):
        columns = [("name", "text"), ("type", "text"), ("category", "text"), ("enabled", "text"), ("comment", "text"), ("created_on", "timestamp_ltz")]
        rows = [[name, i["type"], i["category"], "true", i["comment"], ts(i["created_on"])]
                for name, i in sorted(self.a.integrations.items()) if like(pattern, name)]
        return columns, rows, SHOW_TYPE

    def show_databases(self, session, pattern):
        columns = [("created_on", "timestamp_ltz"), ("name", "text"), ("is_default", "text"), ("is_current", "text"),
                   ("origin", "text"), ("owner", "text"), ("comment", "text"), ("options", "text"),
                   ("retention_time", "text"), ("kind", "text")]
        current = session.conn.database if session.conn else None
        rows = []
        for name in sorted(self.a.databases()):
            if not like(pattern, name):
                continue
            share = self.a.imported.get(name)
            rows.append([ts(0), name, "N", "Y" if name == current else "N", share or "",
                         "" if share else self.a.owner("DATABASE", (name,)), "", "", "1",
                         "IMPORTED DATABASE" if share else "STANDARD"])
        return columns, rows, SHOW_TYPE

    def databases_in(self, scope) -> list[str]:
        if scope is None:
            return sorted(self.a.databases())
        kind, parts = scope
        if kind == "ACCOUNT":
            return sorted(self.a.databases())
        if not self.a.exists("DATABASE", parts[:1]):
            raise not_found("Database", qualified(parts[:1]))
        return [parts[0]]

    def show_schemas(self, session, pattern, scope, terse):
        if scope is not None and scope[0] not in ("DATABASE", "ACCOUNT"):
            return None
        if terse:
            columns = [("created_on", "timestamp_ltz"), ("name", "text"), ("kind", "text"), ("database_name", "text"), ("schema_name", "text")]
        else:
            columns = [("created_on", "timestamp_ltz"), ("name", "text"), ("is_default", "text"), ("is_current", "text"),
                       ("database_name", "text"), ("owner", "text"), ("comment", "text"), ("options", "text"),
                       ("retention_time", "text"), ("owner_role_type", "text")]
        rows = []
        for db in self.databases_in(scope):
            for schema in sorted(self.a.schemas(db)):
                if not like(pattern, schema):
                    continue
                if terse:
                    rows.append([ts(0), schema, None, db, None])
                else:
                    owner = "" if schema == "INFORMATION_SCHEMA" else self.a.owner("SCHEMA", (db, schema))
                    rows.append([ts(0), schema, "N", "N", db, owner, "", "", "1", "ROLE"])
        return columns, rows, SHOW_TYPE

    def tables_in(self, scope, kind):
        out = []
        if scope is not None and scope[0] == "SCHEMA":
            db, schema = scope[1]
            if not self.a.exists("SCHEMA", (db, schema)):
                raise not_found("Schema", qualified((db, schema)))
            return [(db, s, n) for (s, n) in self.a.tables(db, kind) if s == schema]
        for db in self.databases_in(scope):
            out.extend((db, s, n) for (s, n) in self.a.tables(db, kind))
        return out

    def show_tables(self, session, pattern, scope, terse):
        if terse:
            columns = [("created_on", "timestamp_ltz"), ("name", "text"), ("kind", "text"), ("database_name", "text"), ("schema_name", "text")]
        else:
            columns = [("created_on", "timestamp_ltz"), ("name", "text"), ("database_name", "text"), ("schema_name", "text"),
                       ("kind", "text"), ("comment", "text"), ("cluster_by", "text"), ("rows", "fixed"), ("bytes", "fixed"),
                       ("owner", "text"), ("retention_time", "text"), ("automatic_clustering", "text"),
                       ("change_tracking", "text"), ("is_external", "text"), ("owner_role_type", "text")]
        rows = []
        for db, schema, name in sorted(self.tables_in(scope, "TABLE")):
            if not like(pattern, name):
                continue
            if terse:
                rows.append([ts(0), name, "TABLE", db, schema])
            else:
                rows.append([ts(0), name, db, schema, "TABLE", "", "", "0", "0", self.a.owner("TABLE", (db, schema, name)),
                             "1", "OFF", "OFF", "N", "ROLE"])
        return columns, rows, SHOW_TYPE

    def show_views(self, session, pattern, scope, terse):
        if terse:
            columns = [("created_on", "timestamp_ltz"), ("name", "text"), ("kind", "text"), ("database_name", "text"), ("schema_name", "text")]
        else:
            columns = [("created_on", "timestamp_ltz"), ("name", "text"), ("reserved", "text"), ("database_name", "text"),
                       ("schema_name", "text"), ("owner", "text"), ("comment", "text"), ("text", "text"),
                       ("is_secure", "text"), ("is_materialized", "text"), ("owner_role_type", "text"), ("change_tracking", "text")]
        rows = []
        for db, schema, name in sorted(self.tables_in(scope, "VIEW")):
            if not like(pattern, name):
                continue
            if terse:
                rows.append([ts(0), name, "VIEW", db, schema])
            else:
                rows.append([ts(0), name, "", db, schema, self.a.owner("VIEW", (db, schema, name)), "", "", "false", "false", "ROLE", "OFF"])
        return columns, rows, SHOW_TYPE

    GRANT_COLUMNS = [("created_on", "timestamp_ltz"), ("privilege", "text"), ("granted_on", "text"), ("name", "text"),
                     ("granted_to", "text"), ("grantee_name", "text"), ("grant_option", "text"), ("granted_by", "text")]
    MEMBER_COLUMNS = [("created_on", "timestamp_ltz"), ("role", "text"), ("granted_to", "text"), ("grantee_name", "text"), ("granted_by", "text")]
    USER_GRANT_COLUMNS = [("created_on", "timestamp_ltz"), ("privilege", "text"), ("granted_on", "text"), ("name", "text"), ("role", "text"),
                          ("granted_to", "text"), ("grantee_name", "text"), ("grant_option", "text"), ("granted_by", "text")]
    FUTURE_COLUMNS = [("created_on", "timestamp_ltz"), ("privilege", "text"), ("grant_on", "text"), ("name", "text"),
                      ("grant_to", "text"), ("grantee_name", "text"), ("grant_option", "text")]

    def show_grants(self, p: Parser, session: Session):
        if p.accept("TO"):
            if p.accept("USER"):
                user = p.ident()
                p.end()
                if user not in self.a.users:
                    raise not_found("User", user)
                # The columns since behaviour change 2025_01 (bundle 2025_01, ref 1803): role
                # grants as USAGE on ROLE <name>, and privileges granted to the user directly.
                rows = [[ts(m["created_on"]), "USAGE", "ROLE", role, role, "USER", user, "false", m["granted_by"]]
                        for (role, u), m in sorted((k, m) for k, m in self.a.user_roles.items() if k[1] == user)]
                rows += [[ts(m["created_on"]), privilege, kind, self.display_name(kind, parts), None, "USER", user, "false", m["granted_by"]]
                         for (privilege, kind, parts, u), m in sorted((k, m) for k, m in self.a.user_grants.items() if k[3] == user)]
                return self.USER_GRANT_COLUMNS, rows, SHOW_TYPE
            p.accept("ROLE")
            role = p.ident()
            p.end()
            self.a.role(role)
            return self.GRANT_COLUMNS, self.grant_rows(role), SHOW_TYPE
        if p.accept("OF", "ROLE"):
            role = p.ident()
            p.end()
            self.a.role(role)
            rows = [[ts(m["created_on"]), role, "ROLE", grantee, m["granted_by"]]
                    for (granted, grantee), m in sorted((k, m) for k, m in self.a.parents.items() if k[0] == role)]
            rows += [[ts(m["created_on"]), role, "USER", user, m["granted_by"]]
                     for (granted, user), m in sorted((k, m) for k, m in self.a.user_roles.items() if k[0] == role)]
            return self.MEMBER_COLUMNS, rows, SHOW_TYPE
        if p.accept("ON"):
            kind = p.word()
            parts = self.object_parts(kind, p.name_parts(), session)
            p.end()
            if not self.a.exists(kind, parts):
                raise not_found(kind.capitalize(), qualified(parts))
            rows = [r for r in self.grant_rows(None) if r[2] == kind and r[3] == self.display_name(kind, parts)]
            return self.GRANT_COLUMNS, rows, SHOW_TYPE
        return None

    def display_name(self, kind: str, parts) -> str:
        # One-part names print as stored; qualified ones with each part quoted as needed.
        return parts[0] if len(parts) == 1 else qualified(parts)

    def grant_rows(self, grantee: str | None) -> list[list]:
        """SHOW GRANTS rows: to one role, or (None) to every role. Filtered before sorting: a plan
        asks this for hundreds of roles of an account holding thousands of grants."""

        def wanted(role: str) -> bool:
            return grantee is None or role == grantee

        rows = []
        parents = sorted((key, m) for key, m in self.a.parents.items() if wanted(key[1]))
        for (granted, to), m in parents:
            rows.append([ts(m["created_on"]), "USAGE", "ROLE", granted, "ROLE", to, "false", m["granted_by"]])
        grants = self.a.grants.of(grantee) if grantee is not None else sorted(self.a.grants.items())
        for (privilege, kind, parts, to), m in grants:
            rows.append([ts(m["created_on"]), privilege, kind, self.display_name(kind, parts), "ROLE", to,
                         "true" if m["grant_option"] else "false", m["granted_by"]])
        owned = self.a.owners.of(grantee) if grantee is not None else sorted(self.a.owners.items())
        for (kind, parts), owner in owned:
            rows.append([ts(0), "OWNERSHIP", kind, self.display_name(kind, parts), "ROLE", owner, "true", owner])
        return rows

    def show_future(self, p: Parser, session: Session):
        if p.accept("IN"):
            kind = p.word()
            container = self.object_parts(kind, p.name_parts(), session)
            p.end()
            if not self.a.exists(kind, container):
                raise not_found(kind.capitalize(), qualified(container))
            candidates = sorted((k, m) for k, m in self.a.future.items() if tuple(k[2]) == tuple(container))
        elif p.accept("TO", "ROLE"):
            role = p.ident()
            p.end()
            self.a.role(role)
            candidates = self.a.future.of(role)
        else:
            return None
        rows = []
        for (privilege, kind, container, grantee), m in candidates:
            rows.append([ts(m["created_on"]), privilege, kind, qualified(container) + f".<{kind}>", "ROLE", grantee,
                         "true" if m["grant_option"] else "false"])
        return self.FUTURE_COLUMNS, rows, SHOW_TYPE


# --- the HTTP application ------------------------------------------------------------------------

ACCOUNT: Account
EXECUTOR: Executor
SESSIONS: dict[str, Session] = {}


def rowtype(name: str, sf_type: str) -> dict:
    info = {"name": name, "database": "", "schema": "", "table": "", "nullable": True, "type": sf_type,
            "byteLength": None, "length": None, "scale": None, "precision": None, "collation": None}
    if sf_type == "text":
        info["byteLength"] = info["length"] = 16777216
    elif sf_type == "fixed":
        info["precision"], info["scale"] = 38, 0
    elif sf_type.startswith("timestamp"):
        info["precision"], info["scale"] = 0, 9
    return info


def success(columns, rows, type_id, session: Session) -> dict:
    conn = session.conn
    return {
        "data": {
            "parameters": [{"name": "TIMEZONE", "value": "Etc/UTC"}],
            "rowtype": [rowtype(n, t) for n, t in columns],
            "rowset": [[None if v is None else str(v) for v in row] for row in rows],
            "total": len(rows),
            "returned": len(rows),
            "queryId": str(uuid.uuid4()),
            "statementTypeId": type_id,
            "queryResultFormat": "json",
            "finalDatabaseName": conn.database if conn else None,
            "finalSchemaName": getattr(conn, "schema", None) if conn else None,
            "finalRoleName": session.role,
            "finalWarehouseName": session.warehouse,
            "version": 1,
        },
        "code": None,
        "message": None,
        "success": True,
    }


def failure(e: SqlError) -> dict:
    query_id = str(uuid.uuid4())
    return {
        "data": {"errorCode": e.code, "sqlState": e.state, "age": 0, "internalError": False, "queryId": query_id},
        "code": e.code,
        "message": e.message,
        "success": False,
    }


async def body_json(request: Request) -> dict:
    body = await request.body()
    if request.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return json.loads(body)


def public_key_body(text: str) -> str:
    """An RSA public key as ALTER USER takes it (base64 DER, delimiters and spaces dropped)."""
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
    body = re.sub(r"\s+", "", body)
    try:
        load_der_public_key(base64.b64decode(body, validate=True))
    except ValueError:
        raise SqlError("002029", "22023", "Invalid RSA public key.") from None
    return body


def key_fingerprint(body: str | None) -> str | None:
    if body is None:
        return None
    return "SHA256:" + base64.b64encode(hashlib.sha256(base64.b64decode(body)).digest()).decode()


def response_json(response) -> dict:
    return json.loads(bytes(response.body))


async def login_request(request: Request) -> JSONResponse:
    data = (await body_json(request)).get("data", {})
    user = data.get("LOGIN_NAME")
    password = data.get("PASSWORD")
    requested = request.query_params.get("roleName")
    with ACCOUNT.lock:
        if user is None:
            name, role = None, "ACCOUNTADMIN"  # the compatibility proxy's own internal sessions
        else:
            name = user.upper() if re.match(r"^[A-Za-z_][A-Za-z0-9_$]*$", user) else user
            record = ACCOUNT.users.get(name)
            # The compatibility proxy in front has checked a key-pair or token login (user_auth.py).
            by_proxy = str(data.get("AUTHENTICATOR") or "").upper() in ("SNOWFLAKE_JWT", "PROGRAMMATIC_ACCESS_TOKEN")
            # A password login needs the user to have that password (a user without one cannot).
            wrong = record is None or (
                not by_proxy
                and (
                    record["password_sha256"] is None
                    or hashlib.sha256(str(password).encode()).hexdigest() != record["password_sha256"]
                )
            )
            if wrong:
                return JSONResponse(failure(SqlError("390100", "08004", "Incorrect username or password was specified.")))
            if not by_proxy and record is not None and record.get("type") == "SERVICE":
                # SERVICE users log in with a key or a token only.
                return JSONResponse(failure(SqlError("390100", "08004", "Incorrect username or password was specified.")))
            if record["disabled"]:
                return JSONResponse(failure(SqlError("390101", "08004", "User access disabled. Contact your local system administrator.")))
            granted = ACCOUNT.user_closure(name)
            if requested:
                role = requested.upper() if re.match(r"^[A-Za-z_][A-Za-z0-9_$]*$", requested) else requested.strip('"')
                if role not in granted:
                    return JSONResponse(failure(SqlError("390189", "08004", f"Role '{role}' specified in the connect string is not granted to this user. Contact your local system administrator, or attempt to login with another role, e.g. PUBLIC.")))
            else:
                default = record.get("default_role")
                role = default if default in granted else "PUBLIC"
    response = await fs_server.login_request(request)
    reply = response_json(response)
    if reply.get("success"):
        token = reply["data"]["token"]
        warehouse = request.query_params.get("warehouse")
        SESSIONS[token] = Session(name, role, warehouse.upper() if warehouse else None, fs_server.sessions.get(token))
        info = reply["data"].setdefault("sessionInfo", {})
        info["roleName"] = role
        info["warehouseName"] = SESSIONS[token].warehouse
        # What Snowflake's login reply always holds (fakesnow's lacks them).
        reply["data"].setdefault("sessionId", secrets.randbelow(2**53))
        reply["data"].setdefault("masterToken", secrets.token_urlsafe(32))
        reply["data"].setdefault("validityInSeconds", 3600)
        reply["data"].setdefault("masterValidityInSeconds", 14400)
    return JSONResponse(reply)


def token_of(request: Request) -> str:
    auth = request.headers.get("Authorization") or ""
    match = re.match(r'^Snowflake Token="(.*)"$', auth)
    return match.group(1) if match else ""


async def query_request(request: Request) -> JSONResponse:
    body = await body_json(request)
    sql = body.get("sqlText", "")
    token = token_of(request)
    session = SESSIONS.get(token)
    ACCOUNT.log.append({"sql": sql, "user": session.user if session else None, "at": now()})
    if session is None:
        return await fs_server.query_request(request)
    try:
        outcome = EXECUTOR.run(sql, session)
    except SqlError as e:
        return JSONResponse(failure(e))
    if outcome is None or outcome[0] in ("created", "dropped", "share"):
        return await passthrough(request, sql, session, outcome)
    columns, rows, type_id = outcome
    return JSONResponse(success(columns, rows, type_id, session))


async def passthrough(request: Request, sql: str, session: Session, outcome) -> JSONResponse:
    if outcome is not None and outcome[0] == "share":
        _, name, share = outcome
        create = f"CREATE DATABASE {qualified([name])}"
        cur = session.conn.cursor()
        try:
            cur.execute(create)
        except Exception as e:  # noqa: BLE001 - report it the way fakesnow would
            return JSONResponse(failure(SqlError("002002", "42710", str(e))))
        finally:
            ACCOUNT.objects_changed(sql)
        with ACCOUNT.lock:
            ACCOUNT.imported[name] = share
        return JSONResponse(success(*ok_status(f"Database {name} successfully created."), session))
    response = await fs_server.query_request(request)
    reply = response_json(response)
    ACCOUNT.objects_changed(sql)
    if outcome is not None and reply.get("success"):
        event, kind, parts = outcome
        with ACCOUNT.lock:
            if event == "created":
                ACCOUNT.created(kind, tuple(parts), session)
            else:
                ACCOUNT.forget(kind, tuple(parts))
                if kind == "DATABASE":
                    ACCOUNT.imported.pop(parts[0], None)
    return response


async def session_request(request: Request) -> JSONResponse:
    if request.query_params.get("delete"):
        SESSIONS.pop(token_of(request), None)
    return await fs_server.session(request)


# test control


async def control_sql(request: Request) -> JSONResponse:
    body = await body_json(request)
    role = body.get("role", "ACCOUNTADMIN")
    conn = fs_server.shared_fs.connect(None, None)
    session = Session(None, role, None, conn)
    results = []
    for sql in body.get("sql", []):
        try:
            outcome = EXECUTOR.run(sql, session)
            if outcome is None or outcome[0] in ("created", "dropped", "share"):
                if outcome is not None and outcome[0] == "share":
                    conn.cursor().execute(f"CREATE DATABASE {qualified([outcome[1]])}")
                    ACCOUNT.objects_changed(sql)
                    ACCOUNT.imported[outcome[1]] = outcome[2]
                    results.append({"ok": True, "columns": ["status"], "rows": [["created"]]})
                    continue
                cur = conn.cursor()
                try:
                    cur.execute(sql)
                finally:
                    ACCOUNT.objects_changed(sql)
                rows = cur.fetchall() if cur.description else []
                columns = [d[0] for d in cur.description] if cur.description else []
                if outcome is not None:
                    event, kind, parts = outcome
                    with ACCOUNT.lock:
                        if event == "created":
                            ACCOUNT.created(kind, tuple(parts), session)
                        else:
                            ACCOUNT.forget(kind, tuple(parts))
                results.append({"ok": True, "columns": columns, "rows": [[None if v is None else str(v) for v in r] for r in rows]})
            else:
                columns, rows, _ = outcome
                results.append({"ok": True, "columns": [c for c, _ in columns], "rows": [[None if v is None else str(v) for v in r] for r in rows]})
        except SqlError as e:
            results.append({"ok": False, "code": e.code, "message": e.message})
        except Exception as e:  # noqa: BLE001 - a setup statement fakesnow rejects
            ACCOUNT.objects_changed(sql)
            results.append({"ok": False, "code": "fakesnow", "message": str(e)})
    return JSONResponse({"results": results})


async def control_state(request: Request) -> JSONResponse:
    a = ACCOUNT
    with a.lock:
        state = {
            "roles": {name: {"owner": r["owner"]} for name, r in a.roles.items()},
            "role_parents": sorted([granted, grantee] for (granted, grantee) in a.parents),
            "user_roles": sorted([role, user] for (role, user) in a.user_roles),
            "users": {name: {k: v for k, v in u.items() if k != "created_on"} for name, u in a.users.items()},
            "warehouses": sorted(a.warehouses),
            "grants": sorted([pr, kind, list(parts), grantee] for (pr, kind, parts, grantee) in a.grants),
            "future": sorted([pr, kind, list(c), grantee] for (pr, kind, c, grantee) in a.future),
            "owners": sorted([kind, list(parts), owner] for (kind, parts), owner in a.owners.items()),
        }
    return JSONResponse(state)


async def control_log(request: Request) -> JSONResponse:
    return JSONResponse(ACCOUNT.log)


def build_app() -> Starlette:
    routes = [
        Route("/session/v1/login-request", login_request, methods=["POST"]),
        Route("/queries/v1/query-request", query_request, methods=["POST"]),
        Route("/session", session_request, methods=["POST"]),
        Route("/__grants/sql", control_sql, methods=["POST"]),
        Route("/__grants/state", control_state, methods=["GET"]),
        Route("/__grants/log", control_log, methods=["GET"]),
    ]
    # fakesnow's other endpoints (heartbeat, abort, monitoring, uploads) as they are
    taken = {r.path for r in routes}
    routes += [r for r in fs_server.routes if r.path not in taken]
    return Starlette(routes=routes)


def main() -> None:
    global ACCOUNT, EXECUTOR
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-s", "--server", action="store_true", help="accepted for fakesnow compatibility")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--admin-password", default="admin-password", help="password of the seeded ADMIN user")
    args = parser.parse_args()
    ACCOUNT = Account(args.admin_password)
    EXECUTOR = Executor(ACCOUNT)
    import uvicorn

    # Stop with whoever started us (the compatibility proxy, a test, the benchmark).
    parent = os.getppid()

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch_parent, daemon=True).start()

    uvicorn.run(build_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
