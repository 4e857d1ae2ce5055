"""Checks the grant emulator with Snowflake's own Python connector, as check_proxy.py checks the
proxy: SHOW GRANTS TO USER in the columns of behaviour change 2025_01, DESC USER's key
fingerprints, a key-pair login checked against the key the emulator's model holds, and the
refusals of a TYPE = SERVICE user. Run by tests/permissions.rs:

    python check_grants.py <proxy base URL> <ADMIN's password>
"""

from __future__ import annotations

import base64
import hashlib
import sys
from urllib.parse import urlsplit

import snowflake.connector
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

USER_GRANT_COLUMNS = [
    "created_on", "privilege", "granted_on", "name", "role", "granted_to", "grantee_name", "grant_option", "granted_by",
]


def main() -> None:
    base_url, admin_password = sys.argv[1], sys.argv[2]
    url = urlsplit(base_url)
    where = dict(account="testaccount", host=url.hostname, port=url.port, protocol=url.scheme)
    admin = snowflake.connector.connect(**where, user="ADMIN", password=admin_password, role="ACCOUNTADMIN")
    cur = admin.cursor()
    for sql in (
        "CREATE ROLE CHECKER_ROLE",
        "CREATE USER CHECKER PASSWORD = 'Checker-Pw-1234' DEFAULT_ROLE = CHECKER_ROLE",
        "GRANT ROLE CHECKER_ROLE TO USER CHECKER",
        "GRANT SELECT ON TABLE RAW.STITCH.ORDERS TO USER CHECKER",
    ):
        cur.execute(sql)

    cur.execute("SHOW GRANTS TO USER CHECKER")
    assert [c[0] for c in cur.description] == USER_GRANT_COLUMNS, cur.description
    rows = [r[1:7] for r in cur.fetchall()]
    assert ("USAGE", "ROLE", "CHECKER_ROLE", "CHECKER_ROLE", "USER", "CHECKER") in rows, rows
    assert ("SELECT", "TABLE", "RAW.STITCH.ORDERS", None, "USER", "CHECKER") in rows, rows

    key, other = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    cur.execute(f"ALTER USER CHECKER SET RSA_PUBLIC_KEY = '{base64.b64encode(public).decode()}'")
    cur.execute("DESC USER CHECKER")
    properties = {r[0]: r[1] for r in cur.fetchall()}
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(public).digest()).decode()
    assert properties["RSA_PUBLIC_KEY_FP"] == fingerprint, properties
    assert properties["RSA_PUBLIC_KEY_2_FP"] == "null", properties

    def der(k) -> bytes:
        return k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    with snowflake.connector.connect(**where, user="CHECKER", private_key=der(key)) as conn:
        assert conn.cursor().execute("SELECT CURRENT_ROLE()").fetchone() == ("CHECKER_ROLE",)
    try:
        snowflake.connector.connect(**where, user="CHECKER", private_key=der(other)).close()
    except snowflake.connector.errors.DatabaseError as error:
        assert error.errno == 390144, (error.errno, error.msg)
    else:
        raise AssertionError("another key must be refused")

    try:
        cur.execute("CREATE USER SVC_CHECK TYPE = SERVICE PASSWORD = 'Svc-Pw-123456'")
    except snowflake.connector.errors.ProgrammingError as error:
        assert "SERVICE" in error.msg, error.msg
    else:
        raise AssertionError("a SERVICE user with a password must be refused")
    admin.close()
    print("the official connector agrees with the grant emulator")


if __name__ == "__main__":
    main()
