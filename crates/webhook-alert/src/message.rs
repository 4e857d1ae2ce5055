//! The post: what a person triaging from the channel needs to see first (what failed and why),
//! then where to look (DAG, task, log links) and when. Pure: no I/O, no clock.

use serde::Serialize;
use url::Url;

/// What is known about the failure. Every field may be missing; the message says what it knows.
#[derive(Debug, Default, Clone)]
pub struct Failure {
    pub dag_id: Option<String>,
    pub task_id: Option<String>,
    pub run_id: Option<String>,
    pub try_number: Option<u32>,
    pub execution_date: Option<String>,
    /// Already formatted for people, e.g. `2026-11-27 03:12:09 UTC`.
    pub failed_at: String,
    pub log_url: Option<Url>,
    pub airflow_base_url: Option<Url>,
    /// Already scrubbed of secrets.
    pub error: Option<String>,
    /// The failed job's exit code, when known (watch mode reads it from the status file).
    pub exit_code: Option<u8>,
    /// The Kubernetes CronJob whose run failed, and the Job it created for that run (watch
    /// mode, from the kit's run context).
    pub cronjob: Option<String>,
    pub k8s_job: Option<String>,
}

/// The JSON body of a Mattermost incoming-webhook post.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Payload {
    pub text: String,
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon_emoji: Option<String>,
}

/// The headline quotes the error's first line, at most this many characters.
const HEADLINE_ERROR_CHARS: usize = 200;
/// Ids and dates are quoted at most this long, so that the details always fit in a post.
const FIELD_CHARS: usize = 250;

/// The post's markdown text, at most `max_chars` characters (Mattermost counts code points).
pub fn text(failure: &Failure, max_chars: usize) -> String {
    let mut head = headline(failure);
    head.push_str("\n\n");
    for line in details(failure) {
        head.push_str(&line);
        head.push('\n');
    }
    let Some(error) = failure.error.as_deref().filter(|e| !e.trim().is_empty()) else {
        return cut(&head, max_chars).0;
    };
    let fence = "`".repeat(longest_backtick_run(error).max(2) + 1);
    head.push_str(&format!("\n{fence}\n"));
    let tail = format!("\n{fence}");
    let error_chars = error.chars().count();
    let fixed = head.chars().count() + tail.chars().count();
    if fixed + error_chars <= max_chars {
        return format!("{head}{error}{tail}");
    }
    // The marker's length depends on the numbers in it; reserve room for the widest.
    let marker_room = marker(error_chars, error_chars).chars().count();
    let budget = max_chars.saturating_sub(fixed + marker_room);
    let (shown, shown_chars) = cut(error, budget);
    let out = format!("{head}{shown}{tail}{}", marker(shown_chars, error_chars));
    cut(&out, max_chars).0
}

fn marker(shown: usize, total: usize) -> String {
    format!(
        "\n*… error text cut to fit the post: {shown} of {total} characters shown; see the log.*"
    )
}

fn headline(failure: &Failure) -> String {
    let what = match (&failure.task_id, &failure.dag_id, &failure.cronjob) {
        (Some(task), Some(dag), _) => format!("Task {} in DAG {} failed", code(task), code(dag)),
        (Some(task), None, Some(cronjob)) => {
            format!("{} in CronJob {} failed", code(task), code(cronjob))
        }
        (None, _, Some(cronjob)) => format!("CronJob {} failed", code(cronjob)),
        (Some(task), None, None) => format!("Task {} failed", code(task)),
        (None, Some(dag), None) => format!("DAG {} failed", code(dag)),
        (None, None, None) => "Airflow task failed".to_owned(),
    };
    let first_line = failure
        .error
        .as_deref()
        .and_then(|e| e.lines().map(str::trim).find(|l| !l.is_empty()));
    match first_line {
        Some(line) => format!(
            ":red_circle: **{what}:** {}",
            escape_markdown(&cut(line, HEADLINE_ERROR_CHARS).0)
        ),
        None => format!(":red_circle: **{what}** (no error text was given)"),
    }
}

fn details(failure: &Failure) -> Vec<String> {
    let base = failure.airflow_base_url.as_ref();
    let dag = failure.dag_id.as_deref();
    let task = failure.task_id.as_deref();
    let run = failure.run_id.as_deref();
    let mut lines = Vec::new();
    if let Some(dag) = dag {
        let link = base.map(|b| airflow_link(b, &["dags", dag]));
        lines.push(format!("**DAG:** {}", linked(dag, link.as_ref())));
    }
    if let Some(task) = task {
        let link = match (base, dag, run) {
            (Some(b), Some(dag), Some(run)) => Some(task_instance_link(b, dag, run, task)),
            (Some(b), Some(dag), None) => Some(airflow_link(b, &["dags", dag, "tasks", task])),
            _ => None,
        };
        let mut line = format!("**Task:** {}", linked(task, link.as_ref()));
        if let Some(try_number) = failure.try_number {
            line.push_str(&format!(" (try {try_number})"));
        }
        lines.push(line);
    } else if let Some(try_number) = failure.try_number {
        lines.push(format!("**Try:** {try_number}"));
    }
    if let Some(cronjob) = &failure.cronjob {
        let mut line = format!("**CronJob:** {}", code(cronjob));
        if let Some(job) = &failure.k8s_job {
            line.push_str(&format!(" (Job {})", code(job)));
        }
        lines.push(line);
    }
    if let Some(run) = run {
        lines.push(format!("**Run:** {}", code(run)));
    }
    if let Some(date) = &failure.execution_date {
        lines.push(format!("**Execution date:** {}", code(date)));
    }
    if let Some(code) = failure.exit_code {
        let meaning = job_kit::Exit::from_code(code).map_or_else(
            || "outside the jobs' convention: killed by a signal?".to_owned(),
            |exit| exit.meaning().to_owned(),
        );
        lines.push(format!(
            "**Exit code:** {code} ({})",
            escape_markdown(&meaning)
        ));
    }
    lines.push(format!("**Failed at:** {}", failure.failed_at));
    let log = failure
        .log_url
        .clone()
        .or_else(|| match (base, dag, run, task) {
            (Some(b), Some(dag), Some(run), Some(task)) => {
                let mut url = task_instance_link(b, dag, run, task);
                if let Some(n) = failure.try_number {
                    url.query_pairs_mut()
                        .append_pair("try_number", &n.to_string());
                }
                Some(url)
            }
            _ => None,
        });
    if let Some(log) = log {
        lines.push(format!(
            "**Log:** [View the task log]({})",
            markdown_url(&log)
        ));
    }
    lines
}

/// Airflow 3's page for one task instance; its log is the page's first tab.
fn task_instance_link(base: &Url, dag: &str, run: &str, task: &str) -> Url {
    airflow_link(base, &["dags", dag, "runs", run, "tasks", task])
}

/// `segments` appended to the base URL's path, each percent-encoded (run ids hold `:` and `+`).
fn airflow_link(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

fn linked(label: &str, url: Option<&Url>) -> String {
    match url {
        Some(url) => format!(
            "[{}]({})",
            escape_markdown(&short(label)),
            markdown_url(url)
        ),
        None => code(label),
    }
}

/// Parentheses would end a markdown link early.
fn markdown_url(url: &Url) -> String {
    url.as_str().replace('(', "%28").replace(')', "%29")
}

/// An inline code span that survives backticks in the value.
fn code(value: &str) -> String {
    let value = short(value);
    let fence = "`".repeat(longest_backtick_run(&value) + 1);
    let pad = if value.starts_with('`') || value.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{value}{pad}{fence}")
}

fn short(value: &str) -> String {
    cut(value, FIELD_CHARS).0
}

fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\`*_[]()<>#~|".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// At most `max` characters of `text`, cut on a character boundary (never inside a UTF-8
/// sequence), with the number of characters kept.
fn cut(text: &str, max: usize) -> (String, usize) {
    match text.char_indices().nth(max) {
        Some((end, _)) => (text[..end].to_owned(), max),
        None => (text.to_owned(), text.chars().count()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> Failure {
        Failure {
            dag_id: Some("stage_import".into()),
            task_id: Some("licenses".into()),
            run_id: Some("scheduled__2026-11-26T00:00:00+00:00".into()),
            try_number: Some(2),
            execution_date: Some("2026-11-26T00:00:00+00:00".into()),
            failed_at: "2026-11-27 03:12:09 UTC".into(),
            log_url: None,
            airflow_base_url: Some(Url::parse("https://airflow.example.com/").unwrap()),
            error: Some("COPY failed: 3 files\nline 2\nline 3".into()),
            exit_code: None,
            cronjob: None,
            k8s_job: None,
        }
    }

    #[test]
    fn a_cronjobs_failure_names_the_cronjob_and_its_job() {
        let failed = Failure {
            task_id: Some("pg-replicate".into()),
            run_id: Some("pg-replicate-29410380-x7k2p".into()),
            cronjob: Some("pg-replicate".into()),
            k8s_job: Some("pg-replicate-29410380".into()),
            failed_at: "2026-11-27 03:12:09 UTC".into(),
            exit_code: Some(3),
            error: Some("pg-replicate: salesforce.account refused".into()),
            ..Failure::default()
        };
        let text = text(&failed, 16383);
        assert!(
            text.starts_with(
                ":red_circle: **`pg-replicate` in CronJob `pg-replicate` failed:** pg-replicate: \
                 salesforce.account refused\n\n**Task:** `pg-replicate`\n\
                 **CronJob:** `pg-replicate` (Job `pg-replicate-29410380`)\n\
                 **Run:** `pg-replicate-29410380-x7k2p`\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn full_message() {
        let expected = "\
:red_circle: **Task `licenses` in DAG `stage_import` failed:** COPY failed: 3 files

**DAG:** [stage\\_import](https://airflow.example.com/dags/stage_import)
**Task:** [licenses](https://airflow.example.com/dags/stage_import/runs/scheduled__2026-11-26T00:00:00+00:00/tasks/licenses) (try 2)
**Run:** `scheduled__2026-11-26T00:00:00+00:00`
**Execution date:** `2026-11-26T00:00:00+00:00`
**Failed at:** 2026-11-27 03:12:09 UTC
**Log:** [View the task log](https://airflow.example.com/dags/stage_import/runs/scheduled__2026-11-26T00:00:00+00:00/tasks/licenses?try_number=2)

```
COPY failed: 3 files
line 2
line 3
```";
        assert_eq!(text(&failure(), 16383), expected);
    }

    #[test]
    fn says_what_it_knows_when_it_knows_little() {
        let bare = Failure {
            failed_at: "2026-11-27 03:12:09 UTC".into(),
            ..Failure::default()
        };
        assert_eq!(
            text(&bare, 16383),
            ":red_circle: **Airflow task failed** (no error text was given)\n\n\
             **Failed at:** 2026-11-27 03:12:09 UTC\n"
        );
        let no_base = Failure {
            airflow_base_url: None,
            ..failure()
        };
        let out = text(&no_base, 16383);
        assert!(
            out.contains("**DAG:** `stage_import`\n**Task:** `licenses` (try 2)"),
            "{out}"
        );
        assert!(!out.contains("**Log:**"), "{out}");
    }

    #[test]
    fn long_error_is_cut_to_fit_with_a_marker_on_a_char_boundary() {
        let error: String = "é🦀x".repeat(40_000);
        let f = Failure {
            error: Some(error.clone()),
            ..failure()
        };
        let out = text(&f, 16383);
        assert!(out.chars().count() <= 16383, "{}", out.chars().count());
        assert!(out.chars().count() > 16000);
        assert!(
            out.contains("of 120000 characters shown; see the log.*"),
            "{}",
            &out[out.len() - 200..]
        );
        let body = out.split("```\n").nth(1).unwrap();
        assert!(error.starts_with(body.trim_end_matches("\n```").split('\n').next().unwrap()));
    }

    #[test]
    fn backticks_in_the_error_cannot_close_the_block() {
        let f = Failure {
            error: Some("bad ```sql``` here".into()),
            ..failure()
        };
        let out = text(&f, 16383);
        assert!(out.contains("\n````\nbad ```sql``` here\n````"), "{out}");
        assert!(
            out.contains("failed:** bad \\`\\`\\`sql\\`\\`\\` here"),
            "{out}"
        );
    }

    #[test]
    fn the_exit_code_is_shown_with_its_meaning() {
        let f = Failure {
            exit_code: Some(3),
            ..failure()
        };
        let out = text(&f, 16383);
        assert!(
            out.contains(
                "**Execution date:** `2026-11-26T00:00:00+00:00`\n\
                 **Exit code:** 3 (partial success: finished, but some items failed)\n\
                 **Failed at:**"
            ),
            "{out}"
        );
        let killed = text(
            &Failure {
                exit_code: Some(137),
                ..failure()
            },
            16383,
        );
        assert!(killed.contains("**Exit code:** 137 (outside the jobs' convention"));
    }

    #[test]
    fn cut_never_splits_a_character() {
        assert_eq!(cut("aé🦀b", 3), ("aé🦀".to_owned(), 3));
        assert_eq!(cut("ab", 5), ("ab".to_owned(), 2));
    }

    #[test]
    fn links_encode_awkward_ids() {
        let base = Url::parse("https://x.test/airflow/").unwrap();
        let url = task_instance_link(&base, "d", "manual__2026-11-26T00:00:00+00:00", "t (1)");
        assert_eq!(
            markdown_url(&url),
            "https://x.test/airflow/dags/d/runs/manual__2026-11-26T00:00:00+00:00/tasks/t%20%281%29"
        );
    }
}
