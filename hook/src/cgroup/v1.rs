//! cgroup v1: append the planned rules to the container's `devices.allow`.
//!
//! The kernel takes one rule per write(2), so each rule is written on its
//! own. A write only widens access (the cgroup's existing rules stay), and
//! the kernel refuses a rule the parent cgroup does not allow (`EPERM`).
#![forbid(unsafe_code)]

use std::io::Write;
use std::path::Path;

use nix::errno::Errno;

use super::CgroupError;

/// Writes `c M:m rw` for every planned rule to `<cgroup>/devices.allow`
/// (a deny rule, which the plan never has, would go to `devices.deny`).
pub fn allow(cgroup: &Path, planned: &[rules::DeviceRule]) -> Result<(), CgroupError> {
    // Each control file is opened once; every rule is still its own write.
    let mut open: [Option<std::fs::File>; 2] = [None, None];
    for rule in planned {
        let (slot, file) = if rule.allow {
            (0, "devices.allow")
        } else {
            (1, "devices.deny")
        };
        let line = rule.to_string();
        let fail = |e: std::io::Error| CgroupError::V1Write {
            rule: line.clone(),
            cgroup: cgroup.to_path_buf(),
            file,
            errno: e.raw_os_error().map_or(Errno::EIO, Errno::from_raw),
        };
        let f = match &mut open[slot] {
            Some(f) => f,
            empty => empty.insert(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(cgroup.join(file))
                    .map_err(fail)?,
            ),
        };
        f.write_all(line.as_bytes()).map_err(fail)?;
        log::debug!("{}: {file} += {line}", cgroup.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_one_line_per_rule() {
        // A plain file stands in for the control file: one open, one write
        // per rule (the kernel's parser takes one rule per write), so the
        // file holds the rules one after the other, without separators.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("devices.allow"), "").unwrap();
        let rule = |minor| rules::DeviceRule {
            allow: true,
            kind: rules::NodeType::Char,
            major: 195,
            minor,
            access: "rw".into(),
        };
        allow(dir.path(), &[rule(0), rule(255)]).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("devices.allow")).unwrap(),
            "c 195:0 rwc 195:255 rw"
        );
        let err = allow(&dir.path().join("missing"), &[rule(0)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot allow c 195:0 rw in {}/missing: devices.allow: No such file or directory",
                dir.path().display()
            )
        );
    }
}
