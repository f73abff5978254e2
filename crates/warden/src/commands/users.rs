//! `users add`, `users list` and `users remove`: the people who sign in to the web UI with a
//! password, managed through the hub's API (admin token).

use std::io::{BufRead as _, IsTerminal as _};

use anyhow::Context as _;
use clap::Subcommand;

use super::{block_on, client, hub_failure, print, print_json};
use crate::Failure;
use crate::cli::HubArgs;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user who signs in to the web UI with a password (asked twice on a terminal).
    Add {
        /// The user's name: 1-64 letters, digits, `-`, `_`, `.` or `@`.
        name: String,
        /// admin, operator (run/cancel/ack), viewer (read).
        #[arg(long, value_parser = ["admin", "operator", "viewer"])]
        role: String,
        /// Read the password from the first line of stdin instead of asking.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users (never their passwords).
    List,
    /// Remove a user; their web UI sessions end at once.
    Remove {
        /// The user's name.
        name: String,
    },
}

pub(crate) fn users(hub: &HubArgs, command: &UsersCommand) -> Result<(), Failure> {
    match command {
        UsersCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            let client = client(hub)?;
            let password = read_password(name, *password_stdin)?;
            let body = block_on(client.create_user(name, role, &password))?.map_err(hub_failure)?;
            if hub.json {
                return print_json(&body);
            }
            print(&format!(
                "user {} ({}) added\n",
                body["name"].as_str().unwrap_or(name),
                body["role"].as_str().unwrap_or(role)
            ))
        }
        UsersCommand::List => {
            let client = client(hub)?;
            let body = block_on(client.users())?.map_err(hub_failure)?;
            if hub.json {
                return print_json(&body);
            }
            let users = body["users"].as_array().cloned().unwrap_or_default();
            let mut text = format!("{:<32}  {:<9}  CREATED\n", "NAME", "ROLE");
            for user in &users {
                text.push_str(&format!(
                    "{:<32}  {:<9}  {}\n",
                    user["name"].as_str().unwrap_or_default(),
                    user["role"].as_str().unwrap_or_default(),
                    user["created_at"]
                        .as_i64()
                        .map(warden_client::render::utc_timestamp)
                        .unwrap_or_default()
                ));
            }
            print(&text)
        }
        UsersCommand::Remove { name } => {
            let client = client(hub)?;
            let body = block_on(client.remove_user(name))?.map_err(hub_failure)?;
            if hub.json {
                return print_json(&body);
            }
            let sessions = body["sessions_revoked"].as_u64().unwrap_or(0);
            print(&format!(
                "user {name} removed; {sessions} session{} revoked\n",
                if sessions == 1 { "" } else { "s" }
            ))
        }
    }
}

/// The new password: the first line of stdin with `--password-stdin` or when stdin is not a
/// terminal, else asked twice on the terminal without echo.
fn read_password(name: &str, from_stdin: bool) -> Result<String, Failure> {
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        let password = line
            .strip_suffix('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .unwrap_or(&line);
        if password.is_empty() {
            return Err(Failure::Config(
                "error: no password on stdin (give it as the first line)".to_string(),
            ));
        }
        return Ok(password.to_string());
    }
    let first = rpassword::prompt_password(format!("password for {name}: "))
        .context("cannot read the password from the terminal")?;
    let second = rpassword::prompt_password("the same again: ")
        .context("cannot read the password from the terminal")?;
    if first != second {
        return Err(Failure::Config(
            "error: the two passwords differ; nothing was changed".to_string(),
        ));
    }
    Ok(first)
}
