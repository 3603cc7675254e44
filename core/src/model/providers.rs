//! Execution providers as an ordered list with an explicit fallback policy.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// Where a model runs. Parsed from `cpu`, `cuda`, `cuda:N`, `tensorrt:N`,
/// `coreml`, `directml:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Provider {
    Cpu,
    Cuda { device: u32 },
    TensorRt { device: u32 },
    CoreMl,
    DirectMl { device: u32 },
}

impl Provider {
    /// Whether support for this provider was compiled into this build (a Cargo
    /// feature of splitsound-core). Compiled in is not usable: the runtime
    /// library and the machine must have it too, which loading a model checks.
    pub fn compiled_in(self) -> bool {
        match self {
            Provider::Cpu => true,
            Provider::Cuda { .. } => cfg!(feature = "cuda"),
            Provider::TensorRt { .. } => cfg!(feature = "tensorrt"),
            Provider::CoreMl => cfg!(feature = "coreml"),
            Provider::DirectMl { .. } => cfg!(feature = "directml"),
        }
    }

    /// The Cargo feature that compiles this provider in.
    pub fn feature(self) -> Option<&'static str> {
        match self {
            Provider::Cpu => None,
            Provider::Cuda { .. } => Some("cuda"),
            Provider::TensorRt { .. } => Some("tensorrt"),
            Provider::CoreMl => Some("coreml"),
            Provider::DirectMl { .. } => Some("directml"),
        }
    }

    /// An ordered list written as the CLI and the bindings take it: `"cuda:0,cpu"`.
    pub fn parse_list(list: &str) -> Result<Vec<Provider>, Error> {
        list.split(',').map(str::parse).collect()
    }

    /// Every provider kind, device 0, for listing.
    pub const ALL: [Provider; 5] = [
        Provider::Cpu,
        Provider::Cuda { device: 0 },
        Provider::TensorRt { device: 0 },
        Provider::CoreMl,
        Provider::DirectMl { device: 0 },
    ];
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provider::Cpu => f.write_str("cpu"),
            Provider::Cuda { device } => write!(f, "cuda:{device}"),
            Provider::TensorRt { device } => write!(f, "tensorrt:{device}"),
            Provider::CoreMl => f.write_str("coreml"),
            Provider::DirectMl { device } => write!(f, "directml:{device}"),
        }
    }
}

impl FromStr for Provider {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::InvalidArgument {
            name: "provider",
            expected: "cpu, cuda[:N], tensorrt[:N], coreml or directml[:N]".into(),
            actual: s.to_string(),
        };
        let lower = s.trim().to_ascii_lowercase();
        let (kind, device) = match lower.split_once(':') {
            Some((k, d)) => (k, Some(d.parse::<u32>().map_err(|_| bad())?)),
            None => (lower.as_str(), None),
        };
        let dev = device.unwrap_or(0);
        Ok(match kind {
            "cpu" if device.is_none() => Provider::Cpu,
            "cuda" | "gpu" => Provider::Cuda { device: dev },
            "tensorrt" | "trt" => Provider::TensorRt { device: dev },
            "coreml" if device.is_none() => Provider::CoreMl,
            "directml" | "dml" => Provider::DirectMl { device: dev },
            _ => return Err(bad()),
        })
    }
}

impl TryFrom<String> for Provider {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<Provider> for String {
    fn from(p: Provider) -> String {
        p.to_string()
    }
}

/// What to do when a requested provider cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// Try the next provider in the list, ending with the CPU, and log a warning.
    #[default]
    NextThenCpu,
    /// Fail with [`Error::ProviderUnavailable`] if the first provider cannot run.
    Error,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        for (s, p) in [
            ("cpu", Provider::Cpu),
            ("CUDA", Provider::Cuda { device: 0 }),
            ("cuda:1", Provider::Cuda { device: 1 }),
            ("tensorrt:2", Provider::TensorRt { device: 2 }),
            ("coreml", Provider::CoreMl),
            ("dml", Provider::DirectMl { device: 0 }),
        ] {
            assert_eq!(s.parse::<Provider>().unwrap(), p);
            assert_eq!(p.to_string().parse::<Provider>().unwrap(), p);
        }
        for bad in ["", "tpu", "cuda:x", "cpu:1", "cuda:-1"] {
            assert!(bad.parse::<Provider>().is_err(), "{bad}");
        }
        assert!(Provider::Cpu.compiled_in());
    }
}
