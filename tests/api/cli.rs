//! The binary: configuration errors, `migrate` and `keys`.

use std::process::{Command, Output};

use crate::common::{stack_settings, unique};

fn gateway(args: &[&str], env: &[(&str, &str)]) -> Output {
    gateway_without(args, env, &[])
}

/// Runs the binary with `env` added and the variables in `unset` removed
/// from what the test inherited.
fn gateway_without(args: &[&str], env: &[(&str, &str)], unset: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_storage-gateway"));
    command.args(args).env("RUST_LOG", "warn");
    for name in unset {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_bad_config_value_stops_start_up_with_one_clear_line() {
    let output = gateway(&["serve"], &[("PORT", "eighty")]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    assert!(
        message.starts_with("invalid configuration: server.port:"),
        "{message}"
    );
    assert!(
        message.contains("PORT") || message.contains("u16"),
        "{message}"
    );

    let output = gateway(&["serve"], &[("IPFS_CLUSTER_URL", "not a url")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).starts_with("invalid configuration: cluster.url:"));
}

#[test]
fn a_missing_config_file_is_named() {
    let output = gateway(&["--config", "/nonexistent/gateway.toml", "migrate"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("--config") && message.contains("/nonexistent/gateway.toml"),
        "{message}"
    );
}

#[test]
fn a_config_file_overrides_defaults_and_the_environment_overrides_it() {
    let dir = std::env::temp_dir().join(unique("gateway-config"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("gateway.toml");
    std::fs::write(&file, "[server]\nport = \"oops\"\n").unwrap();
    let output = gateway_without(
        &["--config", file.to_str().unwrap(), "serve"],
        &[],
        &["PORT"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("server.port"),
        "{}",
        stderr(&output)
    );
    // The environment wins over the file: with PORT set, the file's bad port
    // is replaced and the next problem in the file is the one reported.
    std::fs::write(
        &file,
        "[server]\nport = \"oops\"\n[postgres]\npool_size = 0\n",
    )
    .unwrap();
    let output = gateway(
        &["--config", file.to_str().unwrap(), "serve"],
        &[("PORT", "0")],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).starts_with("invalid configuration: postgres.pool_size:"),
        "{}",
        stderr(&output)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn migrate_reports_what_it_applied() {
    let _ = stack_settings();
    let output = gateway(&["migrate"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("postgres: "), "{text}");
    assert!(text.contains("schema file(s) applied"), "{text}");
}

#[test]
fn keys_create_list_and_revoke() {
    let _ = stack_settings();
    let tenant = unique("cli");
    let output = gateway(
        &[
            "keys",
            "create",
            "--tenant",
            &tenant,
            "--scopes",
            "files:read,cache",
            "--name",
            "ops",
        ],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let key = stdout(&output);
    let key = key.trim();
    assert_eq!(stdout(&output).lines().count(), 1);
    assert!(
        key.starts_with("sgw_") && key.len() == 4 + 16 + 1 + 64,
        "{key}"
    );
    let id = &key[4..20];

    let output = gateway(&["keys", "list", "--tenant", &tenant], &[]);
    let listing = stdout(&output);
    let line = listing
        .lines()
        .find(|l| l.starts_with(id))
        .expect("the key is listed");
    assert!(
        line.contains("files:read,cache") && line.ends_with("active"),
        "{line}"
    );
    assert!(
        !listing.contains(&key[21..]),
        "the secret must never be listed"
    );

    let output = gateway(&["keys", "revoke", id], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = gateway(&["keys", "list", "--tenant", &tenant], &[]);
    assert!(stdout(&output)
        .lines()
        .any(|l| l.starts_with(id) && l.ends_with("revoked")));

    let output = gateway(&["keys", "revoke", id], &[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("no live key"));
}

#[test]
fn keys_create_refuses_bad_input() {
    let _ = stack_settings();
    let output = gateway(
        &[
            "keys",
            "create",
            "--tenant",
            "Not Valid",
            "--scopes",
            "cache",
        ],
        &[],
    );
    assert!(!output.status.success());
    assert!(stderr(&output).contains("invalid tenant"));
    let output = gateway(
        &["keys", "create", "--tenant", "ok", "--scopes", "root"],
        &[],
    );
    assert!(!output.status.success());
    assert!(stderr(&output).contains("unknown scope"));
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["keys", "--help"],
        vec!["keys", "create", "--help"],
        vec!["keys", "list", "--help"],
        vec!["keys", "revoke", "--help"],
    ] {
        let output = gateway(&args, &[]);
        assert!(output.status.success(), "{args:?}");
        assert!(stdout(&output).contains("Usage:"), "{args:?}");
    }
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::process::Stdio;

    let _ = stack_settings();
    let mut child = Command::new(env!("CARGO_BIN_EXE_storage-gateway"))
        .arg("serve")
        .env("PORT", "0")
        .env("RUST_LOG", "info")
        .env("GATEWAY__LOG__FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("the server logs that it serves before it exits")
            .unwrap();
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if event["message"] == "serving" {
            break event["port"].as_u64().unwrap();
        }
    };
    let mut stream = TcpStream::connect(("127.0.0.1", port as u16)).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("\"stopped\"")),
        "no stop line in {rest:?}"
    );
}
