"""The database triggers that make audit rows append-only, for each database we run on."""

TABLES = ("audit_auditevent", "audit_auditseal")

POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = 'audit rows are append-only (' || TG_OP || ' on ' || TG_TABLE_NAME || ')',
        ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def create_statements(vendor: str) -> list[str]:
    statements = []
    if vendor == "postgresql":
        statements.append(POSTGRES_FUNCTION)
        for table in TABLES:
            statements.append(
                f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
            )
            statements.append(
                f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
            )
    elif vendor == "sqlite":
        for table in TABLES:
            for operation in ("UPDATE", "DELETE"):
                statements.append(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END"
                )
    return statements


def drop_statements(vendor: str) -> list[str]:
    statements = []
    if vendor == "postgresql":
        for table in TABLES:
            statements.append(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            statements.append(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    elif vendor == "sqlite":
        for table in TABLES:
            for operation in ("update", "delete"):
                statements.append(f"DROP TRIGGER IF EXISTS {table}_no_{operation}")
    return statements


def execute(connection, statements: list[str]) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
