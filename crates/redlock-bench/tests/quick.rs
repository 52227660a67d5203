//! The scenario runner end to end on a tiny budget: every scenario and contender must
//! produce its numbers. Speed is never asserted here.

use std::time::Duration;

use redlock_bench::{BenchOptions, Contender, Metric, Scenario};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_produces_numbers() {
    let options = BenchOptions {
        rounds: 1,
        duration: Duration::from_millis(300),
        latency_duration: Duration::from_millis(150),
        ..BenchOptions::quick()
    };
    let mut lines = Vec::new();
    let report = redlock_bench::run(&options, &mut |l| lines.push(l.to_owned()))
        .await
        .expect("benchmark run");
    let mut missing = Vec::new();
    for scenario in Scenario::ALL {
        for contender in scenario.contenders() {
            for &metric in scenario.metrics() {
                match report.summary(scenario, contender, metric) {
                    Some(s) if s.median.is_finite() && s.median >= 0.0 => {}
                    _ => missing.push(format!("{scenario} {contender} {metric}")),
                }
            }
            if matches!(
                scenario,
                Scenario::S1One
                    | Scenario::S1Three
                    | Scenario::S4
                    | Scenario::S5
                    | Scenario::S1Clusters
            ) || scenario.is_primitive()
            {
                let p50 = report.summary(scenario, contender, Metric::P50Us);
                assert!(
                    p50.is_some_and(|s| s.median > 0.0),
                    "{scenario} {contender}: no p50"
                );
            }
        }
        let rate = report.summary(scenario, Contender::Ours, Metric::OpsPerS);
        if matches!(scenario, Scenario::S2 | Scenario::S3) {
            assert!(
                rate.is_some_and(|s| s.median > 0.0),
                "{scenario}: ours made no progress"
            );
        }
    }
    assert!(
        missing.is_empty(),
        "figures missing: {missing:?}\nerrors: {:?}\nprogress:\n{}",
        report.errors,
        lines.join("\n")
    );
    // Every figure has a RESULT line, and the table, targets and plot render.
    let text = report.result_text();
    assert!(text.lines().all(|l| l.starts_with("RESULT lib=")));
    assert!(text.contains("RESULT lib=floor scenario=S1_3m metric=p50_us value="));
    assert!(report.table().contains("| ours |"));
    assert_eq!(report.targets().len(), 11);
    assert!(text.contains("RESULT lib=ours scenario=S1_3c metric=p50_us value="));
    let dir = tempfile::tempdir().expect("temp dir");
    report.write_docs(dir.path()).expect("write docs");
    let svg = std::fs::read_to_string(dir.path().join(redlock_bench::PLOT_FILE)).expect("svg");
    assert!(svg.contains("<svg") && svg.contains("ours"));
    let md = std::fs::read_to_string(dir.path().join("BENCHMARKS.md")).expect("md");
    assert!(md.contains("## Machine") && md.contains("RESULT lib=ours"));
    assert!(md.contains("## Redis Cluster members (S1_3c)"));
    assert!(md.contains("## Peer comparison in Python: tokio_redlock against aioredlock"));
    // The primitives' section: one row per primitive beside the mutex, its own RESULT lines,
    // and it can be rewritten alone.
    assert!(md.contains(redlock_bench::SECTION_BEGIN) && md.contains(redlock_bench::SECTION_END));
    for id in ["multi3_3m", "read_3m", "write_3m", "permit_3m"] {
        assert!(
            md.contains(&format!(
                "RESULT lib=ours scenario={id} metric=p50_us value="
            )),
            "{id} missing from the page"
        );
    }
    let page = md.replace("| multi3_3m (", "| edited (");
    std::fs::write(dir.path().join("BENCHMARKS.md"), &page).expect("edit");
    report
        .write_primitives_section(dir.path())
        .expect("write the section");
    let rewritten = std::fs::read_to_string(dir.path().join("BENCHMARKS.md")).expect("md");
    assert_eq!(rewritten.len(), md.len(), "only the section was rewritten");
    assert!(rewritten.contains("| multi3_3m (") && !rewritten.contains("| edited ("));
}
