-- Billing schema. Portable SQL: the same file runs on SQLite and PostgreSQL (see src/store/mod.rs).
-- Times are Unix microseconds (BIGINT) because sqlx's `Any` driver has no portable timestamp type;
-- money is an integer count of minor units plus an ISO 4217 currency code, never a float.

CREATE TABLE invoices (
    tenant_id   TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    customer    TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('open', 'paid', 'void')),
    total_minor BIGINT  NOT NULL,
    currency    TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    voided_at   BIGINT,
    voided_by   TEXT,
    -- Lookups are by (tenant_id, id): the primary key is that index. The same invoice id may exist
    -- in several tenants.
    PRIMARY KEY (tenant_id, id)
);

-- Listing is newest first within one tenant, keyset-paginated on (created_at, id): this index
-- makes a page an index range scan whatever the table size (no sort, no offset).
CREATE INDEX invoices_tenant_created ON invoices (tenant_id, created_at DESC, id DESC);
-- The same for listings filtered by status, so that a rare status does not scan the tenant.
CREATE INDEX invoices_tenant_status_created ON invoices (tenant_id, status, created_at DESC, id DESC);

-- The history of each invoice (who voided it, when, with which client, why).
CREATE TABLE invoice_events (
    id             TEXT   NOT NULL PRIMARY KEY,
    tenant_id      TEXT   NOT NULL,
    invoice_id     TEXT   NOT NULL,
    action         TEXT   NOT NULL,
    actor_subject  TEXT,
    client_id      TEXT,
    reason         TEXT,
    at             BIGINT NOT NULL,
    request_id     TEXT,
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
);

CREATE INDEX invoice_events_invoice ON invoice_events (tenant_id, invoice_id, at, id);

-- One row per tools/call (allowed, denied at the edge or in the tool, or failed). Never a token.
CREATE TABLE audit_log (
    id          TEXT   NOT NULL PRIMARY KEY,
    at          BIGINT NOT NULL,
    request_id  TEXT,
    tool        TEXT   NOT NULL,
    subject     TEXT,
    client_id   TEXT,
    tenant_id   TEXT,
    outcome     TEXT   NOT NULL CHECK (outcome IN ('allowed', 'denied', 'error')),
    detail      TEXT   NOT NULL
);

CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_tenant_at ON audit_log (tenant_id, at);
