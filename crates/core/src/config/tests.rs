//! Config tests for the public pages: `badge = true` on checks and `[status_page]`, their
//! values and their errors (each with FILE:LINE:COL and key path).

use expect_test::{Expect, expect};

use super::parse_config;

/// Parses `text` and renders the badges and status page, or every error.
fn check(text: &str, expect: &Expect) {
    let env = |name: &str| (name == "TEAM").then(|| "web".to_string());
    let rendered = match parse_config("warden.toml", text, &env) {
        Ok(config) => format!(
            "badges={:?} status_page={:?}\n",
            config.badges, config.status_page
        ),
        Err(errors) => format!("{errors}\n"),
    };
    expect.assert_eq(&rendered);
}

const CHECKS: &str = r#"
[[check]]
name = "web"
kind = "noop"
every = "1m"
badge = true

[[check]]
name = "db"
kind = "noop"
every = "1m"

[[check]]
name = "cron-job"
kind = "heartbeat"
period = "1h"
badge = true
"#;

#[test]
fn badges_are_opt_in_and_there_is_no_status_page_by_default() {
    check(
        CHECKS,
        &expect![[r#"
            badges={"cron-job", "web"} status_page=None
        "#]],
    );
}

#[test]
fn a_status_page_lists_configured_checks_in_order() {
    check(
        &format!(
            "{CHECKS}\n[status_page]\ntitle = \"Example status\"\nchecks = [\"db\", \"${{TEAM}}\"]\n"
        ),
        &expect![[r#"
            badges={"cron-job", "web"} status_page=Some(StatusPageConfig { title: "Example status", checks: ["db", "web"] })
        "#]],
    );
    check(
        &format!("{CHECKS}\n[status_page]\nchecks = []\n"),
        &expect![[r#"
            badges={"cron-job", "web"} status_page=Some(StatusPageConfig { title: "Status", checks: [] })
        "#]],
    );
}

#[test]
fn an_ill_typed_badge_is_an_error_at_its_value() {
    check(
        r#"
[[check]]
name = "web"
kind = "noop"
every = "1m"
badge = "yes"

[[check]]
name = "hb"
kind = "heartbeat"
period = "1h"
badge = 1

[[check]]
name = "broken"
kind = "noop"
badge = "no"
"#,
        &expect![[r#"
            warden.toml:6:9: check[0].badge: expected true or false, found string
            warden.toml:12:9: check[1].badge: expected true or false, found integer
            warden.toml:14:1: check[2]: missing schedule: give `every = "30s"` or `cron = "*/5 * * * *"`
            warden.toml:17:9: check[2].badge: expected true or false, found string
        "#]],
    );
    check(
        r#"
[[check]]
name = "web"
kind = "noop"
every = "1m"
bagde = true
"#,
        &expect![[r#"
            warden.toml:6:1: check[0].bagde: unknown key `bagde` (did you mean `badge`?); expected one of: name, kind, every, cron, timezone, timeout, overlap, labels, links, badge
        "#]],
    );
}

#[test]
fn a_status_page_names_only_configured_checks() {
    check(
        &format!(
            "{CHECKS}\n[status_page]\ntitle = \"\"\nchecks = [\"web\", \"dbb\", \"nope\", \"web\", 3]\ncolour = \"red\"\n"
        ),
        &expect![[r#"
            warden.toml:20:9: status_page.title: must not be empty
            warden.toml:21:18: status_page.checks[1]: no check named `dbb` (did you mean `db`?)
            warden.toml:21:25: status_page.checks[2]: no check named `nope`
            warden.toml:21:33: status_page.checks[3]: `web` is listed twice
            warden.toml:21:40: status_page.checks[4]: expected a string, found integer
            warden.toml:22:1: status_page.colour: unknown key `colour`; expected one of: title, checks
        "#]],
    );
    check(
        &format!("{CHECKS}\n[status_page]\ntitle = \"Status\"\n"),
        &expect![[r#"
            warden.toml:19:1: status_page: missing key `checks`: the checks the page shows, e.g. `checks = ["web"]`
        "#]],
    );
    check(
        &format!("status_page = [\"web\"]\n{CHECKS}"),
        &expect![[r#"
            warden.toml:1:15: status_page: expected a table `[status_page]`, found array
        "#]],
    );
    check(
        &format!("{CHECKS}\n[status_page]\nchecks = \"web\"\n"),
        &expect![[r#"
            warden.toml:20:10: status_page.checks: expected an array of check names, found string
        "#]],
    );
}
