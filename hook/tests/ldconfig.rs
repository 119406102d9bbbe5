//! `hook::ldconfig::refresh` against a container-like mount namespace.
//!
//! A "container" is `unshare -m` running `sleep`, with a tmpfs mounted on
//! `<tmp>/rootfs` *inside its namespace only* and a fixtures rootfs copied
//! into it: from the host that directory stays empty, so anything `refresh`
//! does there proves it entered the container's mount namespace. Files are
//! read back through `/proc/<pid>/root`.
//!
//! Root-only: skipped (with `SKIP`) when not root, failed under `CI`.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fixtures::elf::{Arch, SharedObject};
use fixtures::rootfs::Variant;
use hook::config::HostPaths;
use hook::ldconfig::refresh;
use rules::ContainerPath;

/// Whether `CI` is set (to anything but empty, `0` or `false`, as the e2e
/// harness reads it).
fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}

/// A missing prerequisite: `SKIP` locally, a failure under CI.
fn skip(test: &str, why: &str) {
    assert!(!ci(), "CI requires {why} ({test})");
    eprintln!("SKIP {test}: needs {why}");
}

fn privileged(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    skip(test, "root");
    false
}

/// The host's static ldconfig (Ubuntu: `ldconfig.real`).
fn host_ldconfig() -> PathBuf {
    [
        "/sbin/ldconfig.real",
        "/usr/sbin/ldconfig.real",
        "/sbin/ldconfig",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .unwrap_or_else(|| PathBuf::from("/sbin/ldconfig"))
}

fn paths(ldconfig: &Path) -> HostPaths {
    HostPaths {
        ldconfig: ldconfig.to_path_buf(),
        ..HostPaths::default()
    }
}

struct Container {
    child: Child,
    dir: tempfile::TempDir,
}

impl Container {
    /// Copies `variant` to `<tmp>/image`, lets `prepare` change it, then
    /// starts the namespace and copies the image into its private tmpfs.
    fn start(variant: Variant, prepare: impl FnOnce(&Path)) -> Container {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("image");
        fixtures::rootfs::copy_to(variant, &image).unwrap();
        prepare(&image);
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        let ready = dir.path().join("ready");
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(r#"mount -t tmpfs tmpfs "$1" && cp -a "$2"/. "$1"/ && touch "$3" && exec sleep 120"#)
            .arg("sh")
            .arg(&rootfs)
            .arg(&image)
            .arg(&ready)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let c = Container { child, dir };
        let start = Instant::now();
        while !ready.exists() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "container did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // From the host, the root is the empty mount point.
        assert_eq!(std::fs::read_dir(c.rootfs()).unwrap().count(), 0);
        c
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    /// The root path as the hook gets it (the bundle's, in the container's
    /// mount namespace).
    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// A path inside the container root, reached from the host.
    fn path(&self, rel: &str) -> PathBuf {
        let root = self.rootfs();
        let mut p = PathBuf::from(format!("/proc/{}/root", self.pid()));
        p.push(root.strip_prefix("/").unwrap());
        p.push(rel.trim_start_matches('/'));
        p
    }

    fn cache_keys(&self) -> Vec<(String, String)> {
        let data = std::fs::read(self.path("/etc/ld.so.cache")).unwrap();
        fixtures::ldcache::parse(&data)
            .unwrap()
            .entries
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn put_lib(image: &Path, dir: &str, file: &str, soname: &str) {
    let dir = image.join(dir.trim_start_matches('/'));
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = SharedObject::new(Arch::X86_64, soname).to_bytes().unwrap();
    std::fs::write(dir.join(file), bytes).unwrap();
}

/// Replaces the image's `/sbin/ldconfig` by a script leaving a sentinel.
fn plant_fake_ldconfig(image: &Path) {
    for p in ["sbin/ldconfig", "sbin/ldconfig.real"] {
        let path = image.join(p);
        if path.symlink_metadata().is_ok() {
            std::fs::remove_file(&path).unwrap();
        }
    }
    let sbin = image.join("sbin");
    std::fs::create_dir_all(&sbin).unwrap();
    std::fs::write(
        sbin.join("ldconfig"),
        "#!/bin/sh\ntouch /image-ldconfig-ran\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        sbin.join("ldconfig"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
}

fn dirs(list: &[&str]) -> Vec<ContainerPath> {
    list.iter()
        .map(|d| ContainerPath::new(*d).unwrap())
        .collect()
}

#[test]
fn host_ldconfig_refreshes_the_container_cache() {
    if !privileged("host_ldconfig_refreshes_the_container_cache") {
        return;
    }
    let c = Container::start(Variant::Debian, |image| {
        put_lib(
            image,
            "/usr/lib/x86_64-linux-gnu",
            "libcuda.so.550.54.14",
            "libcuda.so.1",
        );
        plant_fake_ldconfig(image);
    });
    refresh(
        &paths(&host_ldconfig()),
        c.pid(),
        &c.rootfs(),
        &dirs(&["/usr/lib/x86_64-linux-gnu"]),
    )
    .unwrap();
    let keys = c.cache_keys();
    assert!(
        keys.iter()
            .any(|(k, v)| k == "libcuda.so.1" && v == "/usr/lib/x86_64-linux-gnu/libcuda.so.1"),
        "{keys:?}"
    );
    // ldconfig made the soname link.
    assert_eq!(
        std::fs::read_link(c.path("/usr/lib/x86_64-linux-gnu/libcuda.so.1")).unwrap(),
        Path::new("libcuda.so.550.54.14")
    );
    // The image's ldconfig never ran.
    assert!(!c.path("/image-ldconfig-ran").exists());
    // The host's view of the root is untouched.
    assert_eq!(std::fs::read_dir(c.rootfs()).unwrap().count(), 0);
}

#[test]
fn lib64_dirs_are_passed_explicitly() {
    if !privileged("lib64_dirs_are_passed_explicitly") {
        return;
    }
    let c = Container::start(Variant::Lib64, |image| {
        put_lib(
            image,
            "/usr/lib64",
            "libnvidia-ml.so.550.54.14",
            "libnvidia-ml.so.1",
        );
    });
    let ldconfig = host_ldconfig();
    // Without the plan's dirs, Debian's ldconfig does not look in /usr/lib64.
    refresh(&paths(&ldconfig), c.pid(), &c.rootfs(), &[]).unwrap();
    assert!(!c.cache_keys().iter().any(|(k, _)| k == "libnvidia-ml.so.1"));
    refresh(
        &paths(&ldconfig),
        c.pid(),
        &c.rootfs(),
        &dirs(&["/usr/lib64"]),
    )
    .unwrap();
    let keys = c.cache_keys();
    assert!(
        keys.iter()
            .any(|(k, v)| k == "libnvidia-ml.so.1" && v == "/usr/lib64/libnvidia-ml.so.1"),
        "{keys:?}"
    );
}

#[test]
fn image_without_ld_so_conf_is_skipped() {
    if !privileged("image_without_ld_so_conf_is_skipped") {
        return;
    }
    let c = Container::start(Variant::Debian, |image| {
        std::fs::remove_file(image.join("etc/ld.so.conf")).unwrap();
        let _ = std::fs::remove_file(image.join("etc/ld.so.cache"));
        // A link to a file that exists on the host but not in the root
        // must not count as ld.so.conf.
        let host_only = image.parent().unwrap().join("host-only-ld.so.conf");
        std::fs::write(&host_only, "include /etc/ld.so.conf.d/*.conf\n").unwrap();
        std::os::unix::fs::symlink(&host_only, image.join("etc/ld.so.conf")).unwrap();
    });
    refresh(
        &paths(&host_ldconfig()),
        c.pid(),
        &c.rootfs(),
        &dirs(&["/usr/lib/x86_64-linux-gnu"]),
    )
    .unwrap();
    assert!(!c.path("/etc/ld.so.cache").exists());
}

#[test]
fn ldconfig_failure_reports_its_stderr() {
    if !privileged("ldconfig_failure_reports_its_stderr") {
        return;
    }
    let c = Container::start(Variant::Debian, |image| {
        // ldconfig writes /etc/ld.so.cache~ first: make that impossible.
        std::fs::create_dir(image.join("etc/ld.so.cache~")).unwrap();
    });
    let err = refresh(&paths(&host_ldconfig()), c.pid(), &c.rootfs(), &[]).unwrap_err();
    let line = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        line.starts_with(&format!(
            "cannot refresh the linker cache in {}: ldconfig exited with status 1: ",
            c.rootfs().display()
        )),
        "{line}"
    );
    assert!(line.contains("/etc/ld.so.cache~"), "{line}");
    assert!(!line.contains('\n'), "{line}");
}

#[test]
fn refusals_need_no_container() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ldconfig");
    std::fs::write(&script, "#!/bin/sh\nexec /sbin/ldconfig.real \"$@\"\n").unwrap();
    let err = refresh(&paths(&script), 1, Path::new("/"), &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the host's ldconfig {} is a script: it would run the image's loader inside the \
             container; set ldconfig to the static binary (Ubuntu: /sbin/ldconfig.real)",
            script.display()
        )
    );
    if Path::new("/bin/true").exists() {
        let err = refresh(&paths(Path::new("/bin/true")), 1, Path::new("/"), &[]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("the host's ldconfig /bin/true is dynamically linked (interpreter /"),
            "{err}"
        );
    }
    let err = refresh(&paths(&dir.path().join("missing")), 1, Path::new("/"), &[]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read the host's ldconfig "),
        "{err}"
    );
    let exe = dir.path().join("static");
    std::fs::write(&exe, fixtures::elf::executable(Arch::X86_64, "hi").unwrap()).unwrap();
    let paths = HostPaths {
        ldconfig: exe,
        procfs: dir.path().join("proc"),
        ..HostPaths::default()
    };
    let err = refresh(&paths, 4242, Path::new("/"), &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot open the mount namespace of process 4242 ({}/proc/4242/ns/mnt)",
            dir.path().display()
        )
    );
}

/// What the exec'd program sees, written to `/probe.out` in the root.
const PROBE_C: &str = r#"
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
extern char **environ;
int main(int argc, char **argv) {
    int open_fds = 0;
    for (int fd = 3; fd < 1024; fd++) if (fcntl(fd, F_GETFD) != -1) open_fds++;
    char c; ssize_t in = read(0, &c, 1);
    FILE *f = fopen("/probe.out", "w");
    if (!f) return 3;
    fprintf(f, "open_fds=%d\nstdin=%zd\n", open_fds, in);
    for (int i = 0; i < argc; i++) fprintf(f, "argv=%s\n", argv[i]);
    int n = 0; for (char **e = environ; e && *e; e++) n++;
    fprintf(f, "env=%d\npid=%d\n", n, (int)getpid());
    fprintf(f, "nnp=%d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    syscall(SYS_capget, &h, d);
    fprintf(f, "capeff=%08x%08x\ncapprm=%08x%08x\ncapinh=%08x%08x\n",
            d[1].effective, d[0].effective, d[1].permitted, d[0].permitted,
            d[1].inheritable, d[0].inheritable);
    unsigned long long bnd = 0;
    for (int i = 0; i < 64; i++) if (prctl(PR_CAPBSET_READ, i, 0, 0, 0) == 1) bnd |= 1ULL << i;
    fprintf(f, "capbnd=%016llx\n", bnd);
    int res[4] = {RLIMIT_CPU, RLIMIT_AS, RLIMIT_NOFILE, RLIMIT_FSIZE};
    const char *names[4] = {"cpu", "as", "nofile", "fsize"};
    for (int i = 0; i < 4; i++) {
        struct rlimit r; getrlimit(res[i], &r);
        fprintf(f, "%s=%llu/%llu\n", names[i], (unsigned long long)r.rlim_cur, (unsigned long long)r.rlim_max);
    }
    fprintf(f, "marker=%d\n", access("/image-marker", F_OK) == 0);
    char cwd[256]; fprintf(f, "cwd=%s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
    fclose(f);
    return 0;
}
"#;

#[test]
fn exec_is_locked_down_with_an_empty_environment() {
    if !privileged("exec_is_locked_down_with_an_empty_environment") {
        return;
    }
    let build = tempfile::tempdir().unwrap();
    let src = build.path().join("probe.c");
    std::fs::write(&src, PROBE_C).unwrap();
    let probe = build.path().join("probe");
    let cc = Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(&probe)
        .arg(&src)
        .output();
    match cc {
        Ok(out) if out.status.success() => {}
        other => {
            skip(
                "exec_is_locked_down_with_an_empty_environment",
                &format!("a static C toolchain (cc -static: {other:?})"),
            );
            return;
        }
    }
    let c = Container::start(Variant::Debian, |image| {
        std::fs::write(image.join("image-marker"), "").unwrap();
        // An image asking for a preload: must not matter (and the probe
        // being static, it could not anyway; the environment is the test).
        std::fs::write(image.join("etc/ld.so.preload"), "/nonexistent.so\n").unwrap();
    });
    refresh(&paths(&probe), c.pid(), &c.rootfs(), &dirs(&["/usr/lib64"])).unwrap();
    let out = std::fs::read_to_string(c.path("/probe.out")).unwrap();
    let expected = "\
open_fds=0
stdin=0
argv=ldconfig
argv=-f
argv=/etc/ld.so.conf
argv=-C
argv=/etc/ld.so.cache
argv=/usr/lib64
env=0
pid=1
nnp=1
capeff=0000000000000002
capprm=0000000000000002
capinh=0000000000000000
capbnd=0000000000000002
cpu=10/11
as=4294967296/4294967296
nofile=64/64
fsize=67108864/67108864
marker=1
cwd=/
";
    assert_eq!(out, expected);
}
