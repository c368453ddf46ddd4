//! `stats`: what a container's cgroup counted, as `docker stats` shows it. The kernel
//! keeps the figures; a runtime only reads them: CPU time used (so far), memory in use
//! and its limit, tasks.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::size::Bytes;

/// One reading of a cgroup's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// CPU time used by all its processes since the cgroup was made.
    pub cpu: Duration,
    /// Memory in use, without the page cache the kernel can drop at once (docker's
    /// figure: usage minus inactive file pages).
    pub memory: u64,
    /// The memory limit; `None`: none.
    pub memory_limit: Option<u64>,
    /// Tasks (processes and threads) now.
    pub pids: u64,
}

/// Where a container's counters are: its cgroup's directories, v2's one or v1's one
/// per hierarchy.
#[derive(Debug, Clone)]
pub struct Counters {
    pub v2: bool,
    pub dirs: Vec<PathBuf>,
}

impl Counters {
    /// Reads every counter once.
    pub fn sample(&self) -> Result<Sample> {
        if self.v2 {
            let cpu_usec = field(&self.read("cpu.stat")?, "usage_usec")?;
            let inactive = field(&self.read("memory.stat")?, "inactive_file").unwrap_or(0);
            Ok(Sample {
                cpu: Duration::from_micros(cpu_usec),
                memory: number(&self.read("memory.current")?)?.saturating_sub(inactive),
                memory_limit: limit(&self.read("memory.max")?),
                pids: number(&self.read("pids.current")?)?,
            })
        } else {
            let inactive = field(&self.read("memory.stat")?, "total_inactive_file").unwrap_or(0);
            Ok(Sample {
                cpu: Duration::from_nanos(number(&self.read("cpuacct.usage")?)?),
                memory: number(&self.read("memory.usage_in_bytes")?)?.saturating_sub(inactive),
                memory_limit: limit(&self.read("memory.limit_in_bytes")?),
                pids: number(&self.read("pids.current")?)?,
            })
        }
    }

    /// The file `name` in whichever directory has it.
    fn read(&self, name: &str) -> Result<String> {
        let path = self
            .dirs
            .iter()
            .map(|d| d.join(name))
            .find(|p| p.exists())
            .with_context(|| format!("the container's cgroup has no {name}"))?;
        fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }
}

/// One line of `stats`: two samples `elapsed` apart make the CPU figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Percent of one CPU, as docker shows it (two busy CPUs: 200%).
    pub cpu_percent: f64,
    pub sample: Sample,
}

impl Line {
    pub fn between(before: &Sample, after: &Sample, elapsed: Duration) -> Line {
        let used = after.cpu.saturating_sub(before.cpu).as_secs_f64();
        let cpu_percent = if elapsed.is_zero() {
            0.0
        } else {
            used / elapsed.as_secs_f64() * 100.0
        };
        Line {
            cpu_percent,
            sample: *after,
        }
    }
}

/// The header docker prints.
pub const HEADER: &str =
    "CONTAINER ID   NAME                 CPU %     MEM USAGE / LIMIT     MEM %     PIDS";

/// One container's row.
pub fn row(id: &str, name: &str, line: &Line) -> String {
    let sample = &line.sample;
    let (limit, percent) = match sample.memory_limit {
        Some(limit) if limit > 0 => (
            Bytes(limit).to_string(),
            format!("{:.2}%", sample.memory as f64 / limit as f64 * 100.0),
        ),
        _ => ("no limit".to_owned(), "--".to_owned()),
    };
    let usage = format!("{} / {limit}", short(sample.memory));
    format!(
        "{:<14} {:<20} {:<9} {:<21} {:<9} {}",
        &id[..id.len().min(12)],
        name,
        format!("{:.2}%", line.cpu_percent),
        usage,
        percent,
        sample.pids
    )
}

/// A size rounded to one decimal, as docker prints usage: `1.2MiB`.
fn short(bytes: u64) -> String {
    let units = [(30, "GiB"), (20, "MiB"), (10, "KiB")];
    for (shift, unit) in units {
        if bytes >= 1 << shift {
            return format!("{:.1}{unit}", bytes as f64 / (1u64 << shift) as f64);
        }
    }
    format!("{bytes}B")
}

/// Samples every container twice, `interval` apart, for the CPU figures: one wait
/// for all of them, however many there are.
pub fn measure(all: &[Counters], interval: Duration) -> Result<Vec<Line>> {
    let before: Vec<_> = all.iter().map(Counters::sample).collect::<Result<_>>()?;
    let start = Instant::now();
    std::thread::sleep(interval);
    let elapsed = start.elapsed();
    all.iter()
        .zip(&before)
        .map(|(counters, before)| Ok(Line::between(before, &counters.sample()?, elapsed)))
        .collect()
}

/// A whole number from a one-line file.
fn number(text: &str) -> Result<u64> {
    text.trim()
        .parse()
        .with_context(|| format!("{:?} is not a number", text.trim()))
}

/// `max` (v2) or a value near 2^63 (v1's "no limit") is none.
fn limit(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "max" {
        return None;
    }
    text.parse().ok().filter(|&n: &u64| n < 1 << 62)
}

/// The value of `key` in a `key value` per line file (`cpu.stat`, `memory.stat`).
fn field(text: &str, key: &str) -> Result<u64> {
    text.lines()
        .find_map(|line| {
            let (k, v) = line.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok())?
        })
        .with_context(|| format!("no {key} line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_as_docker_reads_them() {
        assert_eq!(limit("max\n"), None);
        assert_eq!(limit("9223372036854771712\n"), None, "v1's no limit");
        assert_eq!(limit("33554432\n"), Some(32 << 20));
    }

    #[test]
    fn fields_of_a_stat_file() {
        let stat = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n";
        assert_eq!(field(stat, "usage_usec").unwrap(), 1500);
        assert!(field(stat, "nr_throttled").is_err());
    }

    #[test]
    fn cpu_percent_of_one_cpu() {
        let at = |ms| Sample {
            cpu: Duration::from_millis(ms),
            memory: 1 << 20,
            memory_limit: Some(32 << 20),
            pids: 3,
        };
        let line = Line::between(&at(100), &at(600), Duration::from_secs(1));
        assert!((line.cpu_percent - 50.0).abs() < 1e-9);
        let row = row("0123456789abcdef", "web", &line);
        assert!(row.starts_with("0123456789ab   web"), "{row}");
        assert!(
            row.contains("50.00%") && row.contains("1.0MiB / 32MiB") && row.contains("3.12%"),
            "{row}"
        );
        assert!(row.ends_with(" 3"), "{row}");
    }
}
