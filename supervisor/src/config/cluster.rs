//! Cluster mode's settings: on only when `ETCD_ENDPOINTS` is set; without it a single host
//! works exactly as it always did and needs no etcd.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cluster_api::handshake::{ClusterSecret, MIN_SECRET_BYTES};
use ids::HostId;

use super::ConfigError;

/// Several hosts acting as one SFU, coordinated by etcd (docs/cluster.md).
#[derive(Debug, Clone, clap::Args)]
pub struct ClusterArgs {
    /// etcd endpoints, comma-separated (e.g. http://10.0.0.5:2379): turns cluster mode on.
    /// Unset: this host is the whole SFU.
    #[arg(long, env = "ETCD_ENDPOINTS", value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// This host's id in the cluster, unique (default: the machine's host name): 1 to 63
    /// letters, digits, '-', '_' and '.'.
    #[arg(long, env = "HOST_ID")]
    pub host_id: Option<String>,
    /// ip:port where this supervisor takes links from the other supervisors; published to
    /// them, so it must be reachable from every host (not 0.0.0.0).
    #[arg(long, env = "CLUSTER_ADDR")]
    pub cluster_addr: Option<SocketAddr>,
    /// The secret shared by every host of the cluster (32 bytes or more, e.g. `openssl rand
    /// -hex 32`): authenticates and seals every supervisor-to-supervisor link. Cluster mode
    /// refuses to start without it.
    #[arg(long, env = "CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// File holding the cluster secret (kept out of `ps` and the environment); instead of
    /// --cluster-secret.
    #[arg(long, env = "CLUSTER_SECRET_FILE", conflicts_with = "cluster_secret")]
    pub cluster_secret_file: Option<PathBuf>,
    /// The signaling URL clients use for this host (e.g. wss://sfu2.example.org/ws),
    /// published so clients can fail over to it. Default: built from PUBLIC_IP (or the bind
    /// address) and the port.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Seconds this host's lease in etcd outlives its last renewal (renewed about every
    /// second): how long a dead host keeps its rooms before another may take them.
    #[arg(long, env = "CLUSTER_LEASE_SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=60))]
    pub cluster_lease_secs: u64,
    /// Key prefix in etcd (several clusters may share one etcd).
    #[arg(long, env = "CLUSTER_PREFIX", default_value = "/sfu/")]
    pub cluster_prefix: String,
}

/// Cluster mode's settings once checked.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// etcd's endpoints.
    pub endpoints: Vec<String>,
    /// This host.
    pub host: HostId,
    /// Where the other supervisors reach this one.
    pub cluster_addr: SocketAddr,
    /// The shared secret.
    pub secret: ClusterSecret,
    /// What clients use to reach this host.
    pub public_url: String,
    /// The lease's time to live.
    pub lease: Duration,
    /// The keys' prefix.
    pub prefix: String,
}

impl ClusterArgs {
    /// Reads the secret given as a file.
    pub fn load_secret(&mut self) -> Result<(), ConfigError> {
        if let Some(path) = &self.cluster_secret_file {
            self.cluster_secret = Some(super::secrets::read_secret_file(
                path,
                "CLUSTER_SECRET_FILE",
            )?);
        }
        Ok(())
    }

    /// The checked settings; `None` without `ETCD_ENDPOINTS` (one host, no cluster).
    /// `default_url` is this host's signaling URL when PUBLIC_URL is unset.
    pub fn settings(&self, default_url: String) -> Result<Option<ClusterSettings>, ConfigError> {
        let endpoints: Vec<String> = self
            .etcd_endpoints
            .iter()
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect();
        if endpoints.is_empty() {
            return Ok(None);
        }
        let cluster = |why: String| ConfigError::Cluster(why);
        let Some(secret) = &self.cluster_secret else {
            return Err(cluster(format!(
                "cluster mode (ETCD_ENDPOINTS) needs CLUSTER_SECRET or CLUSTER_SECRET_FILE, the same on every host ({MIN_SECRET_BYTES} bytes or more, e.g. `openssl rand -hex 32`)"
            )));
        };
        let secret = ClusterSecret::new(secret.as_bytes()).map_err(|e| cluster(e.to_string()))?;
        let Some(cluster_addr) = self.cluster_addr else {
            return Err(cluster(
                "cluster mode (ETCD_ENDPOINTS) needs CLUSTER_ADDR (ip:port the other supervisors reach this one on)".into(),
            ));
        };
        if cluster_addr.ip().is_unspecified() || cluster_addr.port() == 0 {
            return Err(cluster(format!(
                "CLUSTER_ADDR {cluster_addr} is published to the other hosts: give an address and port they can reach"
            )));
        }
        let host = match &self.host_id {
            Some(id) => id.clone(),
            None => hostname().ok_or_else(|| {
                cluster("HOST_ID is unset and the host name cannot be read: set HOST_ID".into())
            })?,
        };
        let host = HostId::parse(&host).map_err(|e| cluster(format!("HOST_ID: {e}")))?;
        Ok(Some(ClusterSettings {
            endpoints,
            host,
            cluster_addr,
            secret,
            public_url: self.public_url.clone().unwrap_or(default_url),
            lease: Duration::from_secs(self.cluster_lease_secs),
            prefix: self.cluster_prefix.clone(),
        }))
    }
}

/// The machine's host name.
fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use clap::Parser;

    fn settings(args: &[&str]) -> Result<Option<super::ClusterSettings>, String> {
        let config =
            Config::try_parse_from(std::iter::once("supervisor").chain(args.iter().copied()))
                .map_err(|e| e.to_string())?;
        config
            .cluster
            .settings("ws://127.0.0.1:8000/ws".into())
            .map_err(|e| e.to_string())
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn without_etcd_endpoints_there_is_no_cluster() {
        assert!(settings(&[]).expect("fine").is_none());
    }

    #[test]
    fn cluster_mode_needs_a_long_secret_and_a_reachable_address() {
        let missing = settings(&[
            "--etcd-endpoints",
            "http://e:2379",
            "--cluster-addr",
            "10.0.0.1:7000",
        ])
        .expect_err("no secret");
        assert!(missing.contains("CLUSTER_SECRET"), "{missing}");
        let short = settings(&[
            "--etcd-endpoints",
            "http://e:2379",
            "--cluster-addr",
            "10.0.0.1:7000",
            "--cluster-secret",
            "short",
        ])
        .expect_err("short secret");
        assert!(short.contains("at least 32"), "{short}");
        let anywhere = settings(&[
            "--etcd-endpoints",
            "http://e:2379",
            "--cluster-addr",
            "0.0.0.0:7000",
            "--cluster-secret",
            SECRET,
        ])
        .expect_err("unspecified address");
        assert!(anywhere.contains("CLUSTER_ADDR"), "{anywhere}");
        let bad_id = settings(&[
            "--etcd-endpoints",
            "http://e:2379",
            "--cluster-addr",
            "10.0.0.1:7000",
            "--cluster-secret",
            SECRET,
            "--host-id",
            "a b",
        ])
        .expect_err("bad host id");
        assert!(bad_id.contains("HOST_ID"), "{bad_id}");
        let good = settings(&[
            "--etcd-endpoints",
            "http://e1:2379,http://e2:2379",
            "--cluster-addr",
            "10.0.0.1:7000",
            "--cluster-secret",
            SECRET,
            "--host-id",
            "h1",
        ])
        .expect("valid")
        .expect("cluster on");
        assert_eq!(good.endpoints.len(), 2);
        assert_eq!(good.host.as_str(), "h1");
        assert_eq!(good.public_url, "ws://127.0.0.1:8000/ws");
        assert_eq!(good.lease.as_secs(), 5);
    }
}
