//! Building images from Dockerfiles (issue 15), so far the front end: the Dockerfile
//! parser ([`dockerfile`]) and its word rules ([`words`]: splitting and variable
//! expansion). Execution on hoist's runtime, the layer cache and `hoist build` come next.

pub mod dockerfile;
pub mod words;

pub use dockerfile::{parse, Args, Dockerfile, Heredoc, Instruction, ParseError, Stage};
