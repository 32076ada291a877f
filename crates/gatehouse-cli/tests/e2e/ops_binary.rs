//! Issue 6 against the real `gatehouse` binary: `check`, logs (request ids, no token ever),
//! tool-call metrics, the audit summary, and graceful shutdown on SIGTERM. `serve` runs on port 0
//! with no `server.resource`: it binds, derives the loopback resource URL from the bound port and
//! prints the ready line these tests read (no test ever races for a free port).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::stack::{TempDir, start_issuer};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
const BOUND: Duration = Duration::from_secs(30);

/// The resource `check` is given (it binds nothing, so it cannot derive one).
const RESOURCE: &str = "http://127.0.0.1:1/mcp";

fn config_file(dir: &TempDir, issuer_section: &str, extra: &str) -> std::path::PathBuf {
    config_with(dir, Some(RESOURCE), issuer_section, extra)
}

/// `resource: None` leaves `server.resource` to its default, derived from the bound address.
fn config_with(
    dir: &TempDir,
    resource: Option<&str>,
    issuer_section: &str,
    extra: &str,
) -> std::path::PathBuf {
    let path = dir.0.join("gatehouse.toml");
    let resource = resource
        .map(|r| format!("resource = \"{r}\"\n"))
        .unwrap_or_default();
    let body = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{resource}shutdown_grace_seconds = 20\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n\
         {issuer_section}\n\
         [database]\nurl = \"sqlite://{}\"\nseed_demo_data = true\n{extra}",
        dir.0.join("billing.db").display()
    );
    std::fs::write(&path, body).unwrap();
    path
}

fn issuer_section(issuer: &str, jwks_uri: Option<&str>) -> String {
    let mut s = format!("[[auth.issuers]]\nissuer = \"{issuer}\"\n");
    if let Some(j) = jwks_uri {
        s.push_str(&format!("jwks_uri = \"{j}\"\n"));
    }
    s
}

async fn dead_url() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

async fn run_check(config: &std::path::Path) -> (bool, String, String) {
    let out = tokio::time::timeout(
        BOUND,
        Command::new(BIN)
            .args(["check", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .output(),
    )
    .await
    .expect("bounded")
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_prints_keys_endpoints_and_metadata_and_names_what_is_broken() {
    let cancel = CancellationToken::new();
    let issuer = start_issuer(cancel.clone()).await;
    let dir = TempDir::new();

    let good = config_file(&dir, &issuer_section(issuer.issuer(), None), "");
    let (ok, stdout, stderr) = run_check(&good).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("issuer {}", issuer.issuer())),
        "{stdout}"
    );
    assert!(stdout.contains("jwks_uri: http://127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("key kid="), "{stdout}");
    assert!(stdout.contains("algorithms=ES256"), "{stdout}");
    assert!(
        stdout.contains("mcp:      http://127.0.0.1:0/mcp"),
        "{stdout}"
    );
    assert!(
        stdout.contains("admin:    http://127.0.0.1:0/metrics"),
        "{stdout}"
    );
    let doc_start = stdout.find("{").expect("metadata document");
    let doc_end = stdout.rfind('}').unwrap();
    let doc: Value = serde_json::from_str(&stdout[doc_start..=doc_end]).unwrap();
    assert_eq!(doc["resource"], RESOURCE);
    assert_eq!(doc["authorization_servers"], json!([issuer.issuer()]));
    assert!(stdout.ends_with("configuration OK\n"), "{stdout}");

    // A dead issuer: non-zero, naming the key and the URL.
    let dead = dead_url().await;
    let bad = config_file(&dir, &issuer_section(&dead, None), "");
    let (ok, stdout, stderr) = run_check(&bad).await;
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("`auth.issuers[0].issuer`"), "{stderr}");
    assert!(stderr.contains(&dead), "{stderr}");

    // A live issuer with a dead JWKS URL: the jwks_uri is named.
    let dead_jwks = format!("{}/jwks.json", dead_url().await);
    let bad = config_file(&dir, &issuer_section(issuer.issuer(), Some(&dead_jwks)), "");
    let (ok, _, stderr) = run_check(&bad).await;
    assert!(!ok);
    assert!(stderr.contains("`auth.issuers[0].jwks_uri`"), "{stderr}");
    assert!(stderr.contains(&dead_jwks), "{stderr}");

    // A bad limit is named before anything is fetched.
    let bad = config_file(
        &dir,
        &issuer_section(issuer.issuer(), None),
        "[limits]\nmax_header_bytes = 100\n",
    );
    let (ok, _, stderr) = run_check(&bad).await;
    assert!(!ok);
    assert!(stderr.contains("limits.max_header_bytes"), "{stderr}");
    cancel.cancel();
}

/// A running `gatehouse serve` with its stderr captured line by line.
struct Server {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    all: Arc<Mutex<Vec<String>>>,
    url: String,
    admin: String,
}

impl Server {
    async fn start(config: &std::path::Path, rust_log: Option<&str>) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(["--log-json", "serve", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match rust_log {
            Some(l) => cmd.env("RUST_LOG", l),
            None => cmd.env_remove("RUST_LOG"),
        };
        let mut child = cmd.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let (tx, lines) = mpsc::unbounded_channel();
        let all = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        {
            let all = all.clone();
            tokio::spawn(async move {
                let mut r = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = r.next_line().await {
                    all.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        // The ready line: `gatehouse ready mcp=URL metadata=URL admin=ADDR`.
        let ready = tokio::time::timeout(BOUND, stdout.next_line())
            .await
            .expect("the ready line in time")
            .unwrap()
            .expect("a ready line on stdout");
        let field = |name: &str| {
            ready
                .split(' ')
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} in {ready:?}"))
                .to_owned()
        };
        assert!(ready.starts_with("gatehouse ready "), "{ready}");
        let url = field("mcp=");
        assert!(
            url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"),
            "{url}"
        );
        assert_eq!(
            field("metadata="),
            url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
        );
        let admin = field("admin=");
        Server {
            child,
            lines,
            all,
            url,
            admin,
        }
    }

    async fn next_json(&mut self) -> Value {
        let line = tokio::time::timeout(BOUND, self.lines.recv())
            .await
            .expect("a log line in time")
            .expect("the server is running");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"))
    }

    async fn wait_for(&mut self, message: &str) -> Value {
        loop {
            let l = self.next_json().await;
            if l["message"] == message {
                return l;
            }
        }
    }

    fn url(&self) -> String {
        self.url.clone()
    }

    /// `127.0.0.1:PORT` of the MCP listener.
    fn addr(&self) -> String {
        self.url
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .to_owned()
    }

    async fn sigterm(&mut self) {
        let pid = self.child.id().expect("running").to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }

    async fn exit_code(&mut self) -> Option<i32> {
        tokio::time::timeout(BOUND, self.child.wait())
            .await
            .expect("exits in time")
            .unwrap()
            .code()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(BOUND).build().unwrap()
}

async fn call(url: &str, token: Option<&str>, body: Value, extra: &[(&str, &str)]) -> u16 {
    let mut req = client()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.json(&body).send().await.unwrap().status().as_u16()
}

fn tool(name: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":name,"arguments":args}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_json_logs_carry_request_ids_and_never_a_token() {
    let cancel = CancellationToken::new();
    let issuer = start_issuer(cancel.clone()).await;
    let dir = TempDir::new();
    let config = config_with(&dir, None, &issuer_section(issuer.issuer(), None), "");
    let mut server = Server::start(&config, Some("debug")).await;
    let url = server.url();

    let read = issuer.mint("acme-reader", &[], &url).unwrap();
    let write = issuer.mint("acme-writer", &[], &url).unwrap();
    let other_aud = issuer
        .mint("acme-reader", &[], "http://127.0.0.1:2/mcp")
        .unwrap();
    let forged = format!("{}AAAA", &read[..read.len() - 4]);
    let lookup = tool("lookup_invoice", json!({"invoiceId": "INV-2041"}));
    let void = tool(
        "void_invoice",
        json!({"invoiceId": "INV-2041", "reason": "dup"}),
    );

    assert_eq!(
        call(
            &url,
            Some(&read),
            lookup.clone(),
            &[("x-request-id", "req-from-test-42")]
        )
        .await,
        200
    );
    assert_eq!(call(&url, Some(&read), lookup.clone(), &[]).await, 200);
    assert_eq!(call(&url, Some(&read), void.clone(), &[]).await, 403);
    assert_eq!(call(&url, Some(&write), void, &[]).await, 200);
    assert_eq!(call(&url, Some(&forged), lookup.clone(), &[]).await, 401);
    assert_eq!(call(&url, Some(&other_aud), lookup.clone(), &[]).await, 401);
    assert_eq!(call(&url, None, lookup.clone(), &[]).await, 401);
    // A token in the query string is ignored — and must not be logged with the URI either.
    let with_query = format!("{url}?access_token={read}");
    assert_eq!(call(&with_query, None, lookup, &[]).await, 401);

    // Tool calls by tool and outcome, from the audit events.
    let m = client()
        .get(format!("http://{}/metrics", server.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        r#"gatehouse_tool_calls_total{tool="lookup_invoice",outcome="allowed"} 2"#,
        r#"gatehouse_tool_calls_total{tool="void_invoice",outcome="denied"} 1"#,
        r#"gatehouse_tool_calls_total{tool="void_invoice",outcome="allowed"} 1"#,
        r#"gatehouse_auth_outcomes_total{outcome="invalid.signature"} 1"#,
        r#"gatehouse_auth_outcomes_total{outcome="invalid.audience"} 1"#,
    ] {
        assert!(m.contains(series), "{series} in\n{m}");
    }

    server.sigterm().await;
    assert_eq!(server.exit_code().await, Some(0));
    // Let the reader task drain the pipe to its end.
    while server.lines.recv().await.is_some() {}
    let lines = server.all.lock().unwrap().clone();
    assert!(
        lines.len() > 20,
        "debug logging produced {} lines",
        lines.len()
    );

    // EVERY line: no token, no bearer header value.
    for line in &lines {
        for t in [&read, &write, &other_aud, &forged] {
            assert!(!line.contains(t.as_str()), "token in log line: {line}");
            // Not even the signature part alone.
            let sig = t.rsplit('.').next().unwrap();
            assert!(!line.contains(sig), "token signature in log line: {line}");
        }
        assert!(
            !line.contains("Bearer "),
            "bearer header in log line: {line}"
        );
    }

    // Every line inside a request names its request id; the client's own id is used.
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let in_request: Vec<&Value> = parsed
        .iter()
        .filter(|l| l["span"]["name"] == "request")
        .collect();
    assert!(in_request.len() >= 8, "{} request lines", in_request.len());
    for l in &in_request {
        let id = l["span"]["request_id"].as_str().unwrap_or("");
        assert!(!id.is_empty(), "line without request id: {l}");
    }
    assert!(
        in_request
            .iter()
            .any(|l| l["span"]["request_id"] == "req-from-test-42")
    );

    // Audit: tool calls on their own target with the request id; failures aggregated into one
    // summary (at shutdown here), not one line each.
    let audit: Vec<&Value> = parsed
        .iter()
        .filter(|l| l["target"] == "gatehouse::audit")
        .collect();
    assert!(
        audit
            .iter()
            .any(|l| l["message"] == "tools/call" && l["request_id"] == "req-from-test-42"),
        "{audit:?}"
    );
    let summaries: Vec<&&Value> = audit
        .iter()
        .filter(|l| l["message"] == "authentication failures")
        .collect();
    assert_eq!(summaries.len(), 1, "{audit:?}");
    assert_eq!(summaries[0]["failures"], 4);
    let by_reason: Value =
        serde_json::from_str(summaries[0]["by_reason"].as_str().unwrap()).unwrap();
    assert_eq!(by_reason["request.no_credentials"], 2);
    assert_eq!(by_reason["invalid.signature"], 1);
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_refuses_new_ones_and_exits_0() {
    let cancel = CancellationToken::new();
    let issuer = start_issuer(cancel.clone()).await;
    let dir = TempDir::new();
    let config = config_with(&dir, None, &issuer_section(issuer.issuer(), None), "");
    let mut server = Server::start(&config, None).await;
    let token = issuer.mint("acme-reader", &[], &server.url()).unwrap();
    let addr = server.addr();

    // An in-flight request: authenticated, its body being read (100 Continue says so), held.
    let body =
        serde_json::to_vec(&tool("lookup_invoice", json!({"invoiceId": "INV-2041"}))).unwrap();
    let mut held = TcpStream::connect(&addr).await.unwrap();
    held.write_all(
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             MCP-Protocol-Version: 2025-11-25\r\nContent-Length: {}\r\n\
             Expect: 100-continue\r\n\r\n",
            addr,
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(BOUND, held.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("100 Continue"));

    server.sigterm().await;
    server
        .wait_for("stopped accepting connections; finishing in-flight requests")
        .await;
    // New connections are refused.
    let refused = TcpStream::connect(&addr).await;
    assert_eq!(
        refused.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    // The in-flight request completes.
    held.write_all(&body).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(BOUND, held.read_to_end(&mut response))
        .await
        .expect("response, then the connection closes")
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.contains("HTTP/1.1 200"), "{response}");
    assert!(response.contains("INV-2041"), "{response}");
    assert_eq!(server.exit_code().await, Some(0));
    cancel.cancel();
}
