//! Path types whose constructors enforce the invariants the plan relies on.
//!
//! Every container path in a [`Plan`](crate::Plan) is a [`ContainerPath`]:
//! absolute, normalised (no empty, `.` or `..` component, no trailing slash),
//! free of NUL bytes. A value that breaks this cannot be built, so a plan can
//! never name a destination outside the container root (CVE-2024-0134 is the
//! symlink flavour of that bug). [`HostPath`] has the same shape for host
//! files, and [`FileName`] is a single component, which is all a symlink
//! target in a plan may be.
//!
//! These are strings, not `std::path::Path`: the hook resolves them inside
//! the root with `openat2(RESOLVE_IN_ROOT)`, never by string concatenation.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest path accepted (Linux `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;
/// Longest file name accepted (Linux `NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;

/// Why a path or file name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("path {0:?} is not absolute")]
    NotAbsolute(String),
    /// The path has an empty, `.` or `..` component or a trailing slash.
    #[error("path {0:?} is not normalised (empty, '.' or '..' component)")]
    NotNormalised(String),
    /// The path or name contains a NUL byte.
    #[error("{0:?} contains a NUL byte")]
    Nul(String),
    /// The path or name is too long.
    #[error("{0:?} is too long")]
    TooLong(String),
    /// A file name is empty, `.`, `..` or contains `/`.
    #[error("{0:?} is not a single file name")]
    NotAFileName(String),
}

fn check_abs(s: &str) -> Result<(), PathError> {
    if s.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong(s.to_owned()));
    }
    if s.contains('\0') {
        return Err(PathError::Nul(s.to_owned()));
    }
    let Some(rest) = s.strip_prefix('/') else {
        return Err(PathError::NotAbsolute(s.to_owned()));
    };
    if rest.is_empty() {
        return Ok(());
    }
    if rest
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(PathError::NotNormalised(s.to_owned()));
    }
    Ok(())
}

macro_rules! abs_path_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Checks the invariants: absolute, normalised, no NUL. Input
            /// longer than [`MAX_PATH_LEN`] bytes is rejected too (a sanity
            /// bound; joins may produce longer paths, which the kernel refuses
            /// when the plan is applied).
            pub fn new(path: impl Into<String>) -> Result<Self, PathError> {
                let path = path.into();
                check_abs(&path)?;
                Ok(Self(path))
            }

            /// The root, `/`.
            pub fn root() -> Self {
                Self("/".to_owned())
            }

            /// The path as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// True for `/`.
            pub fn is_root(&self) -> bool {
                self.0 == "/"
            }

            /// This path with one more component.
            pub fn join(&self, name: &FileName) -> Self {
                let mut s = String::with_capacity(self.0.len() + 1 + name.0.len());
                s.push_str(&self.0);
                if !self.is_root() {
                    s.push('/');
                }
                s.push_str(&name.0);
                Self(s)
            }

            /// This path followed by another absolute path, as if `other` were
            /// resolved with this path as its root: `/run/nvidia/driver` +
            /// `/usr/bin/nvidia-smi`.
            pub fn join_abs(&self, other: &str) -> Result<Self, PathError> {
                check_abs(other)?;
                if self.is_root() {
                    return Ok(Self(other.to_owned()));
                }
                if other == "/" {
                    return Ok(self.clone());
                }
                Self::new(format!("{}{}", self.0, other))
            }

            /// `other`, seen under this path as its root: `/run/nvidia/driver`
            /// under which `/usr/bin/nvidia-smi` is
            /// `/run/nvidia/driver/usr/bin/nvidia-smi`. Both are normalised, so
            /// the result is too.
            pub fn under(&self, other: &Self) -> Self {
                if self.is_root() {
                    return other.clone();
                }
                if other.is_root() {
                    return self.clone();
                }
                let mut s = String::with_capacity(self.0.len() + other.0.len());
                s.push_str(&self.0);
                s.push_str(&other.0);
                Self(s)
            }

            /// The last component as a string; `None` for `/`.
            pub fn file_name_str(&self) -> Option<&str> {
                if self.is_root() {
                    return None;
                }
                // A byte loop: names are short, and `rfind` sets up a
                // searcher per call.
                let at = self.0.bytes().rposition(|b| b == b'/')?;
                self.0.get(at + 1..)
            }

            /// The last component; `None` for `/`.
            pub fn file_name(&self) -> Option<FileName> {
                if self.is_root() {
                    return None;
                }
                let name = self.0.rsplit('/').next().unwrap_or_default();
                FileName::new(name).ok()
            }

            /// The parent directory; `None` for `/`.
            pub fn parent(&self) -> Option<Self> {
                if self.is_root() {
                    return None;
                }
                match self.0.rfind('/') {
                    Some(0) => Some(Self::root()),
                    Some(i) => Some(Self(self.0[..i].to_owned())),
                    None => None,
                }
            }

            /// The components, without the leading `/`.
            pub fn components(&self) -> impl Iterator<Item = &str> {
                self.0.split('/').filter(|c| !c.is_empty())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = PathError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

abs_path_type! {
    /// An absolute, normalised path inside the container root.
    ContainerPath
}

abs_path_type! {
    /// An absolute, normalised path on the host (a mount source).
    HostPath
}

impl HostPath {
    /// The same path, seen in the container.
    pub fn to_container(&self) -> ContainerPath {
        ContainerPath(self.0.clone())
    }
}

/// One path component: not empty, not `.` or `..`, no `/`, no NUL.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileName(String);

impl FileName {
    /// Checks the invariants.
    pub fn new(name: impl Into<String>) -> Result<FileName, PathError> {
        let name = name.into();
        if name.len() > MAX_NAME_LEN {
            return Err(PathError::TooLong(name));
        }
        if name.contains('\0') {
            return Err(PathError::Nul(name));
        }
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(PathError::NotAFileName(name));
        }
        Ok(FileName(name))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A component of a [`HostPath`] or [`ContainerPath`] (never empty,
    /// `.`, `..`, nor with `/` or NUL): only its length is left to check.
    pub(crate) fn of_component(name: &str) -> Option<FileName> {
        (name.len() <= MAX_NAME_LEN).then(|| FileName(name.to_owned()))
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl AsRef<str> for FileName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for FileName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FileName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        FileName::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn container_path_invariants() {
        for ok in [
            "/",
            "/dev/nvidia0",
            "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
            "/a/..b/c.",
            "/.x",
        ] {
            ContainerPath::new(ok).unwrap();
        }
        for bad in [
            "", "dev", "//", "/a//b", "/a/", "/a/./b", "/a/../b", "/..", "/.", "/a\0b", "./a",
        ] {
            assert!(ContainerPath::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(ContainerPath::new(format!("/{}", "a".repeat(MAX_PATH_LEN))).is_err());
    }

    #[test]
    fn join_and_parts() {
        let root = ContainerPath::root();
        let name = FileName::new("dev").unwrap();
        let dev = root.join(&name);
        assert_eq!(dev.as_str(), "/dev");
        let node = dev.join(&FileName::new("nvidia0").unwrap());
        assert_eq!(node.as_str(), "/dev/nvidia0");
        assert_eq!(node.parent().unwrap(), dev);
        assert_eq!(dev.parent().unwrap(), root);
        assert_eq!(root.parent(), None);
        assert_eq!(node.file_name().unwrap().as_str(), "nvidia0");
        assert_eq!(root.file_name(), None);
        assert_eq!(node.components().collect::<Vec<_>>(), ["dev", "nvidia0"]);
        let h = HostPath::new("/run/nvidia/driver").unwrap();
        assert_eq!(
            h.join_abs("/usr/bin/nvidia-smi").unwrap().as_str(),
            "/run/nvidia/driver/usr/bin/nvidia-smi"
        );
        assert_eq!(
            HostPath::root().join_abs("/usr/bin").unwrap().as_str(),
            "/usr/bin"
        );
        assert_eq!(h.join_abs("/").unwrap(), h);
        assert!(h.join_abs("usr").is_err());
        assert!(h.join_abs("/a/../b").is_err());
        let bin = HostPath::new("/usr/bin/nvidia-smi").unwrap();
        assert_eq!(
            h.under(&bin).as_str(),
            "/run/nvidia/driver/usr/bin/nvidia-smi"
        );
        assert_eq!(HostPath::root().under(&bin), bin);
        assert_eq!(h.under(&HostPath::root()), h);
        assert_eq!(bin.file_name_str(), Some("nvidia-smi"));
        assert_eq!(HostPath::root().file_name_str(), None);
    }

    #[test]
    fn file_names() {
        for bad in ["", ".", "..", "a/b", "/", "a\0"] {
            assert!(FileName::new(bad).is_err(), "{bad:?} accepted");
        }
        FileName::new("libcuda.so.1").unwrap();
        FileName::new("..a").unwrap();
        assert!(serde_json::from_str::<FileName>("\"..\"").is_err());
        assert!(serde_json::from_str::<ContainerPath>("\"/a/../b\"").is_err());
    }

    proptest! {
        #[test]
        fn accepted_paths_are_normal(s in "[/a.\\-]{0,20}") {
            if let Ok(p) = ContainerPath::new(s.clone()) {
                prop_assert!(p.as_str().starts_with('/'));
                prop_assert!(!p.components().any(|c| c == ".." || c == "."));
                prop_assert!(p.is_root() || !p.as_str().ends_with('/'));
                prop_assert!(!p.as_str().contains("//"));
            }
        }

        #[test]
        fn join_keeps_invariants(s in "[/a.]{0,12}", n in "[a./]{0,6}") {
            if let (Ok(p), Ok(n)) = (ContainerPath::new(s), FileName::new(n)) {
                let j = p.join(&n);
                prop_assert!(ContainerPath::new(j.as_str()).is_ok());
            }
        }
    }
}
