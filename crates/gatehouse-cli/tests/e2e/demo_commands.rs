//! The demo's printed commands work as printed: the test starts `gatehouse demo` (the same
//! `demo::start` the binary calls, on ephemeral ports), takes the curl commands from the text it
//! prints, and runs them in a shell with the printed `export` lines. Issue 3, "Done when".

use gatehouse_cli::demo::{self, DemoArgs};

/// The printed text split into (heading number, command lines).
fn commands(text: &str) -> Vec<(u32, Vec<String>)> {
    let mut out: Vec<(u32, Vec<String>)> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if let Some((n, _)) = trimmed.split_once(". ")
            && let Ok(n) = n.parse::<u32>()
            && !line.starts_with(' ')
        {
            out.push((n, Vec::new()));
            continue;
        }
        if trimmed.starts_with("curl ") {
            // Join continuation lines ending in a backslash.
            let mut cmd = trimmed.to_owned();
            while cmd.ends_with('\\') {
                cmd.pop();
                cmd.push_str(lines.next().unwrap_or_default().trim());
            }
            out.last_mut().expect("command under a heading").1.push(cmd);
        }
    }
    out
}

fn run(exports: &str, cmd: &str) -> String {
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("set -e\n{exports}\n{cmd}"))
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{cmd}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printed_commands_work_as_printed() {
    let dir = super::stack::TempDir::new();
    let demo = demo::start(DemoArgs {
        port: 0,
        issuer_port: 0,
        ledger_port: 0,
        database: Some(dir.0.join("demo.db")),
        token_ttl: 600,
    })
    .await
    .expect("demo starts");
    let text = demo::instructions(&demo);
    let exports: String = text
        .lines()
        .filter(|l| l.trim_start().starts_with("export "))
        .map(|l| l.split('#').next().unwrap().trim().to_owned() + "\n")
        .collect();
    assert_eq!(exports.lines().count(), 4, "{text}");
    let cmds = commands(&text);
    let get = |n: u32| -> Vec<String> {
        cmds.iter()
            .find(|(k, _)| *k == n)
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| panic!("no step {n}"))
    };
    let metadata_url = format!(
        "{}/.well-known/oauth-protected-resource/mcp",
        demo.mcp_url.trim_end_matches("/mcp")
    );

    // 1. No token → 401 with the challenge (A14, A15): resource_metadata and scope, no error.
    let out = run(&exports, &get(1)[0]);
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    let challenge = format!(
        "www-authenticate: Bearer resource_metadata=\"{metadata_url}\", scope=\"invoices:read\"\r\n"
    );
    assert!(out.contains(&challenge), "{out}");
    assert!(!out.contains("error=\""), "{out}");

    // 2. The read token reads acme's INV-2041.
    let out = run(&exports, &get(2)[0]);
    assert!(out.contains("INV-2041: open, total 1250.00 EUR"), "{out}");

    // 3. The read token is challenged to step up for void_invoice (A17).
    let out = run(&exports, &get(3)[0]);
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    assert!(out.contains("error=\"insufficient_scope\""), "{out}");
    assert!(out.contains("scope=\"invoices:write\""), "{out}");
    assert!(
        out.contains(&format!("resource_metadata=\"{metadata_url}\"")),
        "{out}"
    );

    // 4. The write token voids it; the history says who did it and that the credit note
    // reached the ledger; the ledger's record names the user (proved by the exchanged token)
    // and the billing server as actor, and the ledger never saw the client's token.
    let step4 = get(4);
    assert_eq!(step4.len(), 3, "{text}");
    let out = run(&exports, &step4[0]);
    assert!(out.contains("Voided INV-2041; credit note "), "{out}");
    assert!(out.contains("delivered to the ledger as CN-1"), "{out}");
    let out = run(&exports, &step4[1]);
    assert!(
        out.contains("void by acme-writer via acme-writer: duplicate"),
        "{out}"
    );
    assert!(out.contains(r#"\"status\":\"delivered\""#), "{out}");
    let out = run(&exports, &step4[2]);
    let v: serde_json::Value = serde_json::from_str(&out).expect(&out);
    let notes = v["creditNotes"].as_array().expect(&out);
    assert_eq!(notes.len(), 1, "{out}");
    let n = &notes[0];
    assert_eq!(
        (&n["invoiceId"], &n["user"], &n["userVerified"], &n["actor"]),
        (
            &serde_json::json!("INV-2041"),
            &serde_json::json!("acme-writer"),
            &serde_json::json!(true),
            &serde_json::json!(gatehouse_cli::demo::BILLING_CLIENT)
        ),
        "{out}"
    );

    // 5. Tenant globex cannot see acme's INV-2042: same answer as a missing invoice.
    let out = run(&exports, &get(5)[0]);
    assert!(out.contains("No invoice found for INV-2042."), "{out}");
    assert!(out.contains("\"isError\":true"), "{out}");

    // 6. A fresh token from the authorization server, with the printed secret.
    let out = run(&exports, &get(6)[0]);
    let v: serde_json::Value = serde_json::from_str(&out).expect(&out);
    assert_eq!(v["token_type"], "Bearer", "{out}");
    assert_eq!(v["scope"], "invoices:read", "{out}");

    // 10. The admin listener's URLs as printed: healthy, ready, and the calls above counted.
    let step10 = get(10);
    assert_eq!(step10.len(), 3, "{text}");
    let out = run(&exports, &step10[0]);
    assert!(out.contains("ok"), "{out}");
    let out = run(&exports, &step10[1]);
    let v: serde_json::Value = serde_json::from_str(&out).expect(&out);
    assert_eq!(
        (&v["database"], &v["keys"]),
        (&true.into(), &true.into()),
        "{out}"
    );
    let out = run(&exports, &step10[2]);
    assert!(
        out.contains(r#"gatehouse_tool_calls_total{tool="lookup_invoice",outcome="allowed"}"#),
        "{out}"
    );

    // 9. The interactive section names the pinned Inspector, the MCP URL and every demo user.
    assert!(
        text.contains(&format!(
            "npx -y {} --web --transport http --server-url {}",
            demo::INSPECTOR,
            demo.mcp_url
        )),
        "{text}"
    );
    for (name, tenant, scopes) in demo::DEMO_USERS {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(name)
                && l.contains(tenant)
                && l.contains(&scopes.join(" "))),
            "{name}: {text}"
        );
    }

    demo.stop().await.expect("demo stops cleanly");
}
