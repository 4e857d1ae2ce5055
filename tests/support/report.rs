//! Reading stage-import's JSON report (stdout), the same way for every backend's tests.

use serde_json::Value;

use super::Run;

pub fn parse_report(out: &Run) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: stdout {:?}", out.stdout))
}

/// Every file outcome of `source`'s loads, in report order.
pub fn files<'a>(report: &'a Value, source: &str) -> Vec<&'a Value> {
    report["loads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["source"] == source)
        .flat_map(|l| l["files"].as_array().unwrap())
        .collect()
}

/// The distinct file statuses of the whole run, sorted.
pub fn statuses(report: &Value) -> Vec<String> {
    let mut all: Vec<String> = report["loads"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["files"].as_array().unwrap())
        .map(|f| f["status"].as_str().unwrap().to_owned())
        .collect();
    all.sort();
    all.dedup();
    all
}
