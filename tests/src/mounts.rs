//! The host's mount table (`/proc/self/mountinfo`), read-only, plus cleanup of
//! mounts a killed daemon left behind.
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::{command, run_timeout};

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted.
    pub point: PathBuf,
    /// The file system type (`cgroup2`, `overlay`, ...).
    pub fstype: String,
}

/// Every mount of this process's mount namespace, in mountinfo order (later
/// lines are mounted on top of earlier ones).
pub fn mounts() -> Vec<Mount> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            Some(Mount {
                point: PathBuf::from(unescape(fields.get(4)?)),
                fstype: (*fields.get(sep + 1)?).to_owned(),
            })
        })
        .collect()
}

/// The type of the file system mounted exactly at `point` (the topmost one).
pub fn fs_type_at(point: &Path) -> Option<String> {
    mounts()
        .into_iter()
        .rev()
        .find(|m| m.point == point)
        .map(|m| m.fstype)
}

/// The type of the file system holding `path`.
pub fn fs_type_of(path: &Path) -> Option<String> {
    let path = path.canonicalize().ok()?;
    mounts()
        .into_iter()
        .rev()
        .filter(|m| path.starts_with(&m.point))
        .max_by_key(|m| m.point.as_os_str().len())
        .map(|m| m.fstype)
}

/// Lazily unmounts every mount at or below `dir`, deepest first, as left by a
/// daemon that was killed: removing the directory must not walk into them.
pub fn unmount_under(dir: &Path) {
    let mut points: Vec<PathBuf> = mounts()
        .into_iter()
        .map(|m| m.point)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    points.dedup();
    for point in points {
        let _ = run_timeout(
            command("umount").arg("--lazy").arg(&point),
            Duration::from_secs(10),
        );
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) if bytes[i] == b'\\' => {
                out.push(
                    d.iter()
                        .fold(0u8, |v, b| v.wrapping_mul(8).wrapping_add(b - b'0')),
                );
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/end\"), r"/end\");
    }

    #[test]
    fn finds_the_root_mount() {
        assert!(fs_type_at(Path::new("/")).is_some());
        assert!(fs_type_of(Path::new("/proc/self")).as_deref() == Some("proc"));
    }
}
