//! Connection settings: address, scheme, token, datacenter and TLS, from flags and the official
//! Consul CLI's environment variables. Flags win over the environment, which wins over defaults.
//! `CONSUL_HTTP_TOKEN` wins over `CONSUL_HTTP_TOKEN_FILE` (Consul's documented order; 1.8.7's CLI
//! had this backwards, bug #14466).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// A value that must never be printed: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// TLS settings (`CONSUL_CACERT`, `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY`,
/// `CONSUL_HTTP_SSL_VERIFY`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// `false` turns certificate verification off (`CONSUL_HTTP_SSL_VERIFY=false`).
    pub verify: bool,
}

/// Everything needed to talk to one Consul agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsulConfig {
    /// `host:port`.
    pub address: String,
    pub https: bool,
    pub token: Option<Secret>,
    pub datacenter: Option<String>,
    pub tls: TlsSettings,
    /// How long to wait for an agent's answer before giving up (blocking queries add their wait).
    pub timeout: Duration,
}

/// Settings given on the command line; `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct ConnectionFlags {
    pub address: Option<String>,
    pub datacenter: Option<String>,
    pub token_file: Option<PathBuf>,
    pub timeout: Option<Duration>,
}

pub const DEFAULT_ADDRESS: &str = "127.0.0.1:8500";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "yes" | "on" => Ok(true),
        "0" | "f" | "false" | "no" | "off" => Ok(false),
        other => Err(Error::Config(format!("{name}={other:?} is not a boolean"))),
    }
}

impl ConsulConfig {
    /// Builds the settings from flags and an environment lookup (`std::env::var` in the binary, a
    /// map in tests).
    pub fn resolve(
        flags: &ConnectionFlags,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConsulConfig> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let raw_address = flags
            .address
            .clone()
            .or_else(|| env("CONSUL_HTTP_ADDR"))
            .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned());
        let mut https = match env("CONSUL_HTTP_SSL") {
            Some(v) => parse_bool("CONSUL_HTTP_SSL", &v)?,
            None => false,
        };
        let address = if let Some(rest) = raw_address.strip_prefix("https://") {
            https = true;
            rest
        } else if let Some(rest) = raw_address.strip_prefix("http://") {
            https = false;
            rest
        } else if raw_address.starts_with("unix://") {
            return Err(Error::Config(format!(
                "address {raw_address:?}: unix sockets are not supported, use host:port"
            )));
        } else {
            raw_address.as_str()
        };
        let address = address.trim_end_matches('/').to_owned();
        if address.is_empty() || address.contains('/') {
            return Err(Error::Config(format!(
                "invalid Consul address {raw_address:?}"
            )));
        }
        let has_port = address
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
        let address = if has_port {
            address
        } else {
            format!("{address}:{}", if https { 8501 } else { 8500 })
        };

        let token = match env("CONSUL_HTTP_TOKEN") {
            Some(t) if flags.token_file.is_none() => Some(t),
            _ => {
                let file = flags
                    .token_file
                    .clone()
                    .or_else(|| env("CONSUL_HTTP_TOKEN_FILE").map(PathBuf::from));
                match file {
                    Some(path) => Some(
                        std::fs::read_to_string(&path)
                            .map_err(|e| Error::io(&path, e))?
                            .trim()
                            .to_owned(),
                    ),
                    None => None,
                }
            }
        }
        .filter(|t| !t.is_empty())
        .map(Secret::new);

        let verify = match env("CONSUL_HTTP_SSL_VERIFY") {
            Some(v) => parse_bool("CONSUL_HTTP_SSL_VERIFY", &v)?,
            None => true,
        };
        let tls = TlsSettings {
            ca_file: env("CONSUL_CACERT").map(PathBuf::from),
            client_cert: env("CONSUL_CLIENT_CERT").map(PathBuf::from),
            client_key: env("CONSUL_CLIENT_KEY").map(PathBuf::from),
            verify,
        };
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            return Err(Error::Config(
                "CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY must be given together".into(),
            ));
        }
        Ok(ConsulConfig {
            address,
            https,
            token,
            datacenter: flags.datacenter.clone().filter(|d| !d.is_empty()),
            tls,
            timeout: flags.timeout.unwrap_or(DEFAULT_TIMEOUT),
        })
    }

    pub fn base_url(&self) -> String {
        format!(
            "{}://{}",
            if self.https { "https" } else { "http" },
            self.address
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve(flags: ConnectionFlags, vars: &[(&str, &str)]) -> Result<ConsulConfig> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ConsulConfig::resolve(&flags, &|k| map.get(k).cloned())
    }

    #[test]
    fn flags_win_over_environment_and_defaults_apply() {
        let c = resolve(ConnectionFlags::default(), &[]).unwrap();
        assert_eq!(c.address, "127.0.0.1:8500");
        assert!(!c.https);
        let c = resolve(
            ConnectionFlags::default(),
            &[("CONSUL_HTTP_ADDR", "https://10.0.0.1")],
        )
        .unwrap();
        assert_eq!((c.address.as_str(), c.https), ("10.0.0.1:8501", true));
        let flags = ConnectionFlags {
            address: Some("127.0.0.5:9000".into()),
            ..Default::default()
        };
        let c = resolve(flags, &[("CONSUL_HTTP_ADDR", "127.0.0.9:1")]).unwrap();
        assert_eq!(c.address, "127.0.0.5:9000");
        assert!(resolve(
            ConnectionFlags::default(),
            &[("CONSUL_HTTP_ADDR", "unix:///x")]
        )
        .is_err());
        assert!(resolve(ConnectionFlags::default(), &[("CONSUL_HTTP_SSL", "maybe")]).is_err());
    }

    #[test]
    fn token_comes_from_env_then_file_and_is_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tok");
        std::fs::write(&file, "filetok\n").unwrap();
        let f = file.to_str().unwrap();
        let c = resolve(ConnectionFlags::default(), &[("CONSUL_HTTP_TOKEN_FILE", f)]).unwrap();
        assert_eq!(c.token.as_ref().unwrap().expose(), "filetok");
        let c = resolve(
            ConnectionFlags::default(),
            &[
                ("CONSUL_HTTP_TOKEN_FILE", f),
                ("CONSUL_HTTP_TOKEN", "envtok"),
            ],
        )
        .unwrap();
        assert_eq!(c.token.as_ref().unwrap().expose(), "envtok");
        assert!(!format!("{c:?}").contains("envtok"));
    }
}
