//! `--help` texts are part of the interface: each is compared with its snapshot in
//! tests/snapshots. After a deliberate change, refresh them with
//! `REKEY_UPDATE_SNAPSHOTS=1 cargo test -p rekey-cli --test help`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

use std::path::PathBuf;
use std::process::Command;

const COMMANDS: &[&[&str]] = &[
    &[],
    &["serve"],
    &["init"],
    &["rotate"],
    &["apps", "create"],
    &["secrets"],
    &["secrets", "rotate"],
    &["destinations", "set"],
    &["deliveries", "list"],
    &["members", "set-role"],
    &["api-tokens", "create"],
    &["signing-keys", "rotate"],
    &["doctor"],
    &["store", "copy"],
    &["server-admins", "add"],
    &["audit", "verify"],
];

/// CI compares; it never rewrites what it compares against.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rekey"))
        .args(args)
        .arg("--help")
        // No REKEY_* or AWS_* values from the environment may leak into the text.
        .env_clear()
        .output()
        .expect("run rekey");
    assert!(out.status.success(), "rekey {args:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_texts_match_their_snapshots() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let update = std::env::var("REKEY_UPDATE_SNAPSHOTS").is_ok();
    assert!(
        !(update && in_ci()),
        "REKEY_UPDATE_SNAPSHOTS is refused in CI"
    );
    let mut stale = Vec::new();
    for args in COMMANDS {
        let name = if args.is_empty() {
            "rekey".to_string()
        } else {
            format!("rekey-{}", args.join("-"))
        };
        let path = dir.join(format!("{name}.txt"));
        let text = help(args);
        if update {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "help changed for {stale:?}; refresh with REKEY_UPDATE_SNAPSHOTS=1 if intended"
    );
}

#[test]
fn completions_are_generated_for_bash() {
    let out = Command::new(env!("CARGO_BIN_EXE_rekey"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(script.contains("rekey") && script.contains("rotate"));
}

#[test]
fn every_help_text_explains_itself() {
    for args in COMMANDS {
        let text = help(args);
        assert!(
            text.lines().next().is_some_and(|l| !l.trim().is_empty()),
            "{args:?} has no description"
        );
    }
}
