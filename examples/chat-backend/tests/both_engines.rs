//! The example runs as a user would run it, on the embedded engine and on a real redis-server
//! started here, and checks every step it takes.

use std::process::Command;

use switchboard_conformance::RedisServer;

fn run(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_chat-backend")).args(args).output().expect("run chat-backend");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "chat-backend {args:?} failed: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn the_chat_backend_runs_on_the_memory_engine() {
    assert!(run(&[]).contains("every step checked on the memory engine"));
}

#[test]
fn the_chat_backend_runs_on_redis() {
    let server = RedisServer::start();
    assert!(run(&["--redis", &server.url()]).contains("every step checked on the redis engine"));
}

#[test]
fn bad_arguments_are_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_chat-backend")).arg("--bogus").output().expect("run chat-backend");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("usage"), "{output:?}");
}
