//! `redlock-bench`: runs every scenario and prints the table, the targets and the `RESULT`
//! lines; `--write-docs DIR` also writes `DIR/BENCHMARKS.md` and the plot.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line program

use std::process::ExitCode;

use clap::Parser;
use redlock_bench::BenchArgs;

fn main() -> ExitCode {
    // S2 runs each contender in a child process of this program.
    if let Some(code) = redlock_bench::child_main() {
        return code;
    }
    // clap prints `--help` and usage errors itself (exit status 2 for the latter).
    let options = match BenchArgs::parse().into_options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("redlock-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("redlock-bench: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match runtime.block_on(redlock_bench::run(&options, &mut |line| {
        eprintln!("{line}");
    })) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("redlock-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("\n{}", report.table());
    if let Some((hold, cycle, limit)) = report.s3_limit() {
        println!(
            "S3 physical limit ≈ 1 / (hold {hold:.0} µs + floor S1_3m cycle {cycle:.0} µs) ≈ {limit:.0} acquisitions/s\n"
        );
    }
    println!("Targets:\n\n{}", report.targets_table());
    print!("{}", report.result_text());
    if let Some(dir) = &options.write_docs
        && options.primitives_section_only
    {
        if let Err(e) = report.write_primitives_section(dir) {
            eprintln!("redlock-bench: {e}");
            return ExitCode::FAILURE;
        }
        eprintln!(
            "wrote the primitives' section of {}",
            dir.join("BENCHMARKS.md").display()
        );
    } else if let Some(dir) = &options.write_docs {
        if let Err(e) = report.write_docs(dir) {
            eprintln!("redlock-bench: {e}");
            return ExitCode::FAILURE;
        }
        eprintln!(
            "wrote {} and {}",
            dir.join("BENCHMARKS.md").display(),
            dir.join(redlock_bench::PLOT_FILE).display()
        );
    }
    ExitCode::SUCCESS
}
