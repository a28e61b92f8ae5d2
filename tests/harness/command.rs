//! Running a child process with a deadline, its output captured to files (so a chatty child
//! never blocks on a full pipe).

use std::fmt;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished command did.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The command line, for messages.
    pub line: String,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Ran {
    /// Panics with the whole output unless the command exited 0.
    pub fn expect_success(&self, what: &str) -> &Self {
        assert_eq!(self.code, Some(0), "{what} failed\n{self}");
        self
    }
}

impl fmt::Display for Ran {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.line)?;
        writeln!(f, "exit: {:?} after {:.1?}", self.code, self.elapsed)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr ---\n{}", self.stderr.trim_end())
    }
}

/// Runs `command` with `stdin` fed in (closed when `None`), killing it and panicking if it
/// outlives `timeout`.
pub fn run_bounded(mut command: Command, stdin: Option<&[u8]>, timeout: Duration) -> Ran {
    let line = format!("{command:?}");
    let out = tempfile::tempfile().expect("temp file for stdout");
    let err = tempfile::tempfile().expect("temp file for stderr");
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(out.try_clone().expect("dup stdout file"))
        .stderr(err.try_clone().expect("dup stderr file"));
    let started = Instant::now();
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {line}: {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A child that exits without reading its stdin is not our failure here.
        let _ = pipe.write_all(input);
    }
    let status = loop {
        match child.try_wait().expect("waiting for a child") {
            Some(status) => break status,
            None if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{line} did not finish within {timeout:?}; killed\n{}",
                    read_all(&out) + &read_all(&err)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    Ran {
        line,
        code: status.code(),
        stdout: read_all(&out),
        stderr: read_all(&err),
        elapsed: started.elapsed(),
    }
}

fn read_all(file: &std::fs::File) -> String {
    use std::io::{Read, Seek};
    let mut file = file;
    let mut bytes = Vec::new();
    if file.seek(std::io::SeekFrom::Start(0)).is_ok() {
        let _ = file.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
