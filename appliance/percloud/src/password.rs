//! Reading a new password: twice with no echo at a terminal, one line from stdin otherwise
//! (so scripts and tests can pipe it in).

use std::io::{BufRead, IsTerminal};

use crate::error::CliError;

/// Reads, checks and hashes a new password.
pub fn read_new(prompt: &str) -> Result<String, CliError> {
    let password = if std::io::stdin().is_terminal() {
        let first = prompt_hidden(&format!("{prompt}: "))?;
        let second = prompt_hidden("Again: ")?;
        if first != second {
            return Err(CliError::Usage("the two passwords differ".into()));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|source| CliError::Io {
                what: "reading the password from stdin".into(),
                source,
            })?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    percloud_accounts::check_new_password(&password)?;
    Ok(percloud_accounts::hash_password(&password)?)
}

fn prompt_hidden(prompt: &str) -> Result<String, CliError> {
    rpassword::prompt_password(prompt).map_err(|source| CliError::Io {
        what: "reading the password from the terminal".into(),
        source,
    })
}
