//! Driver and CUDA versions as they really are.
//!
//! NVIDIA versions are not semver: drivers have two parts (`570.26`) or a
//! zero-padded third part (`535.104.05`), CUDA versions are `12.2` or `13.0`.
//! They compare numerically part by part, and missing or trailing zero parts
//! are equal (`12.0 == 12`), as libnvidia-container's `dsl_compare_version`
//! does (docs/cuda.md §1.4). [`Version`] parses them tolerantly and orders them
//! through `semver::Version::new(major, minor, patch)`; it keeps the text as
//! written so that messages show `535.104.05`, not `535.104.5`.
//!
//! Floats are never used (docs/cuda.md §1.2: `535.104f` loses the third part).

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most numeric parts a version may have (`major.minor.patch`).
pub const MAX_PARTS: usize = 3;

/// Why a version string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The string is empty.
    #[error("empty version")]
    Empty,
    /// A dot-separated part is not a decimal number.
    #[error("invalid version {text:?}: {part:?} is not a number")]
    NotANumber {
        /// The whole input.
        text: String,
        /// The offending part.
        part: String,
    },
    /// A part does not fit in 64 bits.
    #[error("invalid version {text:?}: {part:?} is too large")]
    TooLarge {
        /// The whole input.
        text: String,
        /// The offending part.
        part: String,
    },
    /// More than [`MAX_PARTS`] parts.
    #[error("invalid version {text:?}: more than {MAX_PARTS} parts")]
    TooManyParts {
        /// The whole input.
        text: String,
    },
}

/// A driver, CUDA or compute-capability version.
///
/// Equality, ordering and hashing use the numeric parts only
/// (`Version::parse("12")? == Version::parse("12.0")?`); `Display` and
/// serialization give the text as written.
#[derive(Clone)]
pub struct Version {
    key: semver::Version,
    text: String,
}

impl Version {
    /// Parses `12`, `12.2`, `535.104.05`: one to three decimal parts, leading
    /// zeros allowed. Surrounding whitespace is not accepted.
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        if text.is_empty() {
            return Err(VersionError::Empty);
        }
        let mut parts = [0u64; MAX_PARTS];
        for (i, part) in text.split('.').enumerate() {
            if i >= MAX_PARTS {
                return Err(VersionError::TooManyParts {
                    text: text.to_owned(),
                });
            }
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(VersionError::NotANumber {
                    text: text.to_owned(),
                    part: part.to_owned(),
                });
            }
            parts[i] = part.parse().map_err(|_| VersionError::TooLarge {
                text: text.to_owned(),
                part: part.to_owned(),
            })?;
        }
        Ok(Version {
            key: semver::Version::new(parts[0], parts[1], parts[2]),
            text: text.to_owned(),
        })
    }

    /// `major.minor`, written that way.
    pub fn major_minor(major: u64, minor: u64) -> Version {
        Version {
            key: semver::Version::new(major, minor, 0),
            text: format!("{major}.{minor}"),
        }
    }

    /// The CUDA version that `cuDriverGetVersion` and
    /// `nvmlSystemGetCudaDriverVersion_v2` report: `major*1000 + minor*10`, so
    /// `12040` is `12.4`. The minor is `(v % 1000) / 10` (docs/cuda.md §1.3; the
    /// toolkit's `v % 100 / 10` turns 12100 into 12.0).
    pub fn from_cuda_driver_int(v: u32) -> Version {
        Version::major_minor(u64::from(v / 1000), u64::from((v % 1000) / 10))
    }

    /// The first part.
    pub fn major(&self) -> u64 {
        self.key.major
    }

    /// The second part (0 when absent).
    pub fn minor(&self) -> u64 {
        self.key.minor
    }

    /// The third part (0 when absent).
    pub fn patch(&self) -> u64 {
        self.key.patch
    }

    /// This version cut to `major.minor`, written that way.
    pub fn to_major_minor(&self) -> Version {
        Version::major_minor(self.major(), self.minor())
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The ordered representation.
    pub fn as_semver(&self) -> &semver::Version {
        &self.key
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({})", self.text)
    }
}

impl std::str::FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Version::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn parses_real_versions() {
        assert_eq!(
            v("535.104.05").as_semver(),
            &semver::Version::new(535, 104, 5)
        );
        assert_eq!(v("570.26").as_semver(), &semver::Version::new(570, 26, 0));
        assert_eq!(v("12.2").as_semver(), &semver::Version::new(12, 2, 0));
        assert_eq!(v("13.0").as_semver(), &semver::Version::new(13, 0, 0));
        assert_eq!(v("12").as_semver(), &semver::Version::new(12, 0, 0));
        assert_eq!(v("535.104.05").to_string(), "535.104.05");
    }

    #[test]
    fn trailing_zeros_and_leading_zeros_are_equal() {
        assert_eq!(v("12.0"), v("12"));
        assert_eq!(v("12.0.0"), v("12"));
        assert_eq!(v("535.104.05"), v("535.104.5"));
        assert!(v("535.104.05") > v("535.86.10"));
        assert!(v("570.26") < v("570.124.06"));
        assert!(v("570.124.06") > v("570.26"));
        assert!(v("12.10") > v("12.9"));
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            ".",
            "12.",
            ".12",
            "a",
            "12.x",
            "1.2.3.4",
            "-1",
            "+1",
            " 12",
            "12 ",
            "1e3",
            "99999999999999999999999",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            Version::parse("1.2.3.4").unwrap_err().to_string(),
            "invalid version \"1.2.3.4\": more than 3 parts"
        );
    }

    #[test]
    fn cuda_driver_int() {
        assert_eq!(Version::from_cuda_driver_int(12040).to_string(), "12.4");
        assert_eq!(Version::from_cuda_driver_int(12100).to_string(), "12.10");
        assert_eq!(Version::from_cuda_driver_int(9010).to_string(), "9.1");
        assert_eq!(Version::from_cuda_driver_int(13000).to_string(), "13.0");
        assert_eq!(Version::from_cuda_driver_int(11080), v("11.8"));
    }

    #[test]
    fn serde_round_trip_keeps_text() {
        let json = serde_json::to_string(&v("535.104.05")).unwrap();
        assert_eq!(json, "\"535.104.05\"");
        let back: Version = serde_json::from_str(&json).unwrap();
        assert_eq!(back.as_str(), "535.104.05");
        assert!(serde_json::from_str::<Version>("\"x\"").is_err());
    }

    fn render(parts: &[u64], zeros: &[usize]) -> String {
        parts
            .iter()
            .zip(zeros)
            .map(|(p, z)| format!("{}{}", "0".repeat(*z), p))
            .collect::<Vec<_>>()
            .join(".")
    }

    fn padded(parts: &[u64]) -> [u64; 3] {
        let mut out = [0; 3];
        out[..parts.len()].copy_from_slice(parts);
        out
    }

    proptest! {
        #[test]
        fn order_matches_numeric_parts(
            a in prop::collection::vec(0u64..2000, 1..=3),
            b in prop::collection::vec(0u64..2000, 1..=3),
            za in prop::collection::vec(0usize..3, 3),
            zb in prop::collection::vec(0usize..3, 3),
        ) {
            let va = v(&render(&a, &za));
            let vb = v(&render(&b, &zb));
            prop_assert_eq!(va.cmp(&vb), padded(&a).cmp(&padded(&b)));
            prop_assert_eq!(va == vb, padded(&a) == padded(&b));
            prop_assert_eq!(va.cmp(&vb), vb.cmp(&va).reverse());
        }

        #[test]
        fn order_is_transitive(
            a in prop::collection::vec(0u64..20, 1..=3),
            b in prop::collection::vec(0u64..20, 1..=3),
            c in prop::collection::vec(0u64..20, 1..=3),
        ) {
            let z = [0usize; 3];
            let (va, vb, vc) = (v(&render(&a, &z)), v(&render(&b, &z)), v(&render(&c, &z)));
            if va <= vb && vb <= vc {
                prop_assert!(va <= vc);
            }
            prop_assert!(va <= vb || vb <= va);
        }

        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = Version::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_versionish(s in "[0-9.]{0,30}") {
            if let Ok(ver) = Version::parse(&s) {
                prop_assert_eq!(ver.to_string(), s);
            }
        }
    }
}
