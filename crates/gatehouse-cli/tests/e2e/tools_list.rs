//! `tools/list` modes (issue 3; spec-requirements A36): by default every tool is listed so that
//! clients can discover what to step up to; with `policy.tools_list = "filter"` a caller sees only
//! the tools its scopes can call — decided per request from the token, never per connection.

use super::stack::{ALL_TOOLS, Stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_mode_lists_every_tool() {
    let stack = Stack::start(|_| {}).await;
    let read = stack.token("acme-reader", &[]);
    let names = stack.list_tools(Some(&read)).await.tool_names();
    assert_eq!(names, ALL_TOOLS);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_mode_hides_tools_the_token_cannot_call() {
    let stack =
        Stack::start(|c| c.policy.tools_list = gatehouse::settings::ToolsList::Filter).await;
    let read = stack.token("acme-reader", &[]);
    let write = stack.token("acme-writer", &[]);
    let names = stack.list_tools(Some(&read)).await.tool_names();
    assert_eq!(
        names,
        ["invoice_history", "list_invoices", "lookup_invoice"]
    );
    let names = stack.list_tools(Some(&write)).await.tool_names();
    assert_eq!(names, ALL_TOOLS);
    // The same read token again: the list depends on the token, not on what came before.
    let names = stack.list_tools(Some(&read)).await.tool_names();
    assert!(!names.contains(&"void_invoice".to_owned()));
    stack.stop().await;
}
