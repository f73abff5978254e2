//! `incidents`, `ack`, `silence` and `notify test`: alerting from the command line.

use clap::{Args, Subcommand};
use warden_client::alerting::{
    render_incident, render_incidents, render_notifier_test, render_silences,
};

use super::{block_on, client, hub_failure, now_ms, print, print_json};
use crate::Failure;
use crate::cli::HubArgs;

#[derive(Debug, Args)]
pub struct IncidentsArgs {
    /// Show this incident with its timeline instead of a list.
    pub id: Option<i64>,
    /// Only incidents not resolved yet.
    #[arg(long, conflicts_with = "id")]
    pub open: bool,
    /// How many to list.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000), conflicts_with = "id")]
    pub limit: u32,
    /// Only incidents older than this id (for the next page).
    #[arg(long, value_name = "ID", conflicts_with = "id")]
    pub before: Option<i64>,
}

#[derive(Debug, Args)]
pub struct AckArgs {
    /// The incident's id (see `warden incidents --open`).
    pub id: i64,
    /// Why, or what is being done; kept on the incident's timeline.
    #[arg(long, default_value = "")]
    pub note: String,
}

#[derive(Debug, Args)]
pub struct SilenceArgs {
    /// The checks to silence: a name or a glob, e.g. 'web*' (quote it for the shell).
    #[arg(long, value_name = "GLOB", required_unless_present_any = ["list", "delete"])]
    pub check: Option<String>,
    /// How long, e.g. `30m` or `2h`.
    #[arg(long = "for", value_name = "DURATION", required_unless_present_any = ["list", "delete"])]
    pub duration: Option<String>,
    /// Why (kept with the silence).
    #[arg(long, default_value = "")]
    pub note: String,
    /// List the silences in force instead.
    #[arg(long, conflicts_with_all = ["check", "duration", "delete"])]
    pub list: bool,
    /// End this silence now instead.
    #[arg(long, value_name = "ID", conflicts_with_all = ["check", "duration"])]
    pub delete: Option<i64>,
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a test message through a notifier and print the outcome (exit 1 if not delivered).
    Test {
        /// The notifier's name in the hub's config.
        name: String,
    },
}

pub(crate) fn incidents(hub: &HubArgs, args: &IncidentsArgs) -> Result<(), Failure> {
    let client = client(hub)?;
    if let Some(id) = args.id {
        let incident = block_on(client.incident(id))?.map_err(hub_failure)?;
        if hub.json {
            return print_json(&incident);
        }
        return print(&render_incident(&incident, now_ms()));
    }
    let page = block_on(client.incidents(args.open, Some(args.limit), args.before))?
        .map_err(hub_failure)?;
    if hub.json {
        return print_json(&page);
    }
    print(&render_incidents(&page.incidents, now_ms()))?;
    if let Some(before) = page.next_before {
        eprintln!("older incidents: add --before {before}");
    }
    Ok(())
}

pub(crate) fn ack(hub: &HubArgs, args: &AckArgs) -> Result<(), Failure> {
    let client = client(hub)?;
    let incident = block_on(client.acknowledge(args.id, &args.note))?.map_err(hub_failure)?;
    if hub.json {
        return print_json(&incident);
    }
    print(&format!(
        "acknowledged incident {} ({} on {}) as {}\n",
        incident.id,
        incident.rule,
        incident.subject,
        incident.acknowledged_by.as_deref().unwrap_or("?")
    ))
}

pub(crate) fn silence(hub: &HubArgs, args: &SilenceArgs) -> Result<(), Failure> {
    let client = client(hub)?;
    if args.list {
        let silences = block_on(client.silences(false))?.map_err(hub_failure)?;
        if hub.json {
            return print_json(&silences);
        }
        return print(&render_silences(&silences, now_ms()));
    }
    if let Some(id) = args.delete {
        let answer = block_on(client.delete_silence(id))?.map_err(hub_failure)?;
        if hub.json {
            return print_json(&answer);
        }
        return print(&format!("silence {id} ended\n"));
    }
    let (Some(check), Some(duration)) = (&args.check, &args.duration) else {
        return Err(Failure::Config(
            "error: give --check GLOB and --for DURATION (or --list, or --delete ID)".to_string(),
        ));
    };
    if let Err(error) = warden_core::duration::parse_duration(duration) {
        return Err(Failure::Config(format!("error: --for: {error}")));
    }
    let silence =
        block_on(client.create_silence(check, duration, &args.note))?.map_err(hub_failure)?;
    if hub.json {
        return print_json(&silence);
    }
    print(&render_silences(std::slice::from_ref(&silence), now_ms()))
}

pub(crate) fn notify(hub: &HubArgs, command: &NotifyCommand) -> Result<(), Failure> {
    let NotifyCommand::Test { name } = command;
    let client = client(hub)?;
    let test = block_on(client.test_notifier(name))?.map_err(hub_failure)?;
    if hub.json {
        print_json(&test)?;
    } else {
        print(&render_notifier_test(&test))?;
    }
    if test.delivered {
        Ok(())
    } else {
        Err(Failure::Exit(1))
    }
}
