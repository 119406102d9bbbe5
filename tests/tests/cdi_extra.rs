//! IMEX channels and gated devices through CDI with Podman: `setup cdi
//! --mode imex-channel|gds` writes the specs nvidia-ctk would name
//! (`<vendor>/imex-channel=<n>`, `<vendor>/gds=all`), from the same plan the
//! hook applies, on a simulated host that has two channels and GPUDirect
//! nodes. A requested device is in the container with the host's numbers
//! and allowed (open gives ENXIO, not EPERM); one not requested is absent.
//! A host without IMEX channels has no such spec: one line says so.
use e2e::hook::SimHost;
use e2e::process::unique_name;
use e2e::{require, Podman, Prereq, Variant};
use fixtures::host_desc::HostDescription;

use crate::config_common::{run_setup, RemoveOnDrop};
use crate::config_podman::run_with_devices;

const SCRIPT: &str = r#"for n in /dev/nvidia-caps-imex-channels/* /dev/nvidia-fs*; do [ -c "$n" ] && echo "node $n $(stat -c '%t:%T' "$n") $(cat "$n" 2>&1 >/dev/null | sed 's/.*: //')"; done
echo done"#;

fn host(extras: bool) -> SimHost {
    let mut desc = HostDescription::synthetic(1, "535.104.05", "12.2");
    if extras {
        desc.imex_channels = Some(2);
        desc.gpudirect = true;
    }
    SimHost::generate_with(desc, |_| {}).unwrap()
}

/// `setup cdi --mode <mode>` into `/var/run/cdi` with a unique vendor:
/// (kind, the file's guard).
fn spec(host: &SimHost, mode: &str) -> (String, RemoveOnDrop) {
    let unique = unique_name("e2e");
    let vendor = format!("{unique}.example.com");
    let file = std::path::PathBuf::from(format!("/var/run/cdi/{unique}-{mode}.yaml"));
    run_setup(
        host,
        &[
            "cdi",
            "--mode",
            mode,
            "--vendor",
            &vendor,
            "--output-file",
            file.to_str().unwrap(),
        ],
        &[],
    )
    .unwrap();
    (format!("{vendor}/{mode}"), RemoveOnDrop(file))
}

/// The `node <path> <hex major:minor>` lines, after checking that none was
/// refused by the device cgroup and that each open reached the (absent)
/// driver: ENXIO.
#[track_caller]
fn nodes(out: &e2e::Output) -> Vec<String> {
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout.lines().last(), Some("done"), "{out}");
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("node "))
        .map(|rest| {
            let f: Vec<&str> = rest.splitn(3, ' ').collect();
            assert_eq!(
                f.get(2).copied(),
                Some("No such device or address"),
                "{rest}: {out}"
            );
            format!("{} {}", f[0], f[1])
        })
        .collect()
}

#[test]
fn podman_cdi_imex_channel_and_gds() {
    require!(Prereq::Podman);
    let host = host(true);
    let (imex, _imex_guard) = spec(&host, "imex-channel");
    let (gds, _gds_guard) = spec(&host, "gds");
    let podman = Podman::new().unwrap();
    let image = "localhost/e2e/cdi-extra";
    podman
        .import(Variant::Debian, image, &[] as &[&str])
        .unwrap();
    // Majors (hex): imex 238 = ee, nvidia-fs 239 = ef.
    let out = run_with_devices(&podman, image, &[format!("{imex}=0")], SCRIPT);
    assert_eq!(
        nodes(&out),
        ["/dev/nvidia-caps-imex-channels/channel0 ee:0"],
        "{out}"
    );
    let out = run_with_devices(&podman, image, &[format!("{imex}=1")], SCRIPT);
    assert_eq!(
        nodes(&out),
        ["/dev/nvidia-caps-imex-channels/channel1 ee:1"],
        "{out}"
    );
    let out = run_with_devices(&podman, image, &[format!("{gds}=all")], SCRIPT);
    assert_eq!(
        nodes(&out),
        ["/dev/nvidia-fs0 ef:0", "/dev/nvidia-fs1 ef:1"],
        "{out}"
    );
    // Not asked for: absent, even with the variable the hook would read.
    let out = podman
        .run_podman(&[
            "run",
            "--rm",
            "-e",
            "NVIDIA_IMEX_CHANNELS=all",
            image,
            "/bin/sh",
            "-c",
            SCRIPT,
        ])
        .unwrap();
    assert!(nodes(&out).is_empty(), "{out}");
    // A channel the host does not have is not a device of the spec.
    let out = run_with_devices(&podman, image, &[format!("{imex}=2")], "true");
    assert!(!out.success(), "{out}");
}

#[test]
fn no_imex_spec_without_channels() {
    require!(Prereq::Root);
    let host = host(false);
    let err = run_setup(
        &host,
        &[
            "cdi",
            "--mode",
            "imex-channel",
            "--output-file",
            "/dev/null",
        ],
        &[],
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("this host has no IMEX channel (/dev/nvidia-caps-imex-channels/channel<N>), so there is no nvidia.com/imex-channel CDI spec to generate"),
        "{err:#}"
    );
}
