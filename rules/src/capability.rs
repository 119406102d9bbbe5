//! Driver capabilities (`NVIDIA_DRIVER_CAPABILITIES`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One driver capability: a set of driver files and device nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// CUDA and OpenCL: libcuda & co, MPS binaries, `/dev/nvidia-uvm*`.
    Compute,
    /// 32-bit copies of the selected libraries.
    Compat32,
    /// OpenGL, Vulkan, EGL.
    Graphics,
    /// `nvidia-smi`, NVML.
    Utility,
    /// Video encode/decode (brings the compute libraries).
    Video,
    /// X11 display: `/dev/nvidia-modeset` (brings the graphics libraries).
    Display,
    /// NVIDIA NGX.
    Ngx,
}

impl Capability {
    /// Every capability, in the toolkit's order.
    pub const ALL: [Capability; 7] = [
        Capability::Compute,
        Capability::Compat32,
        Capability::Graphics,
        Capability::Utility,
        Capability::Video,
        Capability::Display,
        Capability::Ngx,
    ];

    /// The name used in `NVIDIA_DRIVER_CAPABILITIES`.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Compute => "compute",
            Capability::Compat32 => "compat32",
            Capability::Graphics => "graphics",
            Capability::Utility => "utility",
            Capability::Video => "video",
            Capability::Display => "display",
            Capability::Ngx => "ngx",
        }
    }

    /// Parses a name, ignoring ASCII case.
    pub fn from_name(name: &str) -> Option<Capability> {
        Capability::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(name))
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a capability list was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapabilityError {
    /// A name that is not a capability at all.
    #[error("unknown driver capability {0:?}")]
    Unknown(String),
    /// A capability the configuration does not allow.
    #[error("driver capability {0} is not supported here")]
    Unsupported(Capability),
}

/// A set of capabilities. Serialized as a list of names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u8);

impl Capabilities {
    /// No capability.
    pub const fn empty() -> Capabilities {
        Capabilities(0)
    }

    /// Every capability.
    pub fn all() -> Capabilities {
        Capability::ALL.into_iter().collect()
    }

    /// The toolkit's default, `utility,compute`.
    pub fn default_set() -> Capabilities {
        [Capability::Utility, Capability::Compute]
            .into_iter()
            .collect()
    }

    /// True when `cap` is in the set.
    pub fn contains(self, cap: Capability) -> bool {
        self.0 & cap.bit() != 0
    }

    /// Adds `cap`.
    pub fn insert(&mut self, cap: Capability) {
        self.0 |= cap.bit();
    }

    /// The capabilities in both sets.
    pub fn intersection(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 & other.0)
    }

    /// The capabilities in either set.
    pub fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    /// True when `self` has nothing `other` lacks.
    pub fn is_subset(self, other: Capabilities) -> bool {
        self.0 & !other.0 == 0
    }

    /// True for the empty set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members, in the toolkit's order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    /// Parses an `NVIDIA_DRIVER_CAPABILITIES` value: a comma list of names
    /// (ASCII case ignored, blanks and empty items skipped), `all` anywhere
    /// meaning every `supported` capability, and an empty value meaning the
    /// default (`utility,compute`, limited to `supported`). A name outside
    /// `supported` is an error, as is an unknown name: the toolkit panics on
    /// both; we refuse.
    pub fn parse(value: &str, supported: Capabilities) -> Result<Capabilities, CapabilityError> {
        let mut set = Capabilities::empty();
        let mut any = false;
        let mut all = false;
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            any = true;
            if item.eq_ignore_ascii_case("all") {
                all = true;
                continue;
            }
            let cap = Capability::from_name(item)
                .ok_or_else(|| CapabilityError::Unknown(item.to_owned()))?;
            if !supported.contains(cap) {
                return Err(CapabilityError::Unsupported(cap));
            }
            set.insert(cap);
        }
        if all {
            return Ok(supported);
        }
        if !any {
            return Ok(Capabilities::default_set().intersection(supported));
        }
        Ok(set)
    }
}

impl FromIterator<Capability> for Capabilities {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        let mut set = Capabilities::empty();
        for c in iter {
            set.insert(c);
        }
        set
    }
}

impl fmt::Display for Capabilities {
    /// The comma list, e.g. `compute,utility`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(c.as_str())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Capabilities({self})")
    }
}

impl Serialize for Capabilities {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Capabilities {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<Capability>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn caps(v: &str) -> Result<Capabilities, CapabilityError> {
        Capabilities::parse(v, Capabilities::all())
    }

    #[test]
    fn every_capability_parses() {
        for c in Capability::ALL {
            assert_eq!(caps(c.as_str()).unwrap().iter().collect::<Vec<_>>(), [c]);
            assert_eq!(Capability::from_name(&c.as_str().to_uppercase()), Some(c));
        }
        assert_eq!(
            caps("compute,compat32,graphics,utility,video,display,ngx").unwrap(),
            Capabilities::all()
        );
    }

    #[test]
    fn all_default_and_lists() {
        assert_eq!(caps("all").unwrap(), Capabilities::all());
        assert_eq!(caps("compute,all").unwrap(), Capabilities::all());
        assert_eq!(caps("").unwrap().to_string(), "compute,utility");
        assert_eq!(caps(" , ").unwrap().to_string(), "compute,utility");
        assert_eq!(
            caps(" utility , video ").unwrap().to_string(),
            "utility,video"
        );
        assert_eq!(caps("compute,compute").unwrap().to_string(), "compute");
        let limited: Capabilities = [Capability::Utility].into_iter().collect();
        assert_eq!(Capabilities::parse("all", limited).unwrap(), limited);
        assert_eq!(Capabilities::parse("", limited).unwrap(), limited);
        assert_eq!(
            Capabilities::parse("compute", limited).unwrap_err(),
            CapabilityError::Unsupported(Capability::Compute)
        );
    }

    #[test]
    fn unknown_is_an_error() {
        assert_eq!(
            caps("compute,gpu").unwrap_err(),
            CapabilityError::Unknown("gpu".into())
        );
        assert_eq!(
            caps("compute gpu").unwrap_err(),
            CapabilityError::Unknown("compute gpu".into())
        );
    }

    #[test]
    fn set_operations_and_serde() {
        let a: Capabilities = [Capability::Compute, Capability::Utility]
            .into_iter()
            .collect();
        let b: Capabilities = [Capability::Utility].into_iter().collect();
        assert!(b.is_subset(a));
        assert!(!a.is_subset(b));
        assert_eq!(a.intersection(b), b);
        assert_eq!(b.union(a), a);
        assert!(Capabilities::empty().is_empty());
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"["compute","utility"]"#);
        assert_eq!(serde_json::from_str::<Capabilities>(&json).unwrap(), a);
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,60}") {
            let _ = caps(&s);
        }
    }
}
