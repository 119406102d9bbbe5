//! The loaders' files of graphics, display, video, compute and ngx in real
//! containers on the simulated host: under runc with the prestart hook
//! (cgroup v1 and v2, Debian-like and lib64 images), under the runc wrapper
//! and with Podman's CDI. Each file is present, read-only, at the path its
//! loader reads; the JSON files' `library_path` entries are in the
//! container's linker cache; a container asking only `compute` has none of
//! them but OpenCL's ICD.
use std::collections::BTreeMap;

use e2e::hook::SimHost;
use e2e::{require, runc_run, Bundle, CgroupVersion, HookStage, Podman, Prereq, Variant};

use crate::config_common::wrapped_runc_run;
use crate::config_podman::{cdi_spec, run_with_devices};

/// The JSON files (their `library_path` must resolve).
const JSON: &[&str] = &[
    "/usr/share/glvnd/egl_vendor.d/10_nvidia.json",
    "/usr/share/egl/egl_external_platform.d/10_nvidia_wayland.json",
    "/usr/share/egl/egl_external_platform.d/15_nvidia_gbm.json",
    "/etc/vulkan/icd.d/nvidia_icd.json",
    "/etc/vulkan/implicit_layer.d/nvidia_layers.json",
];

/// Every loader file of the simulated host, as the container sees it, with
/// the capability that brings it.
fn expected(variant: Variant, driver: &str) -> Vec<(String, &'static str)> {
    let (lib, xorg) = match variant {
        Variant::Debian => ("/usr/lib/x86_64-linux-gnu", "/usr/lib/xorg/modules"),
        _ => ("/usr/lib64", "/usr/lib64/xorg/modules"),
    };
    let mut out: Vec<(String, &str)> = JSON.iter().map(|j| ((*j).to_owned(), "graphics")).collect();
    out.extend([
        (format!("{lib}/gbm/nvidia-drm_gbm.so"), "graphics"),
        (format!("{lib}/libnvidia-egl-gbm.so.1.1.2"), "graphics"),
        (format!("{lib}/libnvidia-egl-wayland.so.1.1.11"), "graphics"),
        ("/etc/OpenCL/vendors/nvidia.icd".to_owned(), "compute"),
        (format!("{lib}/vdpau/libvdpau_nvidia.so.{driver}"), "video"),
        (format!("{xorg}/drivers/nvidia_drv.so"), "display"),
        (
            format!("{xorg}/extensions/libglxserver_nvidia.so.{driver}"),
            "display",
        ),
        (
            "/usr/share/X11/xorg.conf.d/10-nvidia.conf".to_owned(),
            "display",
        ),
        ("/usr/bin/nvidia-ngx-updater".to_owned(), "ngx"),
    ]);
    out
}

/// Prints `file <path> <mount options>` for each present file, `link
/// <path> <target>` for the loaders' links and `resolves <json> <lib>` for
/// each JSON file whose library the linker cache lists.
fn script(variant: Variant, driver: &str) -> String {
    let files: Vec<String> = expected(variant, driver)
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    let (lib, xorg) = match variant {
        Variant::Debian => ("/usr/lib/x86_64-linux-gnu", "/usr/lib/xorg/modules"),
        _ => ("/usr/lib64", "/usr/lib64/xorg/modules"),
    };
    format!(
        r#"for f in {files}; do [ -f "$f" ] && echo "file $f $(awk -v p="$f" '$5 == p {{print $6}}' /proc/self/mountinfo | tail -1)"; done
for l in {lib}/vdpau/libvdpau_nvidia.so.1 {xorg}/extensions/libglxserver_nvidia.so; do [ -L "$l" ] && echo "link $l $(readlink "$l")"; done
for j in {json}; do [ -f "$j" ] || continue; l=$(sed -n 's/.*"library_path": *"\([^"]*\)".*/\1/p' "$j"); ldconfig -p | grep -q "^[[:space:]]*$l " && echo "resolves $j $l"; done
echo done
"#,
        files = files.join(" "),
        json = JSON.join(" "),
    )
}

/// What [`script`] printed: `file` lines as path to options, the rest as lines.
struct Seen {
    files: BTreeMap<String, String>,
    lines: Vec<String>,
}

fn parse(stdout: &str) -> Seen {
    let mut files = BTreeMap::new();
    let mut lines = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("file ") {
            let (path, opts) = rest.split_once(' ').unwrap_or((rest, ""));
            files.insert(path.to_owned(), opts.to_owned());
        } else {
            lines.push(line.to_owned());
        }
    }
    Seen { files, lines }
}

/// Checks that exactly the files of `caps` are present, each read-only,
/// with the links and resolving JSON files that go with them.
#[track_caller]
fn check(
    seen: &Seen,
    variant: Variant,
    driver: &str,
    caps: &[&str],
    context: &dyn std::fmt::Display,
) {
    assert!(seen.lines.iter().any(|l| l == "done"), "{context}");
    let want: Vec<String> = expected(variant, driver)
        .into_iter()
        .filter(|(_, cap)| caps.contains(cap))
        .map(|(f, _)| f)
        .collect();
    let got: Vec<String> = seen.files.keys().cloned().collect();
    let mut sorted = want.clone();
    sorted.sort();
    assert_eq!(got, sorted, "{context}");
    for (f, opts) in &seen.files {
        assert!(
            opts.split(',').any(|o| o == "ro"),
            "{f} is not read-only ({opts}): {context}"
        );
    }
    if caps.contains(&"graphics") {
        for j in JSON {
            assert!(
                seen.lines
                    .iter()
                    .any(|l| l.starts_with(&format!("resolves {j} "))),
                "{j}'s library_path does not resolve: {context}"
            );
        }
    }
    let (lib, xorg) = match variant {
        Variant::Debian => ("/usr/lib/x86_64-linux-gnu", "/usr/lib/xorg/modules"),
        _ => ("/usr/lib64", "/usr/lib64/xorg/modules"),
    };
    let links = [
        (
            "video",
            format!("link {lib}/vdpau/libvdpau_nvidia.so.1 libvdpau_nvidia.so.{driver}"),
        ),
        (
            "display",
            format!(
                "link {xorg}/extensions/libglxserver_nvidia.so libglxserver_nvidia.so.{driver}"
            ),
        ),
    ];
    for (cap, line) in links {
        assert_eq!(
            seen.lines.contains(&line),
            caps.contains(&cap),
            "{line}: {context}"
        );
    }
}

const ALL: &[&str] = &["graphics", "display", "video", "compute", "ngx"];

fn hook_run(variant: Variant, cgroup: CgroupVersion, caps_env: &str, caps: &[&str]) {
    require!(Prereq::Runc, cgroup.prereq());
    let host = SimHost::synthetic(2).unwrap();
    let driver = host.desc.driver_version.clone();
    let bundle = Bundle::builder(variant)
        .sh(&script(variant, &driver))
        .env("NVIDIA_VISIBLE_DEVICES", "1")
        .env("NVIDIA_DRIVER_CAPABILITIES", caps_env)
        .hook(HookStage::Prestart, &host.prestart_hook().unwrap())
        .build()
        .unwrap();
    let out = runc_run(&bundle, cgroup).unwrap();
    out.assert_success();
    check(&parse(&out.stdout), variant, &driver, caps, &out);
}

#[test]
fn hook_all_capabilities_debian_v1() {
    hook_run(Variant::Debian, CgroupVersion::V1, "all", ALL);
}

#[test]
fn hook_all_capabilities_lib64_v2() {
    hook_run(Variant::Lib64, CgroupVersion::V2, "all", ALL);
}

#[test]
fn hook_graphics_only_v2() {
    hook_run(
        Variant::Debian,
        CgroupVersion::V2,
        "graphics",
        &["graphics"],
    );
}

#[test]
fn hook_display_brings_graphics_v1() {
    hook_run(
        Variant::Lib64,
        CgroupVersion::V1,
        "display",
        &["display", "graphics"],
    );
}

#[test]
fn hook_compute_only_has_none_v1() {
    hook_run(
        Variant::Debian,
        CgroupVersion::V1,
        "compute,utility",
        &["compute"],
    );
}

#[test]
fn hook_video_v2() {
    hook_run(
        Variant::Debian,
        CgroupVersion::V2,
        "video",
        &["video", "compute"],
    );
}

#[test]
fn wrapper_all_capabilities_v2() {
    require!(Prereq::Runc, CgroupVersion::V2.prereq());
    let host = SimHost::synthetic(2).unwrap();
    let driver = host.desc.driver_version.clone();
    let variant = Variant::Debian;
    let bundle = Bundle::builder(variant)
        .sh(&script(variant, &driver))
        .env("NVIDIA_VISIBLE_DEVICES", "0")
        .env("NVIDIA_DRIVER_CAPABILITIES", "all")
        .build()
        .unwrap();
    let out = wrapped_runc_run(&host, &bundle, CgroupVersion::V2).unwrap();
    out.assert_success();
    check(&parse(&out.stdout), variant, &driver, ALL, &out);
}

/// The CDI spec serves every capability: Podman's container gets them all
/// (at the host's layout: a spec is written before any image is known).
#[test]
fn podman_cdi_all_capabilities() {
    require!(Prereq::Podman);
    let host = SimHost::synthetic(1).unwrap();
    let driver = host.desc.driver_version.clone();
    let (kind, _guard) = cdi_spec(&host, "json");
    let podman = Podman::new().unwrap();
    let variant = Variant::Debian;
    let image = "localhost/e2e/cdi-graphics";
    podman.import(variant, image, &[] as &[&str]).unwrap();
    let out = run_with_devices(
        &podman,
        image,
        &[format!("{kind}=0")],
        &script(variant, &driver),
    );
    assert!(out.success(), "{out}");
    check(&parse(&out.stdout), variant, &driver, ALL, &out);
}
