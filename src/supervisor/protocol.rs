//! The control protocol between the CLI and a project's supervisor: one JSON request per
//! line on the Unix socket, answered by one JSON response line. Every message carries the
//! protocol version; a supervisor refuses a version it does not speak.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SupervisorError;
use crate::plan::spec::{ProjectPlan, ServicePlan};

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpOptions {
    /// The services asked for (empty: all of the plan).
    pub services: Vec<String>,
    pub force_recreate: bool,
    pub no_recreate: bool,
    pub remove_orphans: bool,
    /// Return only once every service is running (healthy when it has a check) or
    /// completed successfully.
    pub wait: bool,
    /// Create (and bind ports) only: every container stays `created` until `start` or `up`.
    #[serde(default)]
    pub no_start: bool,
    /// Project config files, for `hoist ls`.
    pub config_files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Converge on `plan` (create, recreate, start) and answer once started.
    Up {
        plan: Box<ProjectPlan>,
        options: UpOptions,
    },
    Stop {
        services: Vec<String>,
        timeout: Option<u64>,
    },
    Start {
        services: Vec<String>,
    },
    Restart {
        services: Vec<String>,
        timeout: Option<u64>,
    },
    Kill {
        services: Vec<String>,
        signal: String,
    },
    Pause {
        services: Vec<String>,
        paused: bool,
    },
    /// Stop and remove everything; the supervisor exits after answering.
    Down {
        timeout: Option<u64>,
        volumes: bool,
    },
    /// Creates and starts the one-off container `name` (`hoist run`); answers once it runs.
    Run {
        /// The project (its networks and volumes).
        plan: Box<ProjectPlan>,
        /// The service as the one-off runs it (command, environment, ports… already applied).
        service: Box<ServicePlan>,
        name: String,
        options: RunOptions,
    },
    /// Answers with the exit code once container `container` has exited.
    WaitExit {
        container: String,
    },
    /// Removes the stopped containers of `services` (all when empty), after stopping them
    /// when `stop`; with `volumes`, the anonymous volumes of services left with none.
    Rm {
        services: Vec<String>,
        stop: bool,
        volumes: bool,
        timeout: Option<u64>,
    },
    /// Where to write container `container`'s input (`hoist attach`): the answer's
    /// `console_fd` names its pty or its open stdin in the supervisor, if it has one.
    Attach {
        container: String,
    },
    /// Sends a signal to one container.
    Signal {
        container: String,
        signal: String,
    },
    /// Starts watching `services` (`develop.watch`; all that have rules when empty). With
    /// `attach`, the watchers are kept only while the client keeps this connection open;
    /// without, until `down`.
    Watch {
        services: Vec<String>,
        attach: bool,
    },
    Ping,
}

/// How a one-off container is attached.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunOptions {
    /// Removed (record, state, leases) as soon as it exits.
    pub remove: bool,
    /// A pty: the answer names its master descriptor in the supervisor.
    pub terminal: bool,
    /// The client whose stdin, stdout and stderr (descriptors 0, 1, 2) the command uses;
    /// `None`: none (detached).
    pub client_pid: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    #[serde(flatten)]
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub version: u32,
    /// `None` on success.
    pub error: Option<String>,
    #[serde(flatten)]
    pub answer: Answer,
}

/// What a command answers besides an error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// Lines for the user (what was created, recreated, removed…).
    #[serde(default)]
    pub messages: Vec<String>,
    /// `WaitExit`: the container's exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// `Run` with a terminal: the pty master's descriptor number in the supervisor, which
    /// the client copies with pidfd_getfd(2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_fd: Option<i32>,
    /// Details shown with `--verbose` (a container killed at once on `stop`…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl From<Vec<String>> for Answer {
    fn from(messages: Vec<String>) -> Answer {
        Answer { messages, ..Answer::default() }
    }
}

impl Response {
    pub fn failure(error: String) -> Response {
        Response { version: VERSION, error: Some(error), answer: Answer::default() }
    }

    pub fn success(answer: Answer) -> Response {
        Response { version: VERSION, error: None, answer }
    }
}

/// Sends `command` to the supervisor listening on `socket` and waits for its answer
/// (`timeout`: `None` waits as long as the command takes).
pub fn call(socket: &Path, command: Command, timeout: Option<Duration>) -> Result<Response, SupervisorError> {
    call_and_hold(socket, command, timeout).map(|(response, _)| response)
}

/// [`call`], keeping the connection: the supervisor ties an attached watch to it.
pub fn call_and_hold(
    socket: &Path,
    command: Command,
    timeout: Option<Duration>,
) -> Result<(Response, UnixStream), SupervisorError> {
    let unreachable =
        |e: std::io::Error| SupervisorError::Unreachable { socket: socket.to_path_buf(), message: e.to_string() };
    let mut stream = UnixStream::connect(socket).map_err(unreachable)?;
    stream.set_read_timeout(timeout).map_err(unreachable)?;
    let mut line = serde_json::to_vec(&Request { version: VERSION, command })
        .map_err(|e| SupervisorError::Protocol(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(unreachable)?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).map_err(unreachable)?;
    if answer.is_empty() {
        return Err(SupervisorError::Protocol("the supervisor closed the connection without an answer".into()));
    }
    let response: Response = serde_json::from_str(&answer)
        .map_err(|e| SupervisorError::Protocol(format!("undecodable answer {answer:?}: {e}")))?;
    if response.version != VERSION {
        return Err(SupervisorError::Protocol(format!(
            "the supervisor speaks protocol {}, expected {VERSION}",
            response.version
        )));
    }
    Ok((response, stream))
}
