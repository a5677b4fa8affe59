//! The arithmetic of `soak`, kept apart from the network code so it can be tested on its own:
//! latency percentiles, per-interval aggregation of operation records, the server's memory and
//! descriptor counts read from /proc, and the verdict on growth.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

/// Nearest-rank percentile (`p` in 0..=100) of sorted values: the smallest value with at least
/// `p` % of the values at or below it. `None` for no values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// What one kind of operation did over some span of time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpStats {
    /// Operations that succeeded.
    pub count: u64,
    /// Operations that failed (any non-success status, wrong answer or transport error).
    pub errors: u64,
    pub per_second: f64,
    /// Latency percentiles of the successful operations, in milliseconds.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// Latencies and error counts by operation, as they arrive.
#[derive(Debug, Default)]
pub struct Tally {
    ops: BTreeMap<&'static str, (Vec<f64>, u64)>,
}

impl Tally {
    pub fn success(&mut self, op: &'static str, latency_ms: f64) {
        self.ops.entry(op).or_default().0.push(latency_ms);
    }

    pub fn error(&mut self, op: &'static str) {
        self.ops.entry(op).or_default().1 += 1;
    }

    /// Adds everything `other` holds.
    pub fn absorb(&mut self, other: &Tally) {
        for (op, (latencies, errors)) in &other.ops {
            let entry = self.ops.entry(op).or_default();
            entry.0.extend_from_slice(latencies);
            entry.1 += errors;
        }
    }

    pub fn errors(&self) -> u64 {
        self.ops.values().map(|(_, e)| e).sum()
    }

    /// Statistics by operation over a span of `seconds`.
    pub fn stats(&self, seconds: f64) -> BTreeMap<&'static str, OpStats> {
        self.ops
            .iter()
            .map(|(op, (latencies, errors))| {
                let mut sorted = latencies.clone();
                sorted.sort_by(f64::total_cmp);
                let count = sorted.len() as u64;
                let stats = OpStats {
                    count,
                    errors: *errors,
                    per_second: if seconds > 0.0 {
                        count as f64 / seconds
                    } else {
                        0.0
                    },
                    p50_ms: percentile(&sorted, 50.0),
                    p99_ms: percentile(&sorted, 99.0),
                    max_ms: sorted.last().copied(),
                };
                (*op, stats)
            })
            .collect()
    }
}

/// A process's resident memory and open descriptors at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// `VmRSS`: everything resident.
    pub rss_kib: u64,
    /// `RssAnon`: the heap and stacks, where a leak shows.
    pub anon_kib: u64,
    /// `RssFile`: resident pages of mapped files. Ward maps its SQLite index (`mmap_size`), so
    /// this follows the index's size as the archive grows, which is not a leak.
    pub file_kib: u64,
    pub fds: u64,
}

/// A `NAME:   VALUE kB` line of a /proc/PID/status text, in KiB.
pub fn status_kib(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?.trim();
        value.strip_suffix("kB")?.trim().parse().ok()
    })
}

/// What an open descriptor is, from its /proc/PID/fd link target: the kind of socket, pipe
/// or kernel object, or for a file its name (objects being received or sealed are grouped:
/// their names are random).
pub fn descriptor_kind(target: &str) -> String {
    if target.ends_with(" (deleted)") {
        return "deleted file".to_owned();
    }
    if target.starts_with("anon_inode:") {
        return target.to_owned();
    }
    if let Some((kind, _)) = target.split_once(":[") {
        return kind.to_owned();
    }
    let path = Path::new(target);
    let parent = path
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str());
    match parent {
        Some("spool" | "tmp") => "object in flight (spool/tmp)".to_owned(),
        _ => path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(target)
            .to_owned(),
    }
}

/// Entries of a directory (for /proc/PID/fd: the open descriptors).
pub fn count_entries(dir: &Path) -> Result<u64> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        entry.with_context(|| dir.display().to_string())?;
        n += 1;
    }
    Ok(n)
}

/// Reads a running process's usage.
pub fn usage(pid: u32) -> Result<Usage> {
    let proc = Path::new("/proc").join(pid.to_string());
    let status = std::fs::read_to_string(proc.join("status"))
        .with_context(|| format!("process {pid} (is it running?)"))?;
    let field = |name| {
        status_kib(&status, name).with_context(|| format!("no {name} line in /proc/{pid}/status"))
    };
    Ok(Usage {
        rss_kib: field("VmRSS")?,
        anon_kib: field("RssAnon")?,
        file_kib: field("RssFile")?,
        fds: count_entries(&proc.join("fd"))?,
    })
}

/// A running process's open descriptors by kind (`descriptor_kind`). A descriptor closed
/// while the directory is read is skipped.
pub fn descriptors(pid: u32) -> Result<BTreeMap<String, u64>> {
    let dir = Path::new("/proc").join(pid.to_string()).join("fd");
    let mut kinds = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
        let Ok(target) = entry.and_then(|e| std::fs::read_link(e.path())) else {
            continue;
        };
        *kinds
            .entry(descriptor_kind(&target.to_string_lossy()))
            .or_default() += 1;
    }
    Ok(kinds)
}

/// Allowance for anonymous memory noise between two samples under the same load: allocator
/// caches, buffers of connections that happen to be mid-transfer. A leak proportional to the
/// work done exceeds it over a soak of any length.
pub const RSS_TOLERANCE_FRACTION: f64 = 0.10;
pub const RSS_TOLERANCE_KIB: u64 = 4 * 1024;

/// Whether usage grew after warm-up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub rss_grew: bool,
    pub fds_grew: bool,
    /// Least-squares slope of anonymous RSS over the samples after warm-up, KiB per minute.
    pub anon_slope_kib_per_min: Option<f64>,
    pub line: String,
}

/// Descriptors that must not outlive the load: connections, and objects being received.
const LEAK_KINDS: &[&str] = &["socket", "deleted file", "object in flight (spool/tmp)"];

/// Judges growth. `warm` and `end` are samples under load (at the end of warm-up and at the
/// end of the run). Memory is judged on anonymous RSS, which may exceed `warm` by the
/// tolerance; file-backed RSS follows the mapped index and is reported only. Under load the
/// descriptors follow the connections and objects in flight, up to `concurrency` apiece, so
/// `end` may exceed `warm` by that much; once the load is over (`idle_before`, `idle_after`:
/// descriptors by kind) no more sockets and no objects in flight may be left than before. Other
/// kinds (the index's read connections, opened on demand up to their pool's bound; audit
/// segments) are reported, not judged. `after_warmup` is (seconds, anonymous RSS KiB).
pub fn verdict(
    warm: Usage,
    end: Usage,
    concurrency: u64,
    idle_before: &BTreeMap<String, u64>,
    idle_after: &BTreeMap<String, u64>,
    after_warmup: &[(f64, u64)],
) -> Verdict {
    let allowed = (warm.anon_kib as f64 * RSS_TOLERANCE_FRACTION).max(RSS_TOLERANCE_KIB as f64);
    let rss_grew = end.anon_kib as f64 > warm.anon_kib as f64 + allowed;
    let count = |kinds: &BTreeMap<String, u64>, kind: &str| kinds.get(kind).copied().unwrap_or(0);
    let left_over: Vec<String> = LEAK_KINDS
        .iter()
        .filter(|k| count(idle_after, k) > count(idle_before, k))
        .map(|k| format!("{k} {} -> {}", count(idle_before, k), count(idle_after, k)))
        .collect();
    let fds_grew = end.fds > warm.fds + concurrency || !left_over.is_empty();
    let slope = slope_per_minute(after_warmup);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let total = |kinds: &BTreeMap<String, u64>| kinds.values().sum::<u64>();
    let line = format!(
        "{}: anonymous RSS {:.1} MiB at warm-up end, {:.1} MiB at the end ({:+.1} %{}); \
         RSS with mapped files {:.1} -> {:.1} MiB; descriptors {} at warm-up end, {} at the end, \
         {} idle before the load, {} idle after{}",
        match (rss_grew, fds_grew) {
            (false, false) => "no growth",
            (true, false) => "MEMORY GREW",
            (false, true) => "DESCRIPTORS GREW",
            (true, true) => "MEMORY AND DESCRIPTORS GREW",
        },
        mib(warm.anon_kib),
        mib(end.anon_kib),
        (end.anon_kib as f64 / warm.anon_kib.max(1) as f64 - 1.0) * 100.0,
        slope.map_or(String::new(), |s| format!(
            ", slope {:+.2} MiB/min after warm-up",
            s / 1024.0
        )),
        mib(warm.rss_kib),
        mib(end.rss_kib),
        warm.fds,
        end.fds,
        total(idle_before),
        total(idle_after),
        if left_over.is_empty() {
            String::new()
        } else {
            format!(" (left over: {})", left_over.join(", "))
        },
    );
    Verdict {
        rss_grew,
        fds_grew,
        anon_slope_kib_per_min: slope,
        line,
    }
}

/// Least-squares slope of (seconds, KiB) points, in KiB per minute; `None` for fewer than two
/// distinct times.
pub fn slope_per_minute(points: &[(f64, u64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mean_t = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_v = points.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for &(t, v) in points {
        num += (t - mean_t) * (v as f64 - mean_v);
        den += (t - mean_t) * (t - mean_t);
    }
    (den > 0.0).then(|| num / den * 60.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7.0], 0.0), Some(7.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        // 99th of 10 values: rank ceil(9.9) = 10, the largest.
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 99.0), Some(10.0));
        assert_eq!(percentile(&v, 50.0), Some(5.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), Some(2.0));
    }

    #[test]
    fn intervals_aggregate_by_operation() {
        let mut interval = Tally::default();
        for ms in [5.0, 1.0, 3.0, 2.0, 4.0] {
            interval.success("c-store", ms);
        }
        interval.error("c-store");
        interval.error("qido");
        let stats = interval.stats(2.0);
        let store = &stats["c-store"];
        assert_eq!((store.count, store.errors), (5, 1));
        assert_eq!(store.per_second, 2.5);
        assert_eq!(
            (store.p50_ms, store.p99_ms, store.max_ms),
            (Some(3.0), Some(5.0), Some(5.0))
        );
        let qido = &stats["qido"];
        assert_eq!((qido.count, qido.errors, qido.p50_ms), (0, 1, None));
        assert_eq!(interval.errors(), 2);

        let mut total = Tally::default();
        total.absorb(&interval);
        let mut next = Tally::default();
        next.success("c-store", 100.0);
        next.success("c-find", 1.0);
        total.absorb(&next);
        let stats = total.stats(4.0);
        assert_eq!(stats["c-store"].count, 6);
        assert_eq!(stats["c-store"].max_ms, Some(100.0));
        assert_eq!(stats["c-find"].per_second, 0.25);
        assert_eq!(total.errors(), 2);
        assert_eq!(Tally::default().stats(0.0).len(), 0);
    }

    #[test]
    fn proc_status_and_fd_directory() {
        let status = "Name:\tward\nVmPeak:\t  123456 kB\nVmRSS:\t   45678 kB\n\
                      RssAnon:\t   40000 kB\nRssFile:\t    5678 kB\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(45678));
        assert_eq!(status_kib(status, "RssAnon"), Some(40000));
        assert_eq!(status_kib(status, "RssFile"), Some(5678));
        assert_eq!(status_kib(status, "Rss"), None);
        assert_eq!(status_kib("Name:\tkthreadd\n", "VmRSS"), None);
        assert_eq!(status_kib("VmRSS:\t12 MB\n", "VmRSS"), None);

        let dir = tempfile::tempdir().unwrap();
        assert_eq!(count_entries(dir.path()).unwrap(), 0);
        for name in ["0", "1", "2"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(count_entries(dir.path()).unwrap(), 3);
        assert!(count_entries(&dir.path().join("missing")).is_err());

        let me = usage(std::process::id()).unwrap();
        assert!(me.rss_kib > 0 && me.anon_kib > 0 && me.fds >= 3, "{me:?}");
        let kinds = descriptors(std::process::id()).unwrap();
        assert!(kinds.values().sum::<u64>() >= 3, "{kinds:?}");
    }

    #[test]
    fn descriptor_kinds() {
        for (target, kind) in [
            ("socket:[123456]", "socket"),
            ("pipe:[99]", "pipe"),
            ("anon_inode:[eventpoll]", "anon_inode:[eventpoll]"),
            ("anon_inode:[eventfd]", "anon_inode:[eventfd]"),
            ("/d/ward-data/index.sqlite-wal", "index.sqlite-wal"),
            (
                "/d/ward-data/audit/audit-000001.jsonl",
                "audit-000001.jsonl",
            ),
            ("/d/ward-data/spool/8f3a9c", "object in flight (spool/tmp)"),
            (
                "/d/ward-data/tmp/8f3a9c.seal",
                "object in flight (spool/tmp)",
            ),
            ("/d/ward-data/spool/8f3a9c (deleted)", "deleted file"),
            ("/dev/null", "null"),
        ] {
            assert_eq!(descriptor_kind(target), kind, "{target}");
        }
    }

    #[test]
    fn growth_verdicts() {
        let u = |anon_kib, fds| Usage {
            rss_kib: anon_kib + 1000,
            anon_kib,
            file_kib: 1000,
            fds,
        };
        let kinds = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(k, n)| (k.to_string(), *n)).collect()
        };
        let before = kinds(&[("socket", 6), ("index.sqlite", 2)]);
        // More index connections after the load are the pool filling, not a leak.
        let after = kinds(&[("socket", 6), ("index.sqlite", 8), ("index.sqlite-wal", 8)]);
        let flat: Vec<(f64, u64)> = (0..10).map(|i| (f64::from(i) * 10.0, 50_000)).collect();
        let v = verdict(u(50_000, 90), u(52_000, 95), 68, &before, &after, &flat);
        assert!(!v.rss_grew && !v.fds_grew, "{v:?}");
        assert_eq!(v.anon_slope_kib_per_min, Some(0.0));
        assert!(v.line.starts_with("no growth"), "{}", v.line);

        // 10 % of 100 MiB is allowed, not more.
        let big = 100 * 1024;
        let none = BTreeMap::new();
        assert!(!verdict(u(big, 1), u(big + big / 10, 1), 0, &none, &none, &[]).rss_grew);
        assert!(verdict(u(big, 1), u(big + big / 10 + 1, 1), 0, &none, &none, &[]).rss_grew);
        // Small heaps get 4 MiB.
        assert!(!verdict(u(10_000, 1), u(14_000, 1), 0, &none, &none, &[]).rss_grew);
        assert!(verdict(u(10_000, 1), u(14_500, 1), 0, &none, &none, &[]).rss_grew);

        // Under load, descriptors may vary by the concurrency.
        assert!(!verdict(u(1, 100), u(1, 164), 64, &none, &none, &[]).fds_grew);
        assert!(verdict(u(1, 100), u(1, 165), 64, &none, &none, &[]).fds_grew);

        // A socket or an object in flight left after the load is a leak.
        for leak in ["socket", "deleted file", "object in flight (spool/tmp)"] {
            let mut after = before.clone();
            *after.entry(leak.to_owned()).or_default() += 1;
            let v = verdict(u(1, 1), u(1, 1), 0, &before, &after, &[]);
            assert!(v.fds_grew && !v.rss_grew, "{leak}");
            assert!(v.line.starts_with("DESCRIPTORS GREW"), "{}", v.line);
            assert!(v.line.contains("left over"), "{}", v.line);
        }
    }

    #[test]
    fn slopes() {
        assert_eq!(slope_per_minute(&[(0.0, 5)]), None);
        assert_eq!(slope_per_minute(&[(3.0, 5), (3.0, 9)]), None);
        // 1 KiB per second is 60 KiB per minute.
        let rising: Vec<(f64, u64)> = (0..5).map(|i| (f64::from(i), 100 + i as u64)).collect();
        let s = slope_per_minute(&rising).unwrap();
        assert!((s - 60.0).abs() < 1e-9, "{s}");
    }
}
