//! The on-board benchmark's report: a Markdown header (board, cores, clock governor, OS,
//! glibc, settings), one table row per measurement, and the same data as JSON. The
//! Markdown is what users paste back into an issue; stdout shows it as it is measured.

use serde::Serialize;

use super::affinity::{Pinning, format_cpus};
use super::board_bench::Row;
use super::sysinfo::SystemInfo;

/// How the rows were measured.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Minimum timed runs per row.
    pub runs: usize,
    /// Untimed runs before timing.
    pub warmup: usize,
    /// Extra timing budget after `runs`, seconds.
    pub max_seconds: f64,
    /// Sleep before each model after the first, seconds.
    pub cooldown_s: f64,
    /// Thread counts measured.
    pub threads: Vec<usize>,
    /// Cores used.
    pub affinity: Pinning,
    /// Whether peak RSS is per row (VmHWM reset) or the process peak so far.
    pub peak_rss_per_row: bool,
}

/// Everything `--json` writes.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Format version of this JSON.
    pub format: u32,
    /// The machine.
    pub system: SystemInfo,
    /// The settings.
    pub settings: Settings,
    /// One entry per model, thread count and kernel set.
    pub results: Vec<Row>,
}

const TABLE_HEAD: &str = "| model | input | threads | isa | min ms | median ms | max ms | load ms | peak RSS MB |\n\
                          |---|---|---:|---|---:|---:|---:|---:|---:|\n";

fn or_unknown<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map_or_else(|| "?".to_string(), T::to_string)
}

/// One table row.
pub fn row_markdown(row: &Row) -> String {
    let hw = match row.input.as_slice() {
        [_, _, h, w] => format!("{h}x{w}"),
        other => format!("{other:?}"),
    };
    let rss = row.peak_rss_kb.map_or_else(
        || "?".to_string(),
        |kb| format!("{:.1}", kb as f64 / 1024.0),
    );
    format!(
        "| {} | {hw} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {rss} |",
        row.model, row.threads, row.isa, row.min_ms, row.median_ms, row.max_ms, row.load_ms
    )
}

impl Report {
    /// An empty report.
    pub fn new(system: SystemInfo, settings: Settings) -> Self {
        Report {
            format: 1,
            system,
            settings,
            results: Vec::new(),
        }
    }

    /// Title, machine and settings lines, and the table head.
    pub fn header_markdown(&self) -> String {
        let s = &self.system;
        let build = if s.arch == "arm" {
            format!(
                "{}, {}",
                s.arch,
                if s.neon_baseline {
                    "NEON"
                } else {
                    "no NEON baseline"
                }
            )
        } else {
            s.arch.to_string()
        };
        let cpu = format!(
            "{} ({} online), max {} MHz, governor {}, {} MiB RAM",
            or_unknown(&s.cpu),
            s.cpus,
            or_unknown(&s.max_mhz),
            or_unknown(&s.governor),
            or_unknown(&s.mem_mib)
        );
        let a = &self.settings.affinity;
        let threads: Vec<String> = self
            .settings
            .threads
            .iter()
            .map(|t| t.to_string())
            .collect();
        format!(
            "### prunus {} on {}\n\n\
             - cpu: {cpu}\n\
             - os: {}, kernel {}, glibc {}\n\
             - build: {build}\n\
             - settings: runs {}, warmup {}, cooldown {} s, threads {}, affinity {} ({}, cpus {})\n\n\
             {TABLE_HEAD}",
            s.prunus,
            or_unknown(&s.board),
            or_unknown(&s.os),
            or_unknown(&s.kernel),
            or_unknown(&s.glibc),
            self.settings.runs,
            self.settings.warmup,
            self.settings.cooldown_s,
            threads.join(","),
            a.requested.name(),
            a.note,
            format_cpus(&a.cpus),
        )
    }

    /// Lines after the table: temperatures and what the columns mean.
    pub fn footer_markdown(&self) -> String {
        let temps: Vec<f64> = self
            .results
            .iter()
            .flat_map(|r| r.temp_c.iter().flatten().copied())
            .collect();
        let temp = match (temps.first(), temps.iter().copied().reduce(f64::max)) {
            (Some(first), Some(max)) => {
                format!(" CPU temperature {first:.1} °C at start, {max:.1} °C at most.")
            }
            _ => String::new(),
        };
        let rss = if self.settings.peak_rss_per_row {
            "peak RSS of the process while the row ran"
        } else {
            "peak RSS of the process so far (the kernel could not reset it per row)"
        };
        format!(
            "\nfp32, batch 1; ms per inference over the timed runs; load = open (mmap) + \
             session; {rss}.{temp}\n"
        )
    }

    /// The whole report as Markdown.
    pub fn markdown(&self) -> String {
        let mut text = self.header_markdown();
        for row in &self.results {
            text.push_str(&row_markdown(row));
            text.push('\n');
        }
        text.push_str(&self.footer_markdown());
        text
    }
}
