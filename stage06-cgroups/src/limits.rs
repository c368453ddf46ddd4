//! The limits a user asks for with docker's flags, and the files that set them: one
//! table for cgroup v2 and one for v1, side by side, so that the two can be compared.

use anyhow::{Result, bail};

use crate::size::Bytes;

/// The period `--cpus` is measured over, as docker uses it: 100 ms.
pub const CPU_PERIOD_US: u64 = 100_000;

/// What the container may use. `None`: no limit of that kind was asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// `--memory`: the most memory (RAM) its processes may use together.
    pub memory: Option<Bytes>,
    /// `--memory-swap`: memory *plus* swap, docker's way; `Unlimited` for `-1`.
    pub memory_swap: Option<Swap>,
    /// `--pids-limit`: the most processes (and threads) at once.
    pub pids: Option<u64>,
    /// `--cpus`: how many CPUs' worth of time per period, as a quota in µs.
    pub cpu_quota_us: Option<u64>,
    /// `--cpu-shares`: a relative weight against other cgroups (default 1024).
    pub cpu_shares: Option<u64>,
    /// `--blkio-weight`: a relative weight for block I/O, 10 to 1000.
    pub blkio_weight: Option<u16>,
}

/// `--memory-swap`: a total of memory and swap, or no limit on swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    Total(Bytes),
    Unlimited,
}

/// The raw flags, as clap read them, before they are checked against each other.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub memory: Option<Bytes>,
    pub memory_swap: Option<String>,
    pub pids_limit: Option<i64>,
    pub cpus: Option<f64>,
    pub cpu_shares: Option<u64>,
    pub blkio_weight: Option<u16>,
}

impl Limits {
    /// Checks the flags the way docker does, with its error messages' substance.
    pub fn from_flags(flags: &Flags) -> Result<Self> {
        // The kernel needs some memory to start a process at all; docker's floor.
        const MIN_MEMORY: u64 = 6 << 20;
        if let Some(memory) = flags.memory
            && memory.0 < MIN_MEMORY
        {
            bail!("--memory {memory} is too small: the minimum is 6m");
        }
        let memory_swap = match flags.memory_swap.as_deref() {
            None => None,
            Some("-1") => Some(Swap::Unlimited),
            Some(text) => Some(Swap::Total(text.parse::<Bytes>().map_err(|err| {
                anyhow::anyhow!("--memory-swap: {err}, or -1 for no limit")
            })?)),
        };
        if let Some(swap) = memory_swap {
            let Some(memory) = flags.memory else {
                bail!("--memory-swap needs --memory: it is the total of memory and swap");
            };
            if let Swap::Total(total) = swap
                && total < memory
            {
                bail!(
                    "--memory-swap {total} is less than --memory {memory}: it is the total of \
                     memory and swap, so at least --memory (equal: no swap)"
                );
            }
        }
        let pids = match flags.pids_limit {
            None | Some(0) | Some(-1) => None,
            Some(n) if n > 0 => Some(n as u64),
            Some(n) => bail!("--pids-limit {n}: give a positive number, or -1 for no limit"),
        };
        let cpu_quota_us = match flags.cpus {
            None => None,
            Some(cpus) if (0.01..=1024.0).contains(&cpus) => {
                Some((cpus * CPU_PERIOD_US as f64).round() as u64)
            }
            Some(cpus) => bail!("--cpus {cpus}: give a number of CPUs from 0.01 up, as in 0.5"),
        };
        if let Some(shares) = flags.cpu_shares
            && !(2..=262_144).contains(&shares)
        {
            bail!("--cpu-shares {shares}: give a weight from 2 to 262144 (the default is 1024)");
        }
        if let Some(weight) = flags.blkio_weight
            && !(10..=1000).contains(&weight)
        {
            bail!("--blkio-weight {weight}: give a weight from 10 to 1000");
        }
        Ok(Limits {
            memory: flags.memory,
            memory_swap,
            pids,
            cpu_quota_us,
            cpu_shares: flags.cpu_shares,
            blkio_weight: flags.blkio_weight,
        })
    }

    /// Whether any limit was asked for.
    pub fn any(&self) -> bool {
        *self != Limits::default()
    }

    /// Swap allowed on top of memory, in bytes; `None`: no limit on it. Docker's
    /// default with `--memory` alone is as much swap as memory.
    fn swap_bytes(&self) -> Option<Option<u64>> {
        let memory = self.memory?.0;
        Some(match self.memory_swap {
            None => Some(memory),
            Some(Swap::Unlimited) => None,
            Some(Swap::Total(total)) => Some(total.0 - memory),
        })
    }
}

/// The controllers keel uses. On v2 they share one directory; on v1 each has a
/// hierarchy of its own (some mounted together, as `cpu,cpuacct`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Controller {
    Memory,
    Pids,
    Cpu,
    /// v1 only: CPU time used (v2's `cpu` controller counts it in `cpu.stat`).
    Cpuacct,
    /// v2's `io`, v1's `blkio`.
    Io,
}

impl Controller {
    /// Its name in `cgroup.controllers` (v2) or in the hierarchy's mount options (v1).
    pub fn name(self, v2: bool) -> &'static str {
        match (self, v2) {
            (Controller::Memory, _) => "memory",
            (Controller::Pids, _) => "pids",
            (Controller::Cpu, _) => "cpu",
            (Controller::Cpuacct, _) => "cpuacct",
            (Controller::Io, true) => "io",
            (Controller::Io, false) => "blkio",
        }
    }
}

/// One write that sets a limit: `value` into `file` of the controller's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub controller: Controller,
    pub file: &'static str,
    pub value: String,
    /// Whether a kernel may lack the file (swap accounting off, no I/O weights), and
    /// the setting is then skipped, because the user did not ask for it.
    pub optional: bool,
    pub why: &'static str,
}

fn setting(
    controller: Controller,
    file: &'static str,
    value: String,
    why: &'static str,
) -> Setting {
    Setting {
        controller,
        file,
        value,
        optional: false,
        why,
    }
}

// ANCHOR: v2_settings
/// The writes of cgroup v2: one directory, one file per limit, `max` for none.
pub fn v2_settings(limits: &Limits) -> Vec<Setting> {
    use Controller::*;
    let mut settings = Vec::new();
    if let Some(memory) = limits.memory {
        settings.push(setting(
            Memory,
            "memory.max",
            memory.0.to_string(),
            "above this, the kernel reclaims, then OOM-kills inside the cgroup",
        ));
    }
    if let Some(swap) = limits.swap_bytes() {
        settings.push(Setting {
            optional: limits.memory_swap.is_none(),
            ..setting(
                Memory,
                "memory.swap.max",
                swap.map_or("max".to_owned(), |b| b.to_string()),
                "swap on top of memory.max (docker's --memory-swap is their total)",
            )
        });
    }
    if let Some(pids) = limits.pids {
        settings.push(setting(
            Pids,
            "pids.max",
            pids.to_string(),
            "fork and clone fail with EAGAIN once this many tasks exist",
        ));
    }
    if let Some(quota) = limits.cpu_quota_us {
        settings.push(setting(
            Cpu,
            "cpu.max",
            format!("{quota} {CPU_PERIOD_US}"),
            "this many µs of CPU time per period, then throttled until the next one",
        ));
    }
    if let Some(shares) = limits.cpu_shares {
        // v1's 2..262144 onto v2's 1..10000, the formula runc and crun use.
        let weight = 1 + ((shares - 2) * 9999) / 262_142;
        settings.push(setting(
            Cpu,
            "cpu.weight",
            weight.to_string(),
            "a share of CPU time against sibling cgroups when the CPUs are busy",
        ));
    }
    if let Some(weight) = limits.blkio_weight {
        settings.push(setting(
            Io,
            "io.bfq.weight",
            weight.to_string(),
            "a share of the disks' time against sibling cgroups (the BFQ scheduler)",
        ));
    }
    settings
}
// ANCHOR_END: v2_settings

// ANCHOR: v1_settings
/// The writes of cgroup v1: a directory per controller, files named for it, `-1` for
/// no limit.
pub fn v1_settings(limits: &Limits) -> Vec<Setting> {
    // ANCHOR: v1_limits
    // EXERCISE: return v1's writes for `limits`, each made with setting(controller, file, value, why): memory.limit_in_bytes; memory.memsw.limit_in_bytes (memory plus limits.swap_bytes(), "-1" for no limit; optional unless --memory-swap was given); pids.max; cpu.cfs_period_us then cpu.cfs_quota_us; cpu.shares; blkio.bfq.weight (see v2_settings above)
    use Controller::*;
    let mut settings = Vec::new();
    if let Some(memory) = limits.memory {
        settings.push(setting(
            Memory,
            "memory.limit_in_bytes",
            memory.0.to_string(),
            "above this, the kernel reclaims, then OOM-kills inside the cgroup",
        ));
    }
    if let Some(swap) = limits.swap_bytes() {
        // v1 counts memory and swap together, docker's --memory-swap as it is.
        let total = swap.map_or("-1".to_owned(), |s| {
            (s + limits.memory.map_or(0, |m| m.0)).to_string()
        });
        settings.push(Setting {
            optional: limits.memory_swap.is_none(),
            ..setting(
                Memory,
                "memory.memsw.limit_in_bytes",
                total,
                "memory and swap together (exists when the kernel accounts swap)",
            )
        });
    }
    if let Some(pids) = limits.pids {
        settings.push(setting(
            Pids,
            "pids.max",
            pids.to_string(),
            "fork and clone fail with EAGAIN once this many tasks exist",
        ));
    }
    if let Some(quota) = limits.cpu_quota_us {
        settings.push(setting(
            Cpu,
            "cpu.cfs_period_us",
            CPU_PERIOD_US.to_string(),
            "the period the quota is counted over",
        ));
        settings.push(setting(
            Cpu,
            "cpu.cfs_quota_us",
            quota.to_string(),
            "this many µs of CPU time per period, then throttled until the next one",
        ));
    }
    if let Some(shares) = limits.cpu_shares {
        settings.push(setting(
            Cpu,
            "cpu.shares",
            shares.to_string(),
            "a share of CPU time against sibling cgroups when the CPUs are busy",
        ));
    }
    if let Some(weight) = limits.blkio_weight {
        settings.push(setting(
            Io,
            "blkio.bfq.weight",
            weight.to_string(),
            "a share of the disks' time against sibling cgroups (the BFQ scheduler)",
        ));
    }
    settings
    // ANCHOR_END: v1_limits
}
// ANCHOR_END: v1_settings

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(memory: &str, swap: Option<&str>) -> Flags {
        Flags {
            memory: Some(memory.parse().unwrap()),
            memory_swap: swap.map(str::to_owned),
            ..Flags::default()
        }
    }

    #[test]
    fn memory_alone_allows_as_much_swap_as_memory() {
        let limits = Limits::from_flags(&flags("32m", None)).unwrap();
        let v2 = v2_settings(&limits);
        assert_eq!(v2[0].value, (32u64 << 20).to_string());
        assert_eq!(
            (v2[1].file, v2[1].value.as_str()),
            ("memory.swap.max", "33554432")
        );
        assert!(
            v2[1].optional,
            "not asked for: skipped where swap is not accounted"
        );
        let v1 = v1_settings(&limits);
        assert_eq!(v1[1].value, (64u64 << 20).to_string());
    }

    #[test]
    fn memory_swap_is_a_total() {
        let limits = Limits::from_flags(&flags("32m", Some("32m"))).unwrap();
        assert_eq!(v2_settings(&limits)[1].value, "0");
        assert!(!v2_settings(&limits)[1].optional);
        assert_eq!(v1_settings(&limits)[1].value, (32u64 << 20).to_string());
        let unlimited = Limits::from_flags(&flags("32m", Some("-1"))).unwrap();
        assert_eq!(v2_settings(&unlimited)[1].value, "max");
        assert_eq!(v1_settings(&unlimited)[1].value, "-1");
    }

    #[test]
    fn docker_refusals() {
        let err = |f: Flags| Limits::from_flags(&f).unwrap_err().to_string();
        assert!(err(flags("32m", Some("16m"))).contains("at least --memory"));
        assert!(err(flags("1m", None)).contains("minimum is 6m"));
        let swap_alone = Flags {
            memory_swap: Some("1g".into()),
            ..Flags::default()
        };
        assert!(err(swap_alone).contains("needs --memory"));
        let cpus = |c| Flags {
            cpus: Some(c),
            ..Flags::default()
        };
        assert!(err(cpus(0.0)).contains("--cpus"));
        assert!(err(cpus(f64::NAN)).contains("--cpus"));
        let pids = Flags {
            pids_limit: Some(-5),
            ..Flags::default()
        };
        assert!(err(pids).contains("positive"));
    }

    #[test]
    fn cpus_become_a_quota_per_period() {
        let limits = Limits::from_flags(&Flags {
            cpus: Some(0.5),
            cpu_shares: Some(1024),
            ..Flags::default()
        })
        .unwrap();
        let v2 = v2_settings(&limits);
        assert_eq!(v2[0].value, "50000 100000");
        assert_eq!(
            v2[1].value, "39",
            "1024 shares are v2's weight 39, as runc maps it"
        );
        let v1: Vec<_> = v1_settings(&limits)
            .into_iter()
            .map(|s| (s.file, s.value))
            .collect();
        assert!(v1.contains(&("cpu.cfs_quota_us", "50000".into())));
        assert!(v1.contains(&("cpu.shares", "1024".into())));
    }

    #[test]
    fn unlimited_pids_are_no_limit() {
        for n in [0, -1] {
            let f = Flags {
                pids_limit: Some(n),
                ..Flags::default()
            };
            assert!(!Limits::from_flags(&f).unwrap().any());
        }
    }
}
