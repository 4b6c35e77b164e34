//! Being a good citizen of a cluster scheduler (Slurm job arrays, Kubernetes Indexed Jobs, a
//! workflow engine): which share of the work this process is ([`Shard`]), how many CPUs it was
//! given ([`cpu_budget`]), the exit code that means "retry me" ([`RETRY_EXIT_CODE`]) and the
//! signals that end a task early ([`signals`]).
//!
//! delinea schedules nothing itself across machines: the scheduler starts N copies, each finds
//! its share from its index, and the experiment folder (on a shared file system) is the only
//! state they share. Every unit's outputs are written atomically and its `done.json` last, so
//! no lock is needed for correctness (see [`crate::experiment::store`]).

pub mod signals;

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// `EX_TEMPFAIL` of sysexits.h: the task failed for a reason that may pass (a dependency not
/// ready yet, preemption, a GPU that did not answer): run it again. Bad input exits 2.
pub const RETRY_EXIT_CODE: u8 = 75;

/// One share of an experiment's work units (which units is the experiment's deal,
/// [`crate::experiment::deal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shard {
    /// 0-based, below `count` (as `SLURM_ARRAY_TASK_ID` and `JOB_COMPLETION_INDEX` count).
    pub index: usize,
    /// Shards in all.
    pub count: usize,
}

/// Where a shard came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardOrigin {
    /// No sharding: the whole experiment.
    Whole,
    /// `--shard K/N`.
    Flag,
    /// `SLURM_ARRAY_TASK_ID` (minus `SLURM_ARRAY_TASK_MIN`) of `SLURM_ARRAY_TASK_COUNT`.
    Slurm,
    /// `JOB_COMPLETION_INDEX` of `--shard-count`.
    Kubernetes,
}

/// A shard that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ShardError(String);

impl Shard {
    /// The whole work: one shard of one.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Whether this is the whole work.
    pub fn is_whole(&self) -> bool {
        self.count <= 1
    }

    /// The shard from `--shard`, else from the scheduler's environment (`env` reads a
    /// variable), else the whole work. `--shard-count` gives the count a Kubernetes index
    /// comes without; given alone (no index anywhere), it is an error.
    pub fn resolve(
        flag: Option<Shard>,
        count: Option<usize>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Shard, ShardOrigin), ShardError> {
        if let Some(shard) = flag {
            if count.is_some_and(|n| n != shard.count) {
                return Err(ShardError(format!(
                    "--shard {shard} and --shard-count {} disagree",
                    count.unwrap_or_default()
                )));
            }
            return Ok((shard, ShardOrigin::Flag));
        }
        let number = |name: &str| -> Result<Option<usize>, ShardError> {
            env(name)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| ShardError(format!("{name}={v:?} is not a whole number")))
                })
                .transpose()
        };
        if let (Some(id), Some(n)) = (number("SLURM_ARRAY_TASK_ID")?, number("SLURM_ARRAY_TASK_COUNT")?) {
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let index = id
                .checked_sub(min)
                .ok_or_else(|| ShardError(format!("SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}")))?;
            let n = count.unwrap_or(n);
            return Shard::new(index, n)
                .map(|s| (s, ShardOrigin::Slurm))
                .map_err(|e| ShardError(format!("{e} (from the SLURM_ARRAY_TASK_* variables: the array must be one contiguous range, e.g. --array=0-{})", n.saturating_sub(1))));
        }
        match (number("JOB_COMPLETION_INDEX")?, count) {
            (Some(index), Some(n)) => Shard::new(index, n).map(|s| (s, ShardOrigin::Kubernetes)),
            (Some(index), None) => Err(ShardError(format!(
                "JOB_COMPLETION_INDEX={index} is set but not the number of shards: give --shard-count (the Job's completions)"
            ))),
            (None, Some(_)) => Err(ShardError(
                "--shard-count needs an index: --shard K/N, or JOB_COMPLETION_INDEX (Kubernetes) in the environment".into(),
            )),
            (None, None) => Ok((Shard::WHOLE, ShardOrigin::Whole)),
        }
    }

    /// Shard `index` of `count`, checked.
    pub fn new(index: usize, count: usize) -> Result<Shard, ShardError> {
        if count == 0 {
            return Err(ShardError("the number of shards must be at least 1".into()));
        }
        if index >= count {
            return Err(ShardError(format!(
                "shard {index} of {count} does not exist: shards count from 0 to {}",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    /// `K/N`, K counted from 0.
    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let bad = || {
            ShardError(format!(
                "{s:?} is not a shard: expected K/N, e.g. 0/3 (K from 0 to N-1)"
            ))
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k = k.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        Shard::new(k, n)
    }
}

/// FNV-1a 64: stable across runs, machines and Rust versions (unlike `std`'s hasher); not a
/// cryptographic hash.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The CPUs this process may use: `SLURM_CPUS_PER_TASK` under Slurm (which need not confine
/// the process's affinity), else what the operating system allows it (`available_parallelism`
/// reads the affinity mask and the cgroup CPU quota of a container), at least 1.
pub fn cpu_budget(env: impl Fn(&str) -> Option<String>) -> usize {
    let slurm = env("SLURM_CPUS_PER_TASK").and_then(|v| v.trim().parse::<usize>().ok());
    slurm
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    #[test]
    fn shards_parse_and_refuse() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
        for bad in ["3/3", "1/0", "1", "a/3", "-1/3", "1/3/4"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(Shard::WHOLE.to_string(), "0/1");
    }

    #[test]
    fn shards_come_from_the_scheduler() {
        let none = vars(&[]);
        assert_eq!(
            Shard::resolve(None, None, &none),
            Ok((Shard::WHOLE, ShardOrigin::Whole))
        );
        let slurm = vars(&[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert_eq!(
            Shard::resolve(None, None, &slurm),
            Ok((Shard { index: 1, count: 3 }, ShardOrigin::Slurm))
        );
        // The flag wins over the environment.
        let flag = Some(Shard { index: 0, count: 2 });
        assert_eq!(Shard::resolve(flag, None, &slurm).map(|s| s.1), Ok(ShardOrigin::Flag));
        assert!(Shard::resolve(flag, Some(3), &none).is_err());
        let k8s = vars(&[("JOB_COMPLETION_INDEX", "2")]);
        assert_eq!(
            Shard::resolve(None, Some(4), &k8s),
            Ok((Shard { index: 2, count: 4 }, ShardOrigin::Kubernetes))
        );
        assert!(Shard::resolve(None, None, &k8s).is_err(), "an index without a count");
        assert!(Shard::resolve(None, Some(2), vars(&[("JOB_COMPLETION_INDEX", "2")])).is_err());
        assert!(
            Shard::resolve(None, Some(2), &none).is_err(),
            "a count without an index"
        );
        assert!(Shard::resolve(
            None,
            None,
            vars(&[("SLURM_ARRAY_TASK_ID", "x"), ("SLURM_ARRAY_TASK_COUNT", "2")])
        )
        .is_err());
    }

    #[test]
    fn the_hash_is_fnv1a_64() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn the_cpu_budget_follows_slurm_then_the_system() {
        assert_eq!(cpu_budget(vars(&[("SLURM_CPUS_PER_TASK", "3")])), 3);
        let system = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(cpu_budget(vars(&[])), system);
        assert_eq!(cpu_budget(vars(&[("SLURM_CPUS_PER_TASK", "0")])), system);
        assert_eq!(cpu_budget(vars(&[("SLURM_CPUS_PER_TASK", "many")])), system);
    }
}
