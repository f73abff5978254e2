//! Walks `[status_page]`: the public status page's title and the checks it shows, each of which
//! must name a `[[check]]` (an error at that name's position otherwise).

use toml::de::{DeTable, DeValue};

use super::{Cx, closest, get, interpolate};
use crate::config::{DEFAULT_STATUS_PAGE_TITLE, StatusPageConfig};

const STATUS_PAGE_KEYS: &[&str] = &["title", "checks"];

impl Cx<'_> {
    /// `[status_page]`, when the document has one (and it is valid).
    pub(super) fn status_page_in(&mut self, root: &DeTable<'_>) -> Option<StatusPageConfig> {
        let (_, value) = get(root, "status_page")?;
        let DeValue::Table(table) = value.get_ref() else {
            self.error(
                value.span(),
                "status_page",
                format!(
                    "expected a table `[status_page]`, found {}",
                    value.get_ref().type_str()
                ),
            );
            return None;
        };
        self.unknown_keys(table, "status_page", STATUS_PAGE_KEYS);
        let title = match get(table, "title") {
            Some((_, value)) => self.string(value, "status_page.title").and_then(|title| {
                if title.trim().is_empty() {
                    self.error(
                        value.span(),
                        "status_page.title",
                        "must not be empty".to_string(),
                    );
                    None
                } else {
                    Some(title)
                }
            }),
            None => Some(DEFAULT_STATUS_PAGE_TITLE.to_string()),
        };
        let Some((_, list)) = get(table, "checks") else {
            self.error(
                value.span(),
                "status_page",
                "missing key `checks`: the checks the page shows, e.g. `checks = [\"web\"]`"
                    .to_string(),
            );
            return None;
        };
        let items = self.array(list, "status_page.checks", "check names")?;
        let known = self.check_names(root);
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        let mut checks: Vec<String> = Vec::new();
        let mut ok = true;
        for (index, item) in items.iter().enumerate() {
            let key = format!("status_page.checks[{index}]");
            let Some(name) = self.string(item, &key) else {
                ok = false;
                continue;
            };
            if !known.contains(&name.as_str()) {
                let hint = match closest(&name, &known) {
                    Some(near) => format!(" (did you mean `{near}`?)"),
                    None => String::new(),
                };
                self.error(item.span(), &key, format!("no check named `{name}`{hint}"));
                ok = false;
            } else if checks.contains(&name) {
                self.error(item.span(), &key, format!("`{name}` is listed twice"));
                ok = false;
            } else {
                checks.push(name);
            }
        }
        Some(StatusPageConfig {
            title: title?,
            checks: ok.then_some(checks)?,
        })
    }

    /// The names written in `[[check]]` tables, valid checks or not (a broken check has its own
    /// error already; naming it here is not another one).
    fn check_names(&self, root: &DeTable<'_>) -> Vec<String> {
        let Some(DeValue::Array(items)) = get(root, "check").map(|(_, v)| v.get_ref()) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| match item.get_ref() {
                DeValue::Table(table) => match get(table, "name").map(|(_, v)| v.get_ref()) {
                    Some(DeValue::String(name)) => interpolate(name, self.env).ok(),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }
}
