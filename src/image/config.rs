//! The parts of an image's config a container is made from, taken from the OCI image config
//! (`oci_spec::image::ImageConfiguration`; Docker's config is the same JSON for these fields).
use std::collections::BTreeMap;

use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};

use super::Error;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=VALUE`, as the image sets them.
    pub env: Vec<String>,
    pub working_dir: String,
    /// `uid[:gid]` or `name[:group]`, resolved in the image's /etc/passwd and /etc/group at start.
    pub user: String,
    /// `80/tcp`, `53/udp`.
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub os: String,
    pub architecture: String,
}

impl ImageConfig {
    pub fn from_oci(image: &ImageConfiguration) -> ImageConfig {
        let mut out = ImageConfig {
            os: image.os().to_string(),
            architecture: image.architecture().to_string(),
            ..ImageConfig::default()
        };
        if let Some(c) = image.config() {
            out.entrypoint = c.entrypoint().clone().unwrap_or_default();
            out.cmd = c.cmd().clone().unwrap_or_default();
            out.env = c.env().clone().unwrap_or_default();
            out.working_dir = c.working_dir().clone().unwrap_or_default();
            out.user = c.user().clone().unwrap_or_default();
            out.exposed_ports = c.exposed_ports().clone().unwrap_or_default();
            out.exposed_ports.sort();
            out.labels = c.labels().clone().unwrap_or_default().into_iter().collect();
            out.stop_signal = c.stop_signal().clone();
        }
        out
    }

    /// The command a container runs when given none: Entrypoint + Cmd, as Docker joins them.
    pub fn command(&self) -> Vec<String> {
        self.entrypoint.iter().chain(self.cmd.iter()).cloned().collect()
    }
}

/// Parses a config blob; `what` names it in the error.
pub fn parse(bytes: &[u8], what: &str) -> Result<ImageConfiguration, Error> {
    ImageConfiguration::from_reader(bytes).map_err(|e| Error::Json { what: what.to_string(), cause: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_fields() -> Result<(), Error> {
        let json = br#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"],
            "Env":["PATH=/bin"],"WorkingDir":"/srv","User":"1000:1000","ExposedPorts":{"80/tcp":{},"53/udp":{}},
            "Labels":{"a":"b"}},"rootfs":{"type":"layers","diff_ids":[]},"container_config":{"Hostname":"x"}}"#;
        let c = ImageConfig::from_oci(&parse(json, "config")?);
        assert_eq!(c.command(), ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(c.exposed_ports, ["53/udp", "80/tcp"]);
        assert_eq!(c.working_dir, "/srv");
        assert_eq!(c.user, "1000:1000");
        assert_eq!(c.labels.get("a").map(String::as_str), Some("b"));
        Ok(())
    }
}
