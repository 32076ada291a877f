//! Invariant: an unreachable database is an outage, reported to the edge so that the request is
//! answered `503` + `Retry-After` (which clients retry) rather than a tool error in a `200`.

use serde_json::json;

use crate::common::{demo, reader, writer};
use crate::on_both_engines;

on_both_engines! {
    // An unreachable database is an outage, reported to the edge (which answers the request 503
    // + Retry-After); the tool's own answer stays the fixed "Internal error." where the status
    // cannot change. Ordinary refusals report nothing.
    async fn an_unreachable_store_is_reported_to_the_edge_as_an_outage(engine) {
        let (_db, mcp) = demo(engine).await;
        let r = mcp.call(&reader("acme"), "lookup_invoice", json!({"invoiceId": "INV-0000"})).await;
        assert!(r.is_error());
        assert_eq!(mcp.last_dependency_failure(), None, "not found is no outage");

        mcp.store.close().await;
        for (tool, args) in [
            ("list_invoices", json!({})),
            ("void_invoice", json!({"invoiceId": "INV-2041"})),
        ] {
            let who = if tool == "void_invoice" { writer("acme") } else { reader("acme") };
            let r = mcp.call(&who, tool, args).await;
            r.assert_error("Internal error.");
            assert_eq!(
                mcp.last_dependency_failure(),
                Some(gatehouse::mcp::DependencyFailure::Unavailable {
                    retry_after: std::time::Duration::from_secs(1)
                }),
                "{tool}"
            );
        }
    }
}
