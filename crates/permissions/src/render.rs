//! A plan as people and programs read it: grouped by role and user for review, as SQL for a
//! dry run (what `permifrost --dry` printed), as JSON for tools (a CI comment, a dashboard).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::json;

use crate::plan::{Change, Plan, Subject};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Sql,
    Json,
}

impl Format {
    pub const NAMES: &'static [&'static str] = &["text", "sql", "json"];

    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "text" => Some(Format::Text),
            "sql" => Some(Format::Sql),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

/// The plan in `format`; `spec_file` prefixes problem locations.
pub fn render(plan: &Plan, format: Format, spec_file: &str) -> String {
    match format {
        Format::Text => text(plan, spec_file),
        Format::Sql => sql(plan, spec_file),
        Format::Json => json(plan, spec_file),
    }
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub statements: usize,
    pub roles_created: usize,
    pub users_created: usize,
    pub grant_statements: usize,
    pub grants_added: usize,
    pub revoke_statements: usize,
    pub grants_revoked: usize,
    pub ownership_transfers: usize,
    pub user_changes: usize,
}

pub fn summary(plan: &Plan) -> Summary {
    let mut s = Summary {
        statements: plan.changes.len(),
        ..Summary::default()
    };
    for change in &plan.changes {
        match change {
            Change::CreateRole { .. } => s.roles_created += 1,
            Change::CreateUser { .. } => s.users_created += 1,
            Change::Grant { grants, .. } => {
                s.grant_statements += 1;
                s.grants_added += grants;
            }
            Change::GrantRole { .. } => {
                s.grant_statements += 1;
                s.grants_added += 1;
            }
            Change::Revoke { .. } | Change::RevokeRole { .. } | Change::UnsetPassword { .. } => {
                s.revoke_statements += 1;
                s.grants_revoked += change.revoked_grants();
            }
            Change::TransferOwnership { .. } => s.ownership_transfers += 1,
            Change::AlterUser { .. } | Change::ConvertToService { .. } => s.user_changes += 1,
        }
    }
    s
}

fn summary_line(plan: &Plan) -> String {
    let s = summary(plan);
    if s.statements == 0 {
        return "No changes: the account matches the spec.".to_owned();
    }
    let mut parts = Vec::new();
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    if s.roles_created > 0 {
        parts.push(plural(s.roles_created, "role to create", "roles to create"));
    }
    if s.users_created > 0 {
        parts.push(plural(s.users_created, "user to create", "users to create"));
    }
    if s.grant_statements > 0 {
        parts.push(format!(
            "{} ({})",
            plural(s.grant_statements, "grant statement", "grant statements"),
            plural(s.grants_added, "grant", "grants")
        ));
    }
    if s.ownership_transfers > 0 {
        parts.push(plural(
            s.ownership_transfers,
            "ownership transfer",
            "ownership transfers",
        ));
    }
    if s.user_changes > 0 {
        parts.push(plural(s.user_changes, "user to alter", "users to alter"));
    }
    if s.revoke_statements > 0 {
        parts.push(format!(
            "{} ({})",
            plural(s.revoke_statements, "revoke statement", "revoke statements"),
            plural(s.grants_revoked, "grant", "grants")
        ));
    }
    format!("Plan: {} statements: {}.", s.statements, parts.join(", "))
}

fn problem_lines(plan: &Plan, spec_file: &str) -> Vec<String> {
    plan.problems
        .iter()
        .map(|p| match p.at {
            Some(at) => format!("{spec_file}:{at}: {}", p.message),
            None => p.message.clone(),
        })
        .collect()
}

fn text(plan: &Plan, spec_file: &str) -> String {
    let mut out = String::new();
    out.push_str(&summary_line(plan));
    out.push('\n');
    let mut groups: BTreeMap<Subject, Vec<&Change>> = BTreeMap::new();
    for change in &plan.changes {
        groups.entry(change.subject()).or_default().push(change);
    }
    for (subject, changes) in groups {
        out.push('\n');
        match subject {
            Subject::Role(r) => out.push_str(&format!("role {r}\n")),
            Subject::User(u) => out.push_str(&format!("user {u}\n")),
        }
        for change in changes {
            out.push_str(&format!("  {}\n", change.describe()));
        }
    }
    let problems = problem_lines(plan, spec_file);
    if !problems.is_empty() {
        out.push_str("\nProblems (nothing can be applied until they are fixed):\n");
        for p in problems {
            out.push_str(&format!("  {p}\n"));
        }
    }
    if !plan.refusals.is_empty() {
        out.push_str("\nRefused by the guard rails:\n");
        for r in &plan.refusals {
            out.push_str(&format!("  {r}\n"));
        }
    }
    out
}

fn sql(plan: &Plan, spec_file: &str) -> String {
    let mut out = format!("-- {}\n", summary_line(plan));
    for p in problem_lines(plan, spec_file) {
        out.push_str(&format!("-- PROBLEM: {}\n", one_line(&p)));
    }
    for r in &plan.refusals {
        out.push_str(&format!("-- REFUSED: {}\n", one_line(r)));
    }
    for change in &plan.changes {
        out.push_str(&change.sql());
        out.push_str(";\n");
    }
    out
}

/// Comments end at a line break: a name with a newline must not end one early.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

fn json(plan: &Plan, spec_file: &str) -> String {
    let changes: Vec<serde_json::Value> = plan
        .changes
        .iter()
        .map(|c| {
            let mut value = serde_json::to_value(c).unwrap_or_default();
            if let Some(map) = value.as_object_mut() {
                map.insert("sql".into(), json!(c.sql()));
            }
            value
        })
        .collect();
    let problems: Vec<serde_json::Value> = plan
        .problems
        .iter()
        .map(|p| {
            json!({
                "file": spec_file,
                "line": p.at.map(|a| a.line),
                "column": p.at.map(|a| a.column),
                "message": p.message,
            })
        })
        .collect();
    let doc = json!({
        "summary": summary(plan),
        "applicable": plan.is_applicable(),
        "changes": changes,
        "problems": problems,
        "refusals": plan.refusals,
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}
