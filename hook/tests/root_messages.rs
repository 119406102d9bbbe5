//! Refusals inside a container root read as words, one line each: no Rust
//! debug forms (`OFlag(...)`, `ResolveFlag(...)`); the syscall and its
//! flags go to the debug log only.
use std::os::unix::fs::symlink;
use std::path::Path;

use hook::apply::root::ContainerRoot;
use nix::fcntl::OFlag;
use rules::ContainerPath;

/// The error as the hook prints it (`{:#}`: the chain on one line).
fn line(err: impl std::error::Error + Send + Sync + 'static) -> String {
    format!("{:#}", anyhow::Error::from(err))
}

fn path(p: &str) -> ContainerPath {
    ContainerPath::new(p).unwrap()
}

#[test]
fn symlink_loop_is_said_in_words() {
    let dir = tempfile::tempdir().unwrap();
    symlink("b", dir.path().join("a")).unwrap();
    symlink("a", dir.path().join("b")).unwrap();
    let root = ContainerRoot::open(dir.path()).unwrap();
    let err = root
        .resolve(&path("/a/lib"), OFlag::O_PATH | OFlag::O_DIRECTORY)
        .unwrap_err();
    assert_eq!(
        line(err),
        "cannot resolve /a/lib inside the container root: it is a symlink loop \
         (or more than 40 symlinks, or a /proc magic link)"
    );
}

#[test]
fn long_name_missing_and_not_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "").unwrap();
    let root = ContainerRoot::open(dir.path()).unwrap();
    let long = format!("/{}", "n".repeat(300));
    let err = root.resolve(&path(&long), OFlag::O_PATH).unwrap_err();
    assert_eq!(
        line(err),
        format!("cannot resolve {long} inside the container root: name too long")
    );
    let err = root.resolve(&path("/missing"), OFlag::O_PATH).unwrap_err();
    assert_eq!(
        line(err),
        "cannot resolve /missing inside the container root: it does not exist"
    );
    let err = root.resolve(&path("/file/x"), OFlag::O_PATH).unwrap_err();
    assert_eq!(
        line(err),
        "cannot resolve /file/x inside the container root: a component of the path is not a directory"
    );
}

#[test]
fn missing_root_is_said_in_words() {
    let err = ContainerRoot::open(Path::new("/nonexistent-root-for-test")).unwrap_err();
    let text = line(err);
    assert_eq!(
        text,
        "cannot open the container root \"/nonexistent-root-for-test\": it does not exist"
    );
    assert!(!text.contains("OFlag") && !text.contains("ResolveFlag"));
}
