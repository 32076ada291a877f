//! `tools/list` modes (issue 3; spec-requirements A36): by default every tool is listed so that
//! clients can discover what to step up to; with `policy.tools_list = "filter"` a caller sees only
//! the tools its scopes can call — decided per request from the token, never per connection.

use super::stack::{Stack, tools_list};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_mode_lists_every_tool() {
    let stack = Stack::start(|_| {}).await;
    let read = stack.token("acme-reader", &[]);
    let names = stack
        .post(Some(&read), Some("2025-11-25"), tools_list())
        .await
        .tool_names();
    assert_eq!(
        names,
        [
            "invoice_history",
            "list_invoices",
            "lookup_invoice",
            "void_invoice"
        ]
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_mode_hides_tools_the_token_cannot_call() {
    let stack =
        Stack::start(|c| c.policy.tools_list = gatehouse::settings::ToolsList::Filter).await;
    let read = stack.token("acme-reader", &[]);
    let write = stack.token("acme-writer", &[]);
    let names = stack
        .post(Some(&read), Some("2025-11-25"), tools_list())
        .await
        .tool_names();
    assert_eq!(
        names,
        ["invoice_history", "list_invoices", "lookup_invoice"]
    );
    let names = stack
        .post(Some(&write), Some("2025-11-25"), tools_list())
        .await
        .tool_names();
    assert_eq!(
        names,
        [
            "invoice_history",
            "list_invoices",
            "lookup_invoice",
            "void_invoice"
        ]
    );
    // The same read token again: the list depends on the token, not on what came before.
    let names = stack
        .post(Some(&read), Some("2025-11-25"), tools_list())
        .await
        .tool_names();
    assert!(!names.contains(&"void_invoice".to_owned()));
    stack.stop().await;
}
