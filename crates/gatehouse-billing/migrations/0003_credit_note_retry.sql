-- When a credit note whose delivery failed may be tried again (Unix µs): each failure pushes it
-- back (exponential backoff), so a note the ledger keeps refusing does not hold up the others.
-- NULL until the first failure; a note never tried is due once the inline attempt's grace ends.
ALTER TABLE credit_note_outbox ADD COLUMN next_attempt_at BIGINT;
