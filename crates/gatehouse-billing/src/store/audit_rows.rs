//! Writing and reading `audit_log` rows.

use std::str::FromStr;

use sqlx::Row as _;

use super::micros::{from_micros, to_micros};
use super::{AuditOutcome, AuditRecord, Backend, Store, StoreError};

impl Store {
    /// Writes audit records in one transaction of multi-row `INSERT`s (see [`audit_chunk_len`]):
    /// one statement per record would be one round trip to the database (on SQLite, to the
    /// connection's worker thread) per record.
    pub(crate) async fn insert_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut rest = records;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(audit_chunk_len(rest.len()));
            rest = tail;
            let mut q = sqlx::query(sqlx::AssertSqlSafe(audit_insert_sql(
                chunk.len(),
                self.backend,
            )));
            for r in chunk {
                q = q
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(to_micros(r.at))
                    .bind(r.request_id.as_deref())
                    .bind(&r.tool)
                    .bind(r.subject.as_deref())
                    .bind(r.client_id.as_deref())
                    .bind(r.tenant.as_deref())
                    .bind(r.outcome.as_str())
                    .bind(&r.detail);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The most recent audit records, newest first (operations and tests; not exposed as a tool).
    pub async fn recent_audit(&self, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, request_id, tool, subject, client_id, tenant_id, outcome, detail \
             FROM audit_log ORDER BY at DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let outcome: String = r.try_get("outcome")?;
                Ok(AuditRecord {
                    at: from_micros(r.try_get("at")?),
                    request_id: r.try_get("request_id")?,
                    tool: r.try_get("tool")?,
                    subject: r.try_get("subject")?,
                    client_id: r.try_get("client_id")?,
                    tenant: r.try_get("tenant_id")?,
                    outcome: AuditOutcome::from_str(&outcome)
                        .map_err(|_| StoreError::Corrupt("audit_log.outcome"))?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}

/// Most audit rows per `INSERT` statement: 9 parameters each, well under SQLite's 32,766 and
/// PostgreSQL's 65,535 bound parameters.
pub(crate) const AUDIT_ROWS_PER_INSERT: usize = 64;

/// Rows in the next `INSERT` of a batch that has `remaining` rows left: the largest power of two
/// that fits, up to [`AUDIT_ROWS_PER_INSERT`]. Every distinct row count is a distinct statement
/// in each connection's prepared-statement cache, and one with hundreds of parameters is tens of
/// kilobytes; powers of two keep that to seven statements, at most seven per batch remainder.
fn audit_chunk_len(remaining: usize) -> usize {
    if remaining >= AUDIT_ROWS_PER_INSERT {
        AUDIT_ROWS_PER_INSERT
    } else {
        1 << remaining.ilog2()
    }
}

/// `INSERT INTO audit_log … VALUES (…), (…), …` for `rows` rows.
///
/// SQLite gets anonymous `?` parameters: sqlx binds a named or numbered parameter by asking
/// SQLite for its name, a linear search, which makes a statement with hundreds of `$N`
/// parameters quadratic to bind (it showed in profiles). PostgreSQL only knows `$N`.
fn audit_insert_sql(rows: usize, backend: Backend) -> String {
    const COLUMNS: usize = 9;
    let mut sql = String::from(
        "INSERT INTO audit_log \
         (id, at, request_id, tool, subject, client_id, tenant_id, outcome, detail) VALUES ",
    );
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..COLUMNS {
            if col > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(row * COLUMNS + col + 1).to_string());
                }
            }
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_insert_sql_has_one_parameter_per_column_and_row() {
        assert_eq!(
            audit_insert_sql(2, Backend::Postgres),
            "INSERT INTO audit_log (id, at, request_id, tool, subject, client_id, tenant_id, \
             outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9), \
             ($10, $11, $12, $13, $14, $15, $16, $17, $18)"
        );
        assert_eq!(
            audit_insert_sql(2, Backend::Sqlite),
            "INSERT INTO audit_log (id, at, request_id, tool, subject, client_id, tenant_id, \
             outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        let n = AUDIT_ROWS_PER_INSERT;
        let pg = audit_insert_sql(n, Backend::Postgres);
        assert!(pg.ends_with(&format!("${})", n * 9)));
        assert_eq!(pg.matches('$').count(), n * 9);
        assert_eq!(
            audit_insert_sql(n, Backend::Sqlite).matches('?').count(),
            n * 9
        );
    }

    #[test]
    fn audit_chunks_are_powers_of_two_that_cover_the_batch() {
        for n in 1..=300 {
            let (mut rest, mut lens) = (n, Vec::new());
            while rest > 0 {
                let len = audit_chunk_len(rest);
                assert!(len.is_power_of_two() && len <= AUDIT_ROWS_PER_INSERT && len <= rest);
                lens.push(len);
                rest -= len;
            }
            assert_eq!(lens.iter().sum::<usize>(), n);
            assert!(
                lens.iter().filter(|&&l| l < AUDIT_ROWS_PER_INSERT).count() <= 6,
                "{n}: {lens:?}"
            );
        }
    }
}
