//! `hoist attach` through the CLI: input reaches a `stdin_open` service's stdin and a `tty`
//! service's terminal, its output comes back, the detach keys leave it running, and attach
//! returns the container's exit code when it ends.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::project::Project;

fn can_run() -> bool {
    common::can_run_as_root("attach")
}

const COMPOSE: &str = r#"
name: PROJECT
services:
  app:
    image: busybox:test
    stdin_open: true
    command: ["sh", "-c", "while read line; do [ \"$$line\" = quit ] && exit 3; echo got:$$line; done"]
  term:
    image: busybox:test
    tty: true
    stdin_open: true
    command: ["sh"]
"#;

/// `hoist attach SERVICE` with piped stdio, and its stdout lines as they come.
fn attach(p: &Project, service: &str) -> (Child, mpsc::Receiver<String>) {
    let mut child = p
        .command(&["attach", service])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    // Attached once the client has its input: give it a moment to ask the supervisor.
    std::thread::sleep(Duration::from_millis(300));
    (child, lines_rx)
}

fn wait_for_line(lines: &mpsc::Receiver<String>, wanted: &str) {
    loop {
        match lines.recv_timeout(Duration::from_secs(5)) {
            Ok(line) if line.contains(wanted) => return,
            Ok(_) => continue,
            Err(e) => panic!("no line with {wanted:?}: {e}"),
        }
    }
}

fn exit_code(child: &mut Child) -> Option<i32> {
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("attach did not end");
}

#[test]
fn attach_feeds_stdin_and_terminals_detaches_and_returns_the_exit_code() {
    if !can_run() {
        return;
    }
    let mut p = Project::new("attach", COMPOSE);
    p.up();

    let (mut child, lines) = attach(&p, "app");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello\n").unwrap();
    wait_for_line(&lines, "got:hello");
    // ctrl-p ctrl-q: detached, the container still runs.
    stdin.write_all(&[0x10, 0x11]).unwrap();
    assert_eq!(exit_code(&mut child), Some(0));
    assert_eq!(p.container("app")["State"], "running");

    // A second attach sees the same stdin; the container's exit ends it with its code.
    let (mut child, lines) = attach(&p, "app");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"again\n").unwrap();
    wait_for_line(&lines, "got:again");
    stdin.write_all(b"quit\n").unwrap();
    assert_eq!(exit_code(&mut child), Some(3));

    // A tty service: the input is typed at its terminal, the answer comes through the log.
    let (mut child, lines) = attach(&p, "term");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"echo tty-$((40+2))\n").unwrap();
    wait_for_line(&lines, "tty-42");
    stdin.write_all(&[0x10, 0x11]).unwrap();
    assert_eq!(exit_code(&mut child), Some(0));
    assert_eq!(p.container("term")["State"], "running");
}
