//! Every probe scenario, played on the harness.

use host_tests::scenarios;

#[test]
fn every_scenario_passes_on_the_harness() {
    let all = scenarios::all();
    assert!(all.len() >= 15);
    let mut failures = Vec::new();
    for s in &all {
        match scenarios::run(s) {
            Ok(o) => {
                if let Err(e) = scenarios::check(s, &o) {
                    failures.push(e);
                }
            }
            Err(e) => failures.push(format!("scenario {}: {e:#}", s.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn scenarios_serialize_for_the_envoy_runner() {
    let json = serde_json::to_string(&scenarios::all()).unwrap();
    let back: Vec<scenarios::Scenario> = serde_json::from_str(&json).unwrap();
    assert_eq!(back.len(), scenarios::all().len());
}
