-- Credit notes owed to the ledger for voided invoices: a transactional outbox. A row is written
-- in the same transaction as the void (so a void is never without its credit note, nor a credit
-- note without its void), then delivered to the ledger with the row id as the idempotency key,
-- retried until the ledger has it. Portable SQL (SQLite and PostgreSQL), times in Unix µs.
CREATE TABLE credit_note_outbox (
    id            TEXT    NOT NULL PRIMARY KEY,
    tenant_id     TEXT    NOT NULL,
    invoice_id    TEXT    NOT NULL,
    amount_minor  BIGINT  NOT NULL,
    currency      TEXT    NOT NULL,
    reason        TEXT,
    subject       TEXT,
    client_id     TEXT,
    created_at    BIGINT  NOT NULL,
    attempts      BIGINT  NOT NULL DEFAULT 0,
    last_error    TEXT,
    delivered_at  BIGINT,
    ledger_id     TEXT,
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
);

-- Delivery reads the oldest undelivered rows.
CREATE INDEX credit_note_outbox_pending ON credit_note_outbox (delivered_at, created_at);
