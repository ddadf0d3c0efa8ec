//! The run lease: at most one `mrs run` writes a lake at a time.
//!
//! Stages are idempotent (each appends only snapshots that differ from the latest one), but two
//! runs interleaving on one lake would both see "nothing yet" and both append the same
//! snapshots. So a run first takes a lease, an object under `meta/lease/` created with a
//! conditional put (`PutMode::Create`: an exclusive create on the local file system,
//! `If-None-Match: *` on S3), and holds it until it has written its feeds.
//!
//! - Objects are numbered, `meta/lease/<seq>.json`; the highest is the current lease. A run takes
//!   the lease by creating the next number, so of two runs racing for it exactly one wins, on
//!   any store with conditional create, without a conditional delete or update (which the local
//!   store lacks). The highest object is never deleted, so numbers are never reused; the winner
//!   deletes the older ones.
//! - The record names its holder (run, host, pid) and an expiry `ttl` ahead. A heartbeat renews
//!   it every `ttl / 3`; a holder that finds a higher number (it stalled past its expiry and was
//!   taken over) stops at its next stage with an error.
//! - A lease is free when released (the holder rewrites it `released` when it ends, failed or
//!   not), when expired (its holder was killed: at most `ttl` later the lake is free again), or
//!   at once when its holder ran on this host (same host name and boot id) and that process is
//!   gone (its pid is absent, a zombie, or a later process with another start time).
//! - A run that finds the lease held waits, polling, at most `MRS_LEASE_WAIT_SECS` (default
//!   900), then fails naming the holder. `MRS_LEASE_TTL_SECS` (default 60) sets the expiry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use datafusion::error::{DataFusionError, Result};
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};

use crate::lake::Lake;

const LEASE_FOLDER: &str = "meta/lease";

/// How long a lease lives without renewal and how long a run waits for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseConfig {
    pub ttl: Duration,
    pub wait: Duration,
    /// Pause between two looks at a held lease.
    pub poll: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60),
            wait: Duration::from_secs(900),
            poll: Duration::from_millis(500),
        }
    }
}

impl LeaseConfig {
    /// The defaults, overridden by `MRS_LEASE_TTL_SECS` and `MRS_LEASE_WAIT_SECS`.
    pub fn from_env() -> Result<Self> {
        let mut config = Self::default();
        if let Some(ttl) = env_secs("MRS_LEASE_TTL_SECS")? {
            if ttl < 1.0 {
                return Err(DataFusionError::Plan(
                    "MRS_LEASE_TTL_SECS must be at least 1".into(),
                ));
            }
            config.ttl = Duration::from_secs_f64(ttl);
        }
        if let Some(wait) = env_secs("MRS_LEASE_WAIT_SECS")? {
            config.wait = Duration::from_secs_f64(wait);
        }
        config.poll = config.poll.min(config.ttl / 4);
        Ok(config)
    }
}

fn env_secs(name: &str) -> Result<Option<f64>> {
    let Ok(text) = std::env::var(name) else {
        return Ok(None);
    };
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
        _ => Err(DataFusionError::Plan(format!(
            "{name} must be a number of seconds, got '{text}'"
        ))),
    }
}

/// The content of a lease object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseRecord {
    /// Unique per acquisition: the run id.
    pub holder: String,
    pub host: String,
    /// `/proc/sys/kernel/random/boot_id`: a pid means something on this host only until reboot.
    pub boot_id: String,
    pub pid: u32,
    /// Start time of the process (clock ticks since boot), to tell a reused pid apart.
    pub pid_start: Option<u64>,
    pub acquired_at_micros: i64,
    pub expires_at_micros: i64,
    pub released: bool,
}

impl LeaseRecord {
    fn describe(&self) -> String {
        format!(
            "{} (host {}, pid {}, since {}, expires {})",
            self.holder,
            self.host,
            self.pid,
            mrs_core::identity::rfc3339_utc_micros(self.acquired_at_micros),
            mrs_core::identity::rfc3339_utc_micros(self.expires_at_micros)
        )
    }

    /// Why this lease no longer holds the lake, if it does not.
    fn free_because(&self, now: i64, here: &HostId) -> Option<&'static str> {
        if self.released {
            Some("released")
        } else if now >= self.expires_at_micros {
            Some("expired")
        } else if self.host == here.host
            && self.boot_id == here.boot_id
            && !here.boot_id.is_empty()
            && !process_alive(self.pid, self.pid_start)
        {
            Some("its process is gone")
        } else {
            None
        }
    }
}

#[derive(Debug, Clone)]
struct HostId {
    host: String,
    boot_id: String,
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn host_id() -> HostId {
    HostId {
        host: read_trimmed("/proc/sys/kernel/hostname")
            .or_else(|| read_trimmed("/etc/hostname"))
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown".into()),
        boot_id: read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
    }
}

/// State and start time of a process from `/proc/<pid>/stat` (Linux), if it exists.
fn proc_stat(pid: u32) -> Option<(char, Option<u64>)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Field 22 (starttime) is the 20th after the command name.
    let start = fields.nth(18).and_then(|s| s.parse().ok());
    Some((state, start))
}

fn process_alive(pid: u32, pid_start: Option<u64>) -> bool {
    match proc_stat(pid) {
        None => false,
        Some(('Z' | 'X', _)) => false,
        Some((_, start)) => match (start, pid_start) {
            (Some(now), Some(then)) => now == then,
            _ => true,
        },
    }
}

fn object_error(e: datafusion::object_store::Error) -> DataFusionError {
    DataFusionError::ObjectStore(Box::new(e))
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// A held lease; renewed in the background until [`Lease::release`].
#[derive(Debug)]
pub struct Lease {
    store: Arc<dyn ObjectStore>,
    folder: ObjectPath,
    seq: u64,
    record: LeaseRecord,
    lost: Arc<AtomicBool>,
    heartbeat: tokio::task::JoinHandle<()>,
}

fn seq_name(seq: u64) -> String {
    format!("{seq:016}.json")
}

/// Lease objects under the folder, by number.
async fn list_leases(
    store: &dyn ObjectStore,
    folder: &ObjectPath,
) -> Result<Vec<(u64, ObjectPath)>> {
    let mut found: Vec<(u64, ObjectPath)> = store
        .list(Some(folder))
        .map_ok(|m| m.location)
        .try_collect::<Vec<_>>()
        .await
        .map_err(object_error)?
        .into_iter()
        .filter_map(|p| {
            let seq = p.filename()?.strip_suffix(".json")?.parse().ok()?;
            Some((seq, p))
        })
        .collect();
    found.sort();
    Ok(found)
}

async fn read_record(store: &dyn ObjectStore, path: &ObjectPath) -> Result<Option<LeaseRecord>> {
    match store.get(path).await {
        Ok(got) => {
            let bytes = got.bytes().await.map_err(object_error)?;
            serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                DataFusionError::Execution(format!("lease object {path} is not a lease: {e}"))
            })
        }
        Err(datafusion::object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(object_error(e)),
    }
}

fn payload(record: &LeaseRecord) -> Result<PutPayload> {
    serde_json::to_vec(record)
        .map(PutPayload::from)
        .map_err(|e| DataFusionError::Internal(format!("lease record: {e}")))
}

impl Lease {
    /// Takes the lake's lease for `holder`, waiting while another live run holds it.
    pub async fn acquire(lake: &Lake, holder: &str, config: &LeaseConfig) -> Result<Self> {
        let store = lake.store();
        let folder = lake.path(LEASE_FOLDER);
        let here = host_id();
        let started = std::time::Instant::now();
        let mut announced = false;
        loop {
            let leases = list_leases(store.as_ref(), &folder).await?;
            let now = now_micros();
            let next = match leases.last() {
                None => 1,
                Some((seq, path)) => {
                    let Some(current) = read_record(store.as_ref(), path).await? else {
                        continue; // replaced between the listing and the read: look again
                    };
                    match current.free_because(now, &here) {
                        Some(why) => {
                            if why != "released" {
                                log::warn!(
                                    "taking over the lease of {} on {}: {why}",
                                    current.describe(),
                                    lake.url()
                                );
                            }
                            seq + 1
                        }
                        None => {
                            if started.elapsed() >= config.wait {
                                return Err(DataFusionError::Execution(format!(
                                    "lake {} is being written by run {}; gave up waiting after \
                                     {:.0} s (MRS_LEASE_WAIT_SECS)",
                                    lake.url(),
                                    current.describe(),
                                    config.wait.as_secs_f64()
                                )));
                            }
                            if !announced {
                                eprintln!(
                                    "mrs: waiting for the lease of {}: held by run {}",
                                    lake.url(),
                                    current.describe()
                                );
                                announced = true;
                            }
                            tokio::time::sleep(config.poll).await;
                            continue;
                        }
                    }
                }
            };
            let record = LeaseRecord {
                holder: holder.to_string(),
                host: here.host.clone(),
                boot_id: here.boot_id.clone(),
                pid: std::process::id(),
                pid_start: proc_stat(std::process::id()).and_then(|(_, start)| start),
                acquired_at_micros: now,
                expires_at_micros: now + micros(config.ttl),
                released: false,
            };
            let path = folder.clone().join(seq_name(next));
            let put = store
                .put_opts(&path, payload(&record)?, PutOptions::from(PutMode::Create))
                .await;
            match put {
                Ok(_) => {
                    // Older numbers are history: keep the one just below, in case a slow
                    // reader listed it, and drop the rest.
                    for (seq, old) in &leases {
                        if *seq + 1 < next {
                            let _ = store.delete(old).await;
                        }
                    }
                    log::info!("lease {next} of {} taken by {holder}", lake.url());
                    let lost = Arc::new(AtomicBool::new(false));
                    let heartbeat = tokio::spawn(heartbeat(
                        Arc::clone(&store),
                        folder.clone(),
                        next,
                        record.clone(),
                        config.ttl,
                        Arc::clone(&lost),
                    ));
                    return Ok(Self {
                        store,
                        folder,
                        seq: next,
                        record,
                        lost,
                        heartbeat,
                    });
                }
                // Another run took this number first: look again.
                Err(datafusion::object_store::Error::AlreadyExists { .. }) => {}
                Err(e @ datafusion::object_store::Error::NotImplemented { .. }) => {
                    return Err(DataFusionError::Execution(format!(
                        "the object store of {} cannot create an object only if it is absent \
                         (conditional put, If-None-Match), which the run lease needs: {e}",
                        lake.url()
                    )));
                }
                Err(e) => return Err(object_error(e)),
            }
        }
    }

    /// Fails if another run took the lease over (this one stalled past its expiry).
    pub fn check(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(DataFusionError::Execution(format!(
                "run {} lost the lake lease (it was not renewed in time and another run took it \
                 over); stopping",
                self.record.holder
            )));
        }
        Ok(())
    }

    /// The number of this lease among the lake's leases.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Stops renewing and marks the lease released, so a waiting run starts at once.
    pub async fn release(self) -> Result<()> {
        self.heartbeat.abort();
        let leases = list_leases(self.store.as_ref(), &self.folder).await?;
        if leases.last().map(|(seq, _)| *seq) != Some(self.seq) {
            return Ok(()); // taken over: nothing of ours to release
        }
        let mut record = self.record.clone();
        record.released = true;
        record.expires_at_micros = now_micros();
        self.store
            .put(
                &self.folder.clone().join(seq_name(self.seq)),
                payload(&record)?,
            )
            .await
            .map_err(object_error)?;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Unreleased (a panic or an early return): stop renewing; the lease expires.
        self.heartbeat.abort();
    }
}

/// Renews the lease every `ttl / 3` while it is still the highest one.
async fn heartbeat(
    store: Arc<dyn ObjectStore>,
    folder: ObjectPath,
    seq: u64,
    mut record: LeaseRecord,
    ttl: Duration,
    lost: Arc<AtomicBool>,
) {
    let path = folder.clone().join(seq_name(seq));
    loop {
        tokio::time::sleep(ttl / 3).await;
        let now = now_micros();
        match list_leases(store.as_ref(), &folder).await {
            Ok(leases) if leases.last().map(|(s, _)| *s) != Some(seq) => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Ok(_) => {
                record.expires_at_micros = now + micros(ttl);
                let renewed = match payload(&record) {
                    Ok(p) => store.put(&path, p).await.map_err(object_error),
                    Err(e) => Err(e),
                };
                if let Err(e) = renewed {
                    log::warn!("cannot renew the lake lease: {e}");
                }
            }
            Err(e) => log::warn!("cannot check the lake lease: {e}"),
        }
        if now_micros() >= record.expires_at_micros {
            // Not renewed in time: another run may take it over any moment.
            lost.store(true, Ordering::SeqCst);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_missing_one_is_not() {
        let me = std::process::id();
        let start = proc_stat(me).and_then(|(_, s)| s);
        assert!(start.is_some(), "/proc/self/stat gives a start time");
        assert!(process_alive(me, start));
        assert!(!process_alive(me, start.map(|s| s + 1)), "a reused pid");
        assert!(!process_alive(u32::MAX - 1, None));
    }
}
